// SPDX-License-Identifier: Apache-2.0
#include "cli/list.hpp"

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
    std::ifstream f(p.ended());
    auto all = json::parse(f, nullptr, false);
    if (!all.is_array()) return out;
    long long now = std::time(nullptr);
    for (const auto& e : all)
        if (e.is_object() && e.value("ended_at", 0LL) > now - 600) out.push_back(e);
    return out;
}

}  // namespace

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
    // Faults last: they are the one column of unbounded width.
    std::printf("%-16s %-28s %-8s %-10s %8s %8s %8s %10s %7s %7s %7s  %s\n", "NAME", "CGROUP", "LEFT", "DEVICES",
                "MATCHED", "DELAYED", "DROPPED", "BYTES", "CALLS", "FAILED", "STALLED", "FAULTS");
    for (const auto& i : injections) {
        std::string devs;
        for (const auto& d : i.devices) devs += (devs.empty() ? "" : ",") + d;
        const auto& c = i.counters;
        auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
        std::printf("%-16s %-28s %-8s %-10s %8llu %8llu %8llu %10llu %7llu %7llu %7llu  %s\n", i.name.c_str(),
                    i.cgroup.c_str(), left(i.left_ns).c_str(), devs.empty() ? "-" : devs.c_str(), u(c.matched),
                    u(c.delayed), u(c.dropped), u(c.bytes), u(c.calls), u(c.failed), u(c.stalled), i.faults.c_str());
        for (const auto& q : i.replaced_qdiscs)
            std::printf("%-16s replaced root qdisc %s (--force); restored when it ends\n", "", q.c_str());
    }
    print_ended();
    return 0;
}

}  // namespace tardy
