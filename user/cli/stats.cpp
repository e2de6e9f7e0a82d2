// SPDX-License-Identifier: Apache-2.0
#include "cli/stats.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <sstream>

#include "agent/client.hpp"
#include "agent/inject.hpp"
#include "cli/report.hpp"
#include "model/spec.hpp"
#include "model/units.hpp"
#include "sys/cgroup.hpp"
#include "loader/pinned.hpp"
#include "model/wire.hpp"

using nlohmann::json;

namespace tardy {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void catch_signals() {
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
}

// Sleeps up to ms, less when a signal asks to stop.
void nap_ms(int ms) {
    for (int i = 0; i < ms / 50 && !g_stop; i++) usleep(50'000);
}

Result<json> fetch(const Paths& p, const std::string& name) {
    auto rep = agent_call(p, wire::request(wire::Stats{name}));
    if (!rep) return rep.error();
    return reply_or_error(*rep);
}

std::string num(const json& v) {
    if (v.is_number_float()) {
        char b[32];
        std::snprintf(b, sizeof b, "%.2f", v.get<double>());
        return b;
    }
    return v.dump();
}

std::string pad(std::string s, size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
}

// ▁▂▃▄▅▆▇█ for values 0..max; a space for no data.
std::string spark(const std::vector<double>& v) {
    static const char* kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    double max = 0;
    for (double x : v) max = std::max(max, x);
    std::string s;
    for (double x : v) s += max <= 0 ? kBars[0] : kBars[std::min(7, int(x / max * 7.999))];
    return s;
}

}  // namespace

std::string stats_table(const json& r, const std::deque<json>& history) {
    std::ostringstream o;
    const json& cs = r.value("cohorts", json::array());
    bool diff = r.contains("difference");
    o << r.value("name", std::string()) << ": " << num(r.value("seconds", json(0.0))) << " s measured\n";
    size_t w = 14;  // a column fits its cohort's cgroup, and two spaces
    for (const auto& c : cs) w = std::max(w, c.value("cgroup", std::string()).size() + 2);
    auto row = [&](const std::string& label, auto get, const char* dkey = nullptr) {
        o << pad(label, 24);
        for (const auto& c : cs) o << pad(get(c), w);
        if (diff && dkey) o << get(r["difference"]);
        o << "\n";
    };
    row("", [](const json& c) { return c.contains("role") ? c["role"].get<std::string>() : std::string("difference"); },
        "");
    row("cgroup", [](const json& c) { return c.contains("cgroup") ? c["cgroup"].get<std::string>() : std::string(); });
    auto tcp = [&](const char* key) {
        return [key](const json& c) { return c.contains("tcp") && c["tcp"].contains(key) ? num(c["tcp"][key]) : std::string(); };
    };
    row("tcp connects", tcp("connects"), "x");
    row("  established", tcp("established"));
    row("  failed", tcp("failed"), "x");
    row("  failure ratio", tcp("connect_failure_ratio"), "x");
    for (const char* why : {"refused", "timeout", "abandoned", "tardy"})
        row(std::string("    ") + (why == std::string("tardy") ? "by tardy" : why), [why](const json& c) {
            return c.contains("tcp") ? num(c["tcp"]["failed_by"][why]) : std::string();
        });
    for (const char* h : {"connect_ms", "rtt_ms"})
        row(std::string(h == std::string("rtt_ms") ? "rtt" : "connect") + " ms p50/p90/p99",
            [h](const json& c) {
                if (!c.contains("tcp") || !c["tcp"].contains(h)) return std::string();
                const json& q = c["tcp"][h];
                return num(q["p50"]) + "/" + num(q["p90"]) + "/" + num(q["p99"]);
            },
            "x");
    row("retransmits", tcp("retransmits"), "x");
    row("resets sent/received", [](const json& c) {
        return c.contains("tcp") ? num(c["tcp"]["resets_sent"]) + "/" + num(c["tcp"]["resets_received"]) : std::string();
    });
    row("accepted", tcp("accepted"));
    row("packets out/in", [](const json& c) {
        return c.contains("packets") ? num(c["packets"]["out"]) + "/" + num(c["packets"]["in"]) : std::string();
    });
    row("tardy dropped/delayed", [](const json& c) {
        return c.contains("tardy") ? num(c["tardy"]["dropped"]) + "/" + num(c["tardy"]["delayed"]) : std::string();
    });
    row("tardy failed/stalled", [](const json& c) {
        return c.contains("tardy") ? num(c["tardy"]["failed"]) + "/" + num(c["tardy"]["stalled"]) : std::string();
    });
    if (history.size() >= 2) {
        o << "last " << history.size() - 1 << " s, a second each (connects | failures):\n";
        for (size_t i = 0; i < cs.size(); i++) {
            std::vector<double> conn, fail;
            for (size_t k = 1; k < history.size(); k++) {
                auto at = [&](size_t h, const char* key) {
                    const json& c = history[h]["cohorts"];
                    return i < c.size() ? c[i]["tcp"][key].get<double>() : 0.0;
                };
                conn.push_back(at(k, "connects") - at(k - 1, "connects"));
                fail.push_back(at(k, "failed") - at(k - 1, "failed"));
            }
            o << "  " << pad(cs[i].value("role", std::string()), 11) << spark(conn) << " | " << spark(fail) << "\n";
        }
    }
    return o.str();
}

int cmd_stats(const StatsArgs& a, const Paths& p) {
    if (auto v = validate_name(a.name); !v) return report(v.error());
    if (geteuid() != 0) return report(Error::user("tardy stats needs root (it asks the agent); run it with sudo"));
    if (!agent_reachable(p)) return report(Error::user("no active injection named '" + a.name + "' (no agent is running)"));
    if (!a.watch) {
        auto r = fetch(p, a.name);
        if (!r) return report(r.error());
        r->erase("ok");
        r->erase("v");
        std::printf("%s", a.json ? (r->dump(2) + "\n").c_str() : stats_table(*r).c_str());
        return 0;
    }
    catch_signals();
    std::deque<json> history;
    bool tty = isatty(STDOUT_FILENO);
    while (!g_stop) {
        auto r = fetch(p, a.name);
        if (!r) {
            if (history.empty()) return report(r.error());
            std::printf("%s has ended\n", a.name.c_str());
            return 0;
        }
        r->erase("ok");
        r->erase("v");
        history.push_back(*r);
        if (history.size() > 61) history.pop_front();
        if (a.json)
            std::printf("%s\n", r->dump().c_str());
        else
            std::printf("%s%s", tty ? "\033[H\033[2J" : "", stats_table(*r, history).c_str());
        std::fflush(stdout);
        nap_ms(1000);
    }
    return 0;
}

int cmd_observe(const ObserveArgs& a, const Paths& p, const std::string& self_exe) {
    std::vector<TargetRef> refs;
    for (const auto& c : a.cgroups) refs.push_back({TargetRef::Kind::Cgroup, c, ""});
    for (const auto& c : a.pids) {
        if (c.empty() || c.find_first_not_of("0123456789") != std::string::npos)
            return report(Error::user("--pid '" + c + "': not a process id; e.g. --pid 4242"));
        refs.push_back({TargetRef::Kind::Pid, c, ""});
    }
    for (const auto& c : a.containers) refs.push_back({TargetRef::Kind::Container, c, ""});
    if (refs.empty())
        return report(Error::user("name what to observe: --cgroup PATH|ID, --pid PID or --container ID (repeatable)"));
    uint64_t for_ns = 0;
    if (!a.for_dur.empty()) {
        auto d = parse_duration_ns(a.for_dur, "--for");
        if (!d) return report(d.error());
        for_ns = *d;
    }
    std::string name = a.name.empty() ? "observe-" + std::to_string(getpid()) : a.name;
    if (auto v = validate_name(name); !v) return report(v.error());
    if (geteuid() != 0) return report(Error::user("tardy observe needs root (it loads BPF programs); run it with sudo"));
    auto cgfs = CgroupFs::detect();
    if (!cgfs) return report(cgfs.error());
    wire::Inject req;
    req.name = name;
    req.observe = true;
    // Until --for is over (a margin for the last reading), or a day without --for: the command
    // stops it on Ctrl-C; `tardy stop NAME` ends one whose command was killed.
    req.for_ns = for_ns ? for_ns + 30'000'000'000ULL : 24ULL * 3600 * 1'000'000'000;
    for (const auto& t : refs) {
        auto cg = cgfs->resolve(t);
        if (!cg) return report(cg.error());
        if (cg->rel == "/")
            return report(Error::user("refusing to observe the root cgroup: it holds every process on the host; "
                                      "name a service's or container's cgroup"));
        for (const auto& k : req.cohorts)
            if (k.cgroup.id == cg->id) return report(Error::user("cgroup " + cg->rel + " is named twice"));
        req.cohorts.push_back({"observed", {cg->path, cg->rel, cg->id}});
    }
    req.cgroup = req.cohorts.front().cgroup;
    catch_signals();
    auto rep = submit_inject(p, req, self_exe);
    if (!rep) return report(rep.error());
    std::deque<json> history;
    bool tty = isatty(STDOUT_FILENO);
    Result<json> last = Error::other("no reading");
    if (for_ns) {
        uint64_t t0 = mono_now_ns();
        while (!g_stop && mono_now_ns() - t0 < for_ns) usleep(static_cast<useconds_t>(
            std::min<uint64_t>(50'000, (for_ns - (mono_now_ns() - t0)) / 1000 + 1)));
    }
    while (!for_ns && !g_stop) {
        last = fetch(p, name);
        if (!last) break;
        last->erase("ok");
        last->erase("v");
        history.push_back(*last);
        if (history.size() > 61) history.pop_front();
        if (a.json)
            std::printf("%s\n", last->dump().c_str());
        else
            std::printf("%s%s", tty ? "\033[H\033[2J" : "", stats_table(*last, history).c_str());
        std::fflush(stdout);
        nap_ms(1000);
    }
    last = fetch(p, name);  // the final reading
    (void)agent_call(p, wire::request(wire::Stop{name, false}));
    if (!last) return report(last.error());
    last->erase("ok");
    last->erase("v");
    std::printf("%s", a.json ? (last->dump(2) + "\n").c_str() : stats_table(*last).c_str());
    return 0;
}

CLI::App* add_observe_command(CLI::App& app, ObserveArgs& oa) {
    auto* observe = app.add_subcommand("observe", "Measure cohorts without any fault (baselines, watching a service)");
    observe->add_option("--cgroup", oa.cgroups, "A cgroup to measure (repeatable)");
    observe->add_option("--pid", oa.pids, "The cgroup of this process (repeatable)");
    observe->add_option("--container", oa.containers, "A container by id (repeatable)");
    observe->add_option("--for", oa.for_dur, "Measure this long, then print (default: live until Ctrl-C)");
    observe->add_option("--name", oa.name, "Name for list/stats/stop (default: observe-PID)");
    observe->add_flag("--json", oa.json, "Print JSON (live: one line a second)");
    observe->footer("Examples:\n"
                    "  sudo tardy observe --cgroup shop.slice/canary.service --cgroup shop.slice/base.service --for 30s\n"
                    "  sudo tardy observe --container 3f2a            # live, Ctrl-C ends\n"
                    "  sudo tardy observe --pid 4242 --for 10s --json");
    return observe;
}

}  // namespace tardy
