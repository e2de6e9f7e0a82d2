// SPDX-License-Identifier: Apache-2.0
#include "lab/demo.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "sys/process.hpp"
#include "sys/qdisc.hpp"
#include "lab/sandbox.hpp"

using nlohmann::json;

namespace tardy {
namespace {

struct Row {
    std::string phase, cohort;
    int sent = 0, answered = 0;
    double p50 = 0, p99 = 0;
};

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
    return v[i];
}

Row summarize(const std::string& phase, const std::string& cohort, const ProbeResult& r) {
    Row row{phase, cohort, r.sent, r.answered(), 0, 0};
    std::vector<double> v;
    for (const auto& x : r.rtt_ms)
        if (x) v.push_back(*x);
    row.p50 = percentile(v, 0.5);
    row.p99 = percentile(v, 0.99);
    return row;
}

// Both cohorts at once, so they see the same moment of the machine.
Result<std::pair<Row, Row>> measure(const Sandbox& lab, const std::string& phase, int count) {
    Result<ProbeResult> e = Error::other("not run"), c = Error::other("not run");
    std::thread te([&] { e = lab.probe(Sandbox::Cohort::Experiment, "udp", false, count, 20, 150); });
    std::thread tc([&] { c = lab.probe(Sandbox::Cohort::Control, "udp", false, count, 20, 150); });
    te.join();
    tc.join();
    if (!e) return e.error();
    if (!c) return c.error();
    return std::pair{summarize(phase, "experiment", *e), summarize(phase, "control", *c)};
}

double loss_pct(const Row& r) { return r.sent ? 100.0 * (r.sent - r.answered) / r.sent : 0; }

void print_row(const Row& r) {
    std::printf("%-11s %-11s %7d %7.1f%% %9.2f ms %9.2f ms\n", r.phase.c_str(), r.cohort.c_str(), r.sent, loss_pct(r),
                r.p50, r.p99);
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

int run_demo(const DemoOptions& o, const std::string& self_exe) {
    // A private agent, run directory and bpffs directory: the demo never touches the
    // injections of a real agent on this host.
    setenv("TARDY_RUN_DIR", "/run/tardy-demo", 1);
    setenv("TARDY_BPFFS", "/sys/fs/bpf/tardy-demo", 1);
    auto say = [&](const std::string& s) {
        if (!o.json) std::printf("%s\n", s.c_str());
        std::fflush(stdout);
    };
    const int count = std::max(10, o.phase_s * 1000 / 20);

    say("tardy demo: building a sandbox: namespaces tdemo-a/tdemo-b joined by a veth pair, an echo server "
        "in tdemo-b,\n  and two cgroups of clients in tdemo-a: 'experiment' and 'control'");
    auto lab = Sandbox::create({"tdemo", self_exe, 7007});
    if (!lab) {
        std::fprintf(stderr, "tardy demo: %s\n", lab.error().message.c_str());
        return 1;
    }
    std::vector<Row> rows;
    json steps = json::array();
    int code = 0;
    auto fail = [&](const std::string& m) {
        std::fprintf(stderr, "tardy demo: %s\n", m.c_str());
        code = 1;
    };

    auto fq = qdisc_kind_available("fq");
    bool can_delay = fq && *fq;
    std::vector<std::string> fault = can_delay ? std::vector<std::string>{"--delay", "50ms"}
                                               : std::vector<std::string>{"--loss", "30%"};
    std::string why = can_delay ? "this kernel has sch_fq, so the demo injects a 50 ms delay"
                                : "this kernel has no sch_fq to enforce a delay, so the demo injects 30% loss instead";
    say("  " + why);

    do {
        say("phase 1/3: baseline, no fault (" + std::to_string(o.phase_s) + " s)");
        auto base = measure(**lab, "baseline", count);
        if (!base) {
            fail(base.error().message);
            break;
        }
        rows.push_back(base->first);
        rows.push_back(base->second);

        std::vector<std::string> inj{self_exe, "inject", "--cgroup", (*lab)->cgroup_rel(Sandbox::Cohort::Experiment),
                                     "--for", "2m", "--name", "demo"};
        inj.insert(inj.end(), fault.begin(), fault.end());
        std::string cmdline = "tardy inject --cgroup " + (*lab)->cgroup_rel(Sandbox::Cohort::Experiment) + " " +
                              fault[0] + " " + fault[1] + " --for 2m --name demo";
        say("phase 2/3: fault on the experiment cohort only: " + cmdline);
        auto r = run_cmd(inj);
        if (!r || r->status != 0) {
            fail("inject failed: " + (r ? trim(r->err) : r.error().message));
            break;
        }
        steps.push_back({{"command", cmdline}, {"output", trim(r->out)}});
        auto during = measure(**lab, "fault", count);
        if (!during) {
            fail(during.error().message);
            break;
        }
        rows.push_back(during->first);
        rows.push_back(during->second);
        auto l = run_cmd({self_exe, "list"});
        if (l && !o.json) std::printf("%s", l->out.c_str());

        say("phase 3/3: pulling the kill switch: tardy kill");
        auto k = run_cmd({self_exe, "kill"});
        if (!k || k->status != 0) {
            fail("kill failed: " + (k ? trim(k->err) : k.error().message));
            break;
        }
        if (!o.json) std::printf("%s", k->out.c_str());
        steps.push_back({{"command", "tardy kill"}, {"output", trim(k->out)}});
        auto after = measure(**lab, "after kill", count);
        if (!after) {
            fail(after.error().message);
            break;
        }
        rows.push_back(after->first);
        rows.push_back(after->second);
    } while (false);
    (void)run_cmd({self_exe, "kill"});  // whatever happened above, leave nothing behind

    // Verdicts: the fault must show in the experiment cohort, not in control, and be gone after kill.
    bool hit = false, control_clean = false, recovered = false;
    if (rows.size() == 6) {
        const Row &be = rows[0], &bc = rows[1], &fe = rows[2], &fc = rows[3], &ae = rows[4];
        hit = can_delay ? fe.p50 >= be.p50 + 40 : loss_pct(fe) >= 15;
        control_clean = loss_pct(fc) <= 1 && fc.p50 < bc.p50 + 5;
        recovered = loss_pct(ae) <= 1 && ae.p50 < be.p50 + 5;
        if (!(hit && control_clean && recovered)) code = 1;
    }
    if (o.json) {
        json jr = json::array();
        for (const auto& r : rows)
            jr.push_back({{"phase", r.phase}, {"cohort", r.cohort}, {"sent", r.sent}, {"answered", r.answered},
                          {"loss_pct", loss_pct(r)}, {"rtt_p50_ms", r.p50}, {"rtt_p99_ms", r.p99}});
        std::printf("%s\n", json{{"fault", fault[0] + " " + fault[1]}, {"why", why}, {"rows", jr}, {"steps", steps},
                                 {"fault_hit_experiment", hit}, {"control_untouched", control_clean},
                                 {"recovered_after_kill", recovered}, {"ok", code == 0}}
                                .dump(2)
                                .c_str());
    } else if (!rows.empty()) {
        std::printf("\n%-11s %-11s %7s %8s %12s %12s\n", "PHASE", "COHORT", "SENT", "LOSS", "RTT p50", "RTT p99");
        for (const auto& r : rows) print_row(r);
        std::printf("\nfault hit the experiment cohort: %s\ncontrol cohort untouched:        %s\n"
                    "recovered after the kill switch: %s\n",
                    hit ? "yes" : "NO", control_clean ? "yes" : "NO", recovered ? "yes" : "NO");
    }
    lab->reset();
    say("sandbox removed: namespaces, veth pair, cgroups, echo server");
    return code;
}

}  // namespace tardy
