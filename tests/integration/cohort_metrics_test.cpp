// SPDX-License-Identifier: Apache-2.0
// Cohort metrics (issue 11) through the real kernel path: an injection with a control cohort,
// real TCP connects from both cohorts, and `tardy stats --json` / `tardy observe` compared with
// what the clients themselves saw.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "../common/harness.hpp"
#include "sys/process.hpp"

using namespace tardy;
using namespace tardy::test;
using nlohmann::json;

namespace {

class CohortLab : public Lab {
protected:
    // `procs` probe processes at once, each making `each` TCP connects to the echo server;
    // the outcomes of all of them (connect times in ms, null for a failure).
    std::vector<json> connects(Sandbox::Cohort c, int procs, int each, int timeout_ms) {
        return connects(lab_->cgroup(c), procs, each, timeout_ms);
    }
    std::vector<json> connects(const std::string& cgroup, int procs, int each, int timeout_ms) {
        std::vector<std::pair<pid_t, int>> running;
        for (int i = 0; i < procs; i++) {
            int out = -1;
            auto pid = spawn_cmd({build_dir() + "/tardy", "__probe", "--cgroup", cgroup, "--netns",
                                  lab_->netns_a(), "--proto", "tcp", "--to", "198.18.0.2", "--port", "7007", "--count",
                                  std::to_string(each), "--interval-ms", "1", "--timeout-ms", std::to_string(timeout_ms)},
                                 &out);
            EXPECT_TRUE(pid) << (pid ? "" : pid.error().message);
            if (pid) running.emplace_back(*pid, out);
        }
        std::vector<json> all;
        for (auto [pid, fd] : running) {
            std::string text;
            char buf[4096];
            for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, n);
            close(fd);
            waitpid(pid, nullptr, 0);
            auto j = json::parse(text, nullptr, false);
            EXPECT_FALSE(j.is_discarded()) << text;
            if (!j.is_discarded())
                for (const auto& x : j["rtt_ms"]) all.push_back(x);
        }
        return all;
    }
    // What a command printed on `out` until it ended, and that it ended with 0.
    static std::string output_of(pid_t pid, int out) {
        std::string text;
        char buf[4096];
        for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) text.append(buf, n);
        close(out);
        int status = 0;
        waitpid(pid, &status, 0);
        EXPECT_EQ(WEXITSTATUS(status), 0) << text;
        return text;
    }
    json stats(const std::string& name) {
        auto r = tardy({"stats", name, "--json"});
        EXPECT_EQ(r.status, 0) << r.err;
        auto j = json::parse(r.out, nullptr, false);
        return j.is_discarded() ? json::object() : j;
    }
    static json cohort(const json& s, const std::string& role) {
        if (s.contains("cohorts"))
            for (const auto& c : s["cohorts"])
                if (c.value("role", "") == role) return c;
        return json::object();
    }
    static uint64_t tcp(const json& c, const char* key) { return c.value("tcp", json::object()).value(key, uint64_t{0}); }
};

// --fail connect=ECONNREFUSED:30% with a control: the experiment's failures within binomial
// bounds of 30% and equal to what the clients saw; none in the control; every connect counted.
TEST_F(CohortLab, RefusedConnectsCountedInTheExperimentOnly) {
    inject({"--fail", "connect=ECONNREFUSED:30%", "--control", lab_->cgroup_rel(kCtl)}, "refuse");
    auto exp = connects(kExp, 4, 50, 1000), ctl = connects(kCtl, 4, 50, 1000);
    ASSERT_EQ(exp.size(), 200u);
    ASSERT_EQ(ctl.size(), 200u);
    uint64_t client_failed = 0;
    for (const auto& x : exp) client_failed += x.is_null();
    auto s = stats("refuse");
    json e = cohort(s, "experiment"), k = cohort(s, "control");
    ASSERT_FALSE(e.empty()) << s.dump();
    ASSERT_FALSE(k.empty()) << s.dump();
    EXPECT_EQ(k["cgroup"], lab_->cgroup_rel(kCtl));
    // Binomial(200, 0.3): mean 60, sd 6.5; 5 sd either way.
    EXPECT_GE(client_failed, 28u);
    EXPECT_LE(client_failed, 92u);
    EXPECT_EQ(tcp(e, "connects"), 200u) << e.dump();
    EXPECT_EQ(tcp(e, "failed"), client_failed) << e.dump();
    EXPECT_EQ(e["tcp"]["failed_by"]["tardy"], client_failed);
    EXPECT_EQ(tcp(e, "established"), 200u - client_failed);
    EXPECT_EQ(e["tcp"]["connect_ms"]["count"], 200u - client_failed);
    EXPECT_EQ(e["tardy"]["failed"], client_failed);
    EXPECT_EQ(tcp(k, "connects"), 200u);
    EXPECT_EQ(tcp(k, "established"), 200u);
    EXPECT_EQ(tcp(k, "failed"), 0u) << k.dump();
    EXPECT_GT(k["packets"]["out"].get<uint64_t>(), 400u);  // SYNs and ACKs, at least
    EXPECT_GT(k["tcp"]["rtt_ms"]["count"].get<uint64_t>(), 0u);
    EXPECT_NEAR(s["difference"]["tcp"]["connect_failure_ratio"].get<double>(), double(client_failed) / 200, 1e-9);
    // The table has both cohorts side by side.
    auto t = tardy({"stats", "refuse"});
    EXPECT_EQ(t.status, 0) << t.err;
    EXPECT_NE(t.out.find("experiment"), std::string::npos) << t.out;
    EXPECT_NE(t.out.find(lab_->cgroup_rel(kCtl)), std::string::npos) << t.out;
}

// --loss 20%: lost SYNs come back after the kernel's 1 s retransmission timeout, so about a
// fifth of the experiment's connects take a second or more, with retransmits; the control has
// neither.
TEST_F(CohortLab, LossShowsRetransmitsAndSlowConnects) {
    inject({"--loss", "20%", "--control", lab_->cgroup_rel(kCtl)}, "lossy");
    auto exp = connects(kExp, 10, 10, 8000), ctl = connects(kCtl, 10, 10, 8000);
    size_t slow = 0, failed = 0;
    for (const auto& x : exp) {
        failed += x.is_null();
        slow += !x.is_null() && x.get<double>() >= 900;
    }
    auto s = stats("lossy");
    json e = cohort(s, "experiment"), k = cohort(s, "control");
    ASSERT_FALSE(e.empty()) << s.dump();
    EXPECT_EQ(tcp(e, "connects"), 100u);
    EXPECT_EQ(tcp(e, "established"), 100u - failed);
    EXPECT_GE(slow, 5u) << "a 20% loss left almost every connect fast";
    EXPECT_GE(tcp(e, "retransmits"), slow) << e.dump();
    EXPECT_GE(tcp(e, "rtos"), slow) << e.dump();
    // The kernel's histogram agrees with the clients: as many connects of a second or more.
    double p90 = e["tcp"]["connect_ms"]["p90"].get<double>(), p99 = e["tcp"]["connect_ms"]["p99"].get<double>();
    if (slow >= 11) {
        EXPECT_GE(p90, 900.0) << e.dump();
    }
    EXPECT_GE(p99, 900.0) << e.dump();
    EXPECT_LT(e["tcp"]["connect_ms"]["p50"].get<double>(), 100.0) << e.dump();
    EXPECT_EQ(tcp(k, "connects"), 100u);
    EXPECT_EQ(tcp(k, "retransmits"), 0u) << k.dump();
    EXPECT_LT(k["tcp"]["connect_ms"]["p99"].get<double>(), 100.0) << k.dump();
    EXPECT_GT(e["tardy"]["dropped"].get<uint64_t>(), 0u);
    EXPECT_EQ(k["tardy"]["dropped"], 0u);
    for (const auto& x : ctl) EXPECT_FALSE(x.is_null());
}

// observe: no fault, both cohorts measured for --for, the same JSON shape, and nothing of it
// left afterwards.
TEST_F(CohortLab, ObserveMeasuresWithoutFaultAndLeavesNothing) {
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", lab_->cgroup_rel(kExp), "--cgroup",
                          lab_->cgroup_rel(kCtl), "--for", "3s", "--json", "--name", "base"},
                         &out);
    ASSERT_TRUE(obs) << obs.error().message;
    ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).size() == 1; }, 20000));
    auto l = list_json();
    EXPECT_EQ(l["injections"][0]["name"], "base");
    EXPECT_EQ(l["injections"][0]["observe"], true);
    auto exp = connects(kExp, 2, 10, 1000), ctl = connects(kCtl, 1, 10, 1000);
    std::string text = output_of(*obs, out);
    auto s = json::parse(text, nullptr, false);
    ASSERT_FALSE(s.is_discarded()) << text;
    EXPECT_EQ(s["name"], "base");
    ASSERT_EQ(s["cohorts"].size(), 2u) << text;
    EXPECT_EQ(s["cohorts"][0]["role"], "observed");
    EXPECT_EQ(s["cohorts"][0]["cgroup"], lab_->cgroup_rel(kExp));
    EXPECT_EQ(tcp(s["cohorts"][0], "connects"), 20u) << text;
    EXPECT_EQ(tcp(s["cohorts"][1], "connects"), 10u) << text;
    EXPECT_EQ(tcp(s["cohorts"][0], "failed"), 0u) << text;
    EXPECT_EQ(s["cohorts"][0]["tcp"]["connect_ms"]["count"], 20u) << text;
    EXPECT_FALSE(s.contains("difference"));
    // Ended: no observation, and none of the metric programs, is left.
    EXPECT_TRUE(list_json().value("injections", json::array()).empty());
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 3000)) << count_our_programs();
}

// Cohorts one inside the other: the lab's cgroup (holding exp and ctl) and exp itself. Each
// counts every socket below it, the sockets of cgroups below it included, and only those: the
// outer one both clients' connects, the inner one its own.
TEST_F(CohortLab, NestedCohortsEachCountTheirWholeSubtree) {
    const std::string exp = lab_->cgroup_rel(kExp), outer = exp.substr(0, exp.rfind('/'));
    ASSERT_FALSE(outer.empty()) << exp;
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", outer, "--cgroup", exp, "--for", "3s",
                          "--json", "--name", "nested"},
                         &out);
    ASSERT_TRUE(obs) << obs.error().message;
    ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).size() == 1; }, 20000));
    auto e = connects(kExp, 1, 8, 1000), c = connects(kCtl, 1, 5, 1000);
    EXPECT_EQ(std::count(e.begin(), e.end(), json(nullptr)) + std::count(c.begin(), c.end(), json(nullptr)), 0);
    std::string text = output_of(*obs, out);
    auto s = json::parse(text, nullptr, false);
    ASSERT_FALSE(s.is_discarded()) << text;
    ASSERT_EQ(s["cohorts"].size(), 2u) << text;
    EXPECT_EQ(s["cohorts"][0]["cgroup"], outer);
    EXPECT_EQ(tcp(s["cohorts"][0], "connects"), 13u) << text;
    EXPECT_EQ(tcp(s["cohorts"][0], "established"), 13u) << text;
    EXPECT_EQ(s["cohorts"][0]["tcp"]["connect_ms"]["count"], 13u) << text;
    EXPECT_EQ(tcp(s["cohorts"][1], "connects"), 8u) << text;
    EXPECT_EQ(s["cohorts"][1]["tcp"]["connect_ms"]["count"], 8u) << text;
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 3000)) << count_our_programs();
}

// A cohort's cgroup removed while measured: the kernel frees its record with it (once its
// last socket is closed), and what it had counted stays in the reading. A cgroup made for
// the test beside exp; the observation's first cohort (exp) stays, so it does not end.
TEST_F(CohortLab, ARemovedCohortKeepsWhatItCounted) {
    const std::string exp = lab_->cgroup_rel(kExp), gone_rel = exp.substr(0, exp.rfind('/')) + "/gone";
    const std::string gone = lab_->cgroup(kExp).substr(0, lab_->cgroup(kExp).rfind('/')) + "/gone";
    ASSERT_EQ(mkdir(gone.c_str(), 0755), 0) << gone << ": " << std::strerror(errno);
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", exp, "--cgroup", gone_rel, "--name", "watch"},
                         &out);
    ASSERT_TRUE(obs) << obs.error().message;
    ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).size() == 1; }, 20000));
    auto r = connects(gone, 1, 6, 1000);
    EXPECT_EQ(std::count(r.begin(), r.end(), json(nullptr)), 0);
    sleep_ms(1500);  // the agent reads every record once a second
    ASSERT_TRUE(eventually([&] { return rmdir(gone.c_str()) == 0; }, 5000)) << std::strerror(errno);
    sleep_ms(500);  // the kernel frees the record after the cgroup's last reference
    auto s = stats("watch");
    ASSERT_EQ(s.value("cohorts", json::array()).size(), 2u) << s.dump();
    std::printf("  the removed cohort after its removal: %s connects, %s established\n",
                s["cohorts"][1]["tcp"]["connects"].dump().c_str(), s["cohorts"][1]["tcp"]["established"].dump().c_str());
    EXPECT_EQ(tcp(s["cohorts"][1], "connects"), 6u) << s.dump();
    EXPECT_EQ(tcp(s["cohorts"][1], "established"), 6u) << s.dump();
    EXPECT_EQ(s["cohorts"][1]["tcp"]["connect_ms"]["count"], 6u) << s.dump();
    stop_process(*obs, 1000);
    close(out);
}

// A real refusal (no listener: the peer's kernel answers the SYN with a RST) counts as
// refused, and the RST as received, IPv4 and IPv6; a cohort-local measure, no fault.
// An observation counts tardy's doing in its cohort for good: an injection's refusals stay in
// the observation's reading after the injection ends (its counters go with it; tardy run's
// phases are differences of such readings, and a step's failures once vanished from the
// phase when its --for ran out just before the phase's last reading).
TEST_F(CohortLab, AnEndedInjectionsFailuresStayInTheObservation) {
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", lab_->cgroup_rel(kExp), "--name", "watch"}, &out);
    ASSERT_TRUE(obs) << obs.error().message;
    ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).size() == 1; }, 20000));
    inject({"--fail", "connect=ECONNREFUSED:100%"}, "refuse");
    auto r = connects(kExp, 1, 6, 1000);
    EXPECT_EQ(std::count(r.begin(), r.end(), json(nullptr)), 6) << "the connects were not refused";
    auto during = cohort(stats("watch"), "observed");
    ASSERT_EQ(tardy({"stop", "refuse"}).status, 0);
    auto after = cohort(stats("watch"), "observed");
    std::printf("  observed failed_by.tardy: %s while the injection lived, %s after it ended\n",
                during["tcp"]["failed_by"]["tardy"].dump().c_str(), after["tcp"]["failed_by"]["tardy"].dump().c_str());
    EXPECT_EQ(during["tcp"]["failed_by"]["tardy"], 6u) << during.dump();
    EXPECT_EQ(after["tcp"]["failed_by"]["tardy"], 6u) << "an ended injection's failures left the reading: " << after.dump();
    EXPECT_EQ(tcp(after, "connects"), 6u) << after.dump();
    EXPECT_EQ(after["tardy"]["failed"], 6u) << after.dump();
    stop_process(*obs, 1000);
    close(out);
}

TEST_F(CohortLab, ThePeersRefusalsAndTheirResetsAreCounted) {
    // Neighbours (IPv6 duplicate detection) settled first, from the control cohort: a SYN that
    // waits for them longer than the client does is abandoned, not refused.
    for (auto to : {"198.18.0.2", "fd00:7a7d::2"})
        ASSERT_TRUE(eventually([&] {
            auto r = tardy({"__probe", "--cgroup", lab_->cgroup(kCtl), "--netns", lab_->netns_a(), "--proto", "tcp",
                            "--to", to, "--port", "7007", "--count", "1", "--timeout-ms", "1000"});
            return r.out.find("null") == std::string::npos;
        }, 5000)) << to;
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", lab_->cgroup_rel(kExp), "--for", "2s", "--json"},
                         &out);
    ASSERT_TRUE(obs) << obs.error().message;
    ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).size() == 1; }, 20000));
    for (auto to : {"198.18.0.2", "fd00:7a7d::2"})
        (void)tardy({"__probe", "--cgroup", lab_->cgroup(kExp), "--netns", lab_->netns_a(), "--proto", "tcp", "--to", to,
                     "--port", "7999", "--count", "5", "--interval-ms", "1", "--timeout-ms", "2000"});
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) text.append(buf, n);
    close(out);
    waitpid(*obs, nullptr, 0);
    auto s = json::parse(text, nullptr, false);
    ASSERT_FALSE(s.is_discarded()) << text;
    const json& t = s["cohorts"][0]["tcp"];
    EXPECT_EQ(t["connects"], 10u) << text;
    EXPECT_EQ(t["failed_by"]["refused"], 10u) << text;
    EXPECT_EQ(t["resets_received"], 10u) << text;
    EXPECT_EQ(t["established"], 0u) << text;
}

// Mistakes are one line and exit 2, with nothing started.
TEST_F(CohortLab, BadCohortsAreRefused) {
    struct Case {
        std::vector<std::string> args;
        const char* says;
    } cases[] = {
        {{"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%", "--control", lab_->cgroup_rel(kExp)}, "overlap"},
        {{"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%", "--control", "/"}, "root cgroup"},
        {{"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%", "--control", "x", "--control-pid", "1"},
         "one control"},
        {{"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%", "--control-pid", "12ab"}, "not a process id"},
        {{"observe"}, "name what to observe"},
        {{"observe", "--cgroup", lab_->cgroup_rel(kExp), "--for", "soon"}, "--for"},
        {{"observe", "--cgroup", lab_->cgroup_rel(kExp), "--cgroup", lab_->cgroup_rel(kExp), "--for", "1s"},
         "named twice"},
        {{"stats", "nosuch"}, "no active injection"},
        {{"stats", "bad/name"}, "name"},
    };
    for (const auto& c : cases) {
        auto r = tardy(c.args);
        EXPECT_EQ(r.status, 2) << c.args.back() << ": " << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
    EXPECT_TRUE(list_json().value("injections", json::array()).empty());
    // Measuring is asked for: a plain injection is not measured, and `stats` says how to ask.
    inject({"--fail", "connect=ECONNREFUSED:5%"}, "plain");
    auto r = tardy({"stats", "plain"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("not measured: give it a control cohort (--control CGROUP) or --measure"), std::string::npos) << r.err;
    EXPECT_EQ(list_json()["injections"][0]["measured"], false);
    tardy({"stop", "plain"});
    inject({"--fail", "connect=ECONNREFUSED:5%", "--measure"}, "alone");
    r = tardy({"stats", "alone", "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    ASSERT_EQ(j["cohorts"].size(), 1u) << r.out;
    EXPECT_EQ(j["cohorts"][0]["role"], "experiment");
    EXPECT_FALSE(j.contains("difference"));
}

// Attacked: the observing command SIGKILLed leaves its observation (harmless, it injects
// nothing) for `tardy stop`; the agent SIGKILLed takes every metric program with it; `stats
// --watch --json` prints a line a second and ends when its injection does.
TEST_F(CohortLab, KilledCommandsAndAgentsLeaveNoMeasuring) {
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", lab_->cgroup_rel(kExp), "--name", "watch"}, &out);
    ASSERT_TRUE(obs) << obs.error().message;
    ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).size() == 1; }, 20000));
    kill(*obs, SIGKILL);
    waitpid(*obs, nullptr, 0);
    close(out);
    EXPECT_EQ(list_json()["injections"][0]["name"], "watch");
    auto st = tardy({"stop", "watch"});
    EXPECT_EQ(st.status, 0) << st.err;
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 3000)) << count_our_programs();

    inject({"--loss", "1%", "--control", lab_->cgroup_rel(kCtl), "--for", "5s"}, "short");
    auto w = spawn_cmd({build_dir() + "/tardy", "stats", "short", "--watch", "--json"}, &out);
    ASSERT_TRUE(w) << w.error().message;
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) text.append(buf, n);  // until it exits
    close(out);
    int status = 0;
    waitpid(*w, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0) << text;
    EXPECT_GE(std::count(text.begin(), text.end(), '\n'), 3) << text;  // 2 readings a second apart, the end
    EXPECT_NE(text.find("short has ended"), std::string::npos) << text;
    auto first = json::parse(text.substr(0, text.find('\n')), nullptr, false);
    ASSERT_FALSE(first.is_discarded()) << text;
    EXPECT_EQ(first["cohorts"].size(), 2u);

    // A socket fault: its links are FD-owned on every kernel (a clsact filter of a packet fault
    // outlives a SIGKILLed agent on kernels without TCX until the next tardy command; the lease
    // makes it inert, docs/design.md).
    inject({"--fail", "connect=ECONNREFUSED:1%", "--control", lab_->cgroup_rel(kCtl)}, "again");
    ASSERT_GT(count_our_programs(), 0);
    kill(agent_pid(), SIGKILL);
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 3000)) << count_our_programs();
}

}  // namespace
