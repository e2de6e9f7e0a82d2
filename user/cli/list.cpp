// SPDX-License-Identifier: Apache-2.0
#include "cli/list.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/client.hpp"
#include "cli/report.hpp"
#include "model/wire.hpp"
#include "sys/fd.hpp"

namespace tardy {
namespace {

using nlohmann::json;

std::string left(uint64_t ns) {
    uint64_t s = ns / 1'000'000'000ULL;
    char buf[32];
    if (s >= 60)
        std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                      static_cast<unsigned long long>(s % 60));
    else
        std::snprintf(buf, sizeof buf, "%.1fs", ns / 1e9);
    return buf;
}

// Injections that ended by themselves (deadline, target removed) in the last 10 minutes, as
// the agent recorded them: it may have left since.
json recently_ended(const Paths& p) {
    json out = json::array();
    // Not through a symlink: only a regular file the agent wrote.
    Fd fd(open(p.ended().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    struct stat st{};
    if (!fd.valid() || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) return out;
    std::string text(static_cast<size_t>(st.st_size), '\0');
    if (read(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) return out;
    auto all = json::parse(text, nullptr, false);
    if (!all.is_array()) return out;
    long long now = std::time(nullptr);
    for (const auto& e : all)
        if (e.is_object() && e.value("ended_at", 0LL) > now - 600) out.push_back(e);
    return out;
}

}  // namespace

std::string fit_left(const std::string& s, size_t width) {
    if (s.size() <= width) return s;
    if (width <= 3) return s.substr(s.size() - width);
    return "..." + s.substr(s.size() - (width - 3));
}

std::string list_table(const std::vector<wire::InjectionInfo>& injections) {
    // Faults last: they are the one column of unbounded width. NAME and DEVICES widen to
    // their longest entry (a name is what `stop` takes, so it is never cut); a long cgroup
    // path keeps its end (the container or service), and `list --json` has it whole.
    auto devices_of = [](const wire::InjectionInfo& i) {
        std::string devs;
        for (const auto& d : i.devices) devs += (devs.empty() ? "" : ",") + d;
        return devs.empty() ? std::string("-") : devs;
    };
    size_t name_w = 16, dev_w = 10;
    for (const auto& i : injections) {
        name_w = std::max(name_w, i.name.size());
        dev_w = std::max(dev_w, devices_of(i).size());
    }
    auto pad = [](const std::string& v, size_t w) { return v + std::string(w > v.size() ? w - v.size() : 0, ' '); };
    std::string out;
    char nums[160];
    std::snprintf(nums, sizeof nums, "%8s %8s %8s %10s %7s %7s %7s", "MATCHED", "DELAYED", "DROPPED", "BYTES", "CALLS",
                  "FAILED", "STALLED");
    out += pad("NAME", name_w) + " " + pad("CGROUP", 28) + " " + pad("LEFT", 8) + " " + pad("DEVICES", dev_w) + " " +
           nums + "  FAULTS\n";
    for (const auto& i : injections) {
        const auto& c = i.counters;
        auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
        std::snprintf(nums, sizeof nums, "%8llu %8llu %8llu %10llu %7llu %7llu %7llu", u(c.matched), u(c.delayed),
                      u(c.dropped), u(c.bytes), u(c.calls), u(c.failed), u(c.stalled));
        // The counters of the faults that have no column, when they counted something.
        std::string more;
        for (auto [n, what] : {std::pair{c.duplicated, "duplicated"}, {c.reordered, "reordered"}, {c.paced, "paced"},
                               {c.dns, "DNS answered"}, {c.resets, "reset"}, {c.corrupted, "corrupted"}})
            if (n) more += (more.empty() ? " (" : ", ") + std::to_string(n) + " " + what;
        if (!more.empty()) more += ")";
        out += pad(i.name, name_w) + " " + pad(fit_left(i.cgroup, 28), 28) + " " + pad(left(i.left_ns), 8) + " " +
               pad(devices_of(i), dev_w) + " " + nums + "  " + i.faults + more + "\n";
        for (const auto& q : i.replaced_qdiscs)
            out += std::string(name_w, ' ') + " replaced root qdisc " + q + " (--force); restored when it ends\n";
    }
    return out;
}

int cmd_list(bool as_json, const Paths& p) {
    std::vector<wire::InjectionInfo> injections;
    json ended = recently_ended(p);
    if (agent_reachable(p)) {
        auto rep = agent_call(p, wire::request(wire::List{}));
        if (!rep) return report(rep.error());
        auto r = reply_or_error(*rep);
        if (!r) return report(r.error());
        auto list = wire::read_reply<wire::ListReply>(*r);
        if (!list) return report(list.error());
        injections = std::move(list->injections);
    }
    if (as_json) {
        std::cout << json{{"injections", injections}, {"ended", ended}}.dump(2) << "\n";
        return 0;
    }
    long long now = std::time(nullptr);
    auto print_ended = [&] {
        for (const auto& e : ended)
            std::printf("ended %s on %s: %s, %llds ago\n", e.value("name", "?").c_str(), e.value("cgroup", "?").c_str(),
                        e.value("reason", "?").c_str(), now - e.value("ended_at", now));
    };
    if (injections.empty()) {
        std::printf("no active injections\n");
        print_ended();
        return 0;
    }
    std::fputs(list_table(injections).c_str(), stdout);
    print_ended();
    return 0;
}

}  // namespace tardy
