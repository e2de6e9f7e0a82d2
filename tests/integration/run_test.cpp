// SPDX-License-Identifier: Apache-2.0
// `tardy run` (issue 12) through the real kernel path: experiment files against the lab's two
// cohorts with TCP load running in both, judged from the kernel's cohort metrics and probes;
// held, deviated (rolled back at once), baseline not met, outside the window, the window
// closing, SIGKILL and SIGTERM of the runner, bad files, dry runs and suites.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>

#include "../common/harness.hpp"
#include "sys/process.hpp"

using namespace tardy;
using namespace tardy::test;
using nlohmann::json;

namespace {

class RunLab : public Lab {
protected:
    void TearDown() override {
        for (auto [pid, fd] : load_) {
            stop_process(pid, 200);
            close(fd);
        }
        load_.clear();
        for (pid_t p : servers_) stop_process(p, 500);
        servers_.clear();
        std::filesystem::remove_all(dir_);
        Lab::TearDown();
    }

    // TCP connects from `c`, one every 25 ms for about `seconds`, in the background.
    void load(Sandbox::Cohort c, int seconds) {
        int out = -1;
        auto pid = spawn_cmd({build_dir() + "/tardy", "__probe", "--cgroup", lab_->cgroup(c), "--netns", lab_->netns_a(),
                              "--proto", "tcp", "--to", "198.18.0.2", "--port", "7007", "--count",
                              std::to_string(seconds * 40), "--interval-ms", "25", "--timeout-ms", "1000"},
                             &out);
        ASSERT_TRUE(pid) << pid.error().message;
        load_.emplace_back(*pid, out);
    }
    void load_both(int seconds) {
        load(kExp, seconds);
        load(kCtl, seconds);
        // The probers of `tardy run` take the network namespace of a process in the cohort.
        ASSERT_TRUE(eventually([&] { return has_comm(kExp, "") && has_comm(kCtl, ""); }, 3000));
    }

    // A process in the cohort's cgroup (with this comm, if given).
    bool has_comm(Sandbox::Cohort c, const std::string& comm) {
        std::ifstream procs(lab_->cgroup(c) + "/cgroup.procs");
        for (pid_t p; procs >> p;) {
            if (comm.empty()) return true;
            std::ifstream f("/proc/" + std::to_string(p) + "/comm");
            std::string name;
            std::getline(f, name);
            if (name == comm) return true;
        }
        return false;
    }

    std::string file(const std::string& name, const std::string& text) {
        std::filesystem::create_directories(dir_);
        std::string path = dir_ + "/" + name;
        std::ofstream(path) << text;
        return path;
    }
    std::string cohorts() const {
        return "cohorts:\n  experiment: {cgroup: " + lab_->cgroup_rel(kExp) + "}\n  control: {cgroup: " +
               lab_->cgroup_rel(kCtl) + "}\n";
    }
    json journal(const std::string& report) {
        std::ifstream f(report + "/journal.json");
        std::stringstream s;
        s << f.rdbuf();
        auto j = json::parse(s.str(), nullptr, false);
        return j.is_discarded() ? json::object() : j;
    }
    size_t active() {
        auto l = list_json();
        return l.contains("injections") ? l["injections"].size() : 0;
    }

    std::string dir_ = "/tmp/tardy-run-" + std::to_string(getpid());
    std::vector<std::pair<pid_t, int>> load_;
    std::vector<pid_t> servers_;
};

// A mild fault the hypothesis tolerates: exit 0, every phase completed, the step's counters
// and both cohorts' metrics per phase in the journal, a report page, nothing left.
TEST_F(RunLab, HeldHypothesisExits0WithAJournalAndReport) {
    load_both(12);
    auto f = file("held.yaml", "title: mild refusals are tolerated\n" + cohorts() +
                                   "steady_state:\n"
                                   "  - metric: tcp.connect_failure_ratio\n    max: 0.6\n"
                                   "  - metric: tcp.connect_ms.p99\n    max_vs_control: +5000%\n"
                                   "  - probe: command\n    run: [/bin/true]\n    every: 500ms\n    min_success: 90%\n"
                                   "baseline: 2s\n"
                                   "method:\n  - fault: {fail: \"connect=ECONNREFUSED:20%\"}\n    for: 3s\n"
                                   "recovery: 1s\n");
    auto r = tardy({"run", f, "--report", dir_ + "/rep", "--quiet"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    json j = journal(dir_ + "/rep");
    ASSERT_EQ(j.value("status", ""), "held") << j.dump();
    ASSERT_EQ(j["phases"].size(), 3u);
    for (const auto& p : j["phases"]) EXPECT_TRUE(p.value("completed", false)) << p.dump();
    const json& step = j["phases"][1];
    EXPECT_GT(step["fault"]["counters"].value("failed", 0), 0) << step.dump();
    double exp_ratio = step["cohorts"][0]["tcp"]["connect_failure_ratio"].get<double>();
    EXPECT_GT(exp_ratio, 0.05) << step.dump();
    EXPECT_LT(exp_ratio, 0.45) << step.dump();
    EXPECT_EQ(step["cohorts"][1]["tcp"]["failed"], 0) << "the control was refused too";
    EXPECT_EQ(j["phases"][0]["cohorts"][0]["tcp"]["failed"], 0) << "a fault before the method";
    EXPECT_GT(j["samples"].size(), 8u);
    EXPECT_EQ(j["comparison"].size(), 3u);
    // The failure ratio is compared per connect: the experiment's is higher, significantly.
    EXPECT_LT(j["comparison"][0].value("p_value", 1.0), 0.01) << j["comparison"][0].dump();
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/rep/report.html"));
    EXPECT_EQ(active(), 0u) << "the run left an injection";
}

// A fault that breaks the hypothesis: exit 1, rolled back within a second of the breach
// being measurable, the later step never applied, the clients fine again at once.
TEST_F(RunLab, BreachRollsTheFaultBackAndSkipsTheRest) {
    load_both(12);
    auto f = file("breach.yaml", "title: refusals break it\n" + cohorts() +
                                     "steady_state:\n  - metric: tcp.connect_failure_ratio\n    max: 0.05\n"
                                     "baseline: 1s\n"
                                     "method:\n  - fault: {fail: \"connect=ECONNREFUSED:60%\"}\n    for: 20s\n"
                                     "  - fault: {loss: 100%}\n    for: 20s\n");
    double t0 = mono_ms();
    auto r = tardy({"run", f, "--json", "--quiet"});
    double took = mono_ms() - t0;
    EXPECT_EQ(r.status, 1) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["status"], "deviated");
    EXPECT_NE(j.value("reason", "").find("rolled back"), std::string::npos) << j["reason"];
    ASSERT_EQ(j["breaches"].size(), 1u);
    const json& step1 = j["phases"][1];
    double start = step1["start_s"].get<double>(), breach = j["breaches"][0]["t_s"].get<double>();
    // 60% of 40 connects a second: 10 ended connects take about 0.25 s, then one sample (0.5 s).
    EXPECT_LT(breach - start, 2.5) << j.dump();
    // Rolled back within a second of the breach: the agent's confirmation that the step's
    // injection is gone (its programs' rule removed) comes before the next sample.
    ASSERT_TRUE(step1["fault"]["stopped_s"].is_number()) << step1.dump();
    std::printf("  breach %.2f s into the step, fault stopped %.3f s after the breach, run over in %.1f s\n",
                breach - start, step1["fault"]["stopped_s"].get<double>() - breach, took / 1000);
    EXPECT_LT(step1["fault"]["stopped_s"].get<double>() - breach, 1.0) << j.dump();
    EXPECT_FALSE(step1["completed"].get<bool>());
    EXPECT_FALSE(j["phases"][2]["started"].get<bool>()) << "step 2 ran after the breach";
    EXPECT_LT(took, 8000) << "the run went on after the breach";
    EXPECT_EQ(active(), 0u);
    // Rolled back: every connect of the experiment cohort succeeds now.
    auto p = probe(kExp, "tcp", false, 20, 1, 1000);
    EXPECT_EQ(p.answered(), 20u);
}

// The steady state does not hold before any fault (a probe that always fails): exit 3 and
// nothing injected.
TEST_F(RunLab, BaselineNotMetInjectsNothing) {
    load_both(6);
    auto f = file("base.yaml", "title: unhealthy before we start\n" + cohorts() +
                                   "steady_state:\n  - probe: command\n    run: [/bin/false]\n    every: 200ms\n"
                                   "baseline: 3s\n"
                                   "method:\n  - fault: {fail: \"connect=ECONNREFUSED:100%\"}\n    for: 5s\n");
    auto r = tardy({"run", f, "--json", "--quiet"});
    EXPECT_EQ(r.status, 3) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["status"], "baseline_not_met");
    EXPECT_FALSE(j["phases"][1]["started"].get<bool>());
    EXPECT_EQ(j["phases"][1]["fault"]["injection"], "");
    EXPECT_EQ(j["phases"][0]["cohorts"][0]["tcp"]["failed"], 0);
    EXPECT_EQ(active(), 0u);
}

std::string today_utc(int offset_days = 0) {
    std::time_t t = std::time(nullptr) + offset_days * 86400;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char b[16];
    std::strftime(b, sizeof b, "%Y-%m-%d", &tm);
    return b;
}

// Outside the window (today is excepted): exit 2, one line, no agent started.
TEST_F(RunLab, OutsideTheWindowIsRefusedBeforeAnything) {
    auto f = file("win.yaml", "title: not today\n" + cohorts() + "window:\n  timezone: UTC\n  except: [" + today_utc() +
                                  ", " + today_utc(1) + "]\n"
                                  "method:\n  - fault: {loss: 5%}\n    for: 5s\n");
    auto r = tardy({"run", f, "--quiet"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("outside its window"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("excepted"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(run_dir_ + "/agent.sock")) << "an agent was started";
}

// The window closes 4 s into the run: the fault ends at that moment, exit 4.
TEST_F(RunLab, TheWindowClosingAbortsTheRun) {
    load_both(10);
    auto hms = [](std::time_t t) {
        std::tm tm{};
        gmtime_r(&t, &tm);
        char b[16];
        std::strftime(b, sizeof b, "%H:%M:%S", &tm);
        return std::string(b);
    };
    std::time_t now = std::time(nullptr);
    auto f = file("closing.yaml", "title: closes soon\n" + cohorts() + "window:\n  timezone: UTC\n  hours: \"" +
                                      hms(now - 3600) + "-" + hms(now + 4) + "\"\n"
                                      "baseline: 1s\n"
                                      "method:\n  - fault: {fail: \"connect=ECONNREFUSED:50%\"}\n    for: 30s\n");
    double t0 = mono_ms();
    auto r = tardy({"run", f, "--json", "--quiet"});
    double took = mono_ms() - t0;
    EXPECT_EQ(r.status, 4) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["status"], "aborted");
    EXPECT_NE(j.value("reason", "").find("window closed"), std::string::npos) << j["reason"];
    EXPECT_GT(took, 2500);
    EXPECT_LT(took, 7000);
    EXPECT_EQ(active(), 0u);
}

// SIGKILL of `tardy run` in the middle of a step: its fault and observation end within a
// second (bound to the runner's process), its probers die with it.
TEST_F(RunLab, SigkilledRunnerLeavesNoFaultBehind) {
    load_both(10);
    auto f = file("kill.yaml", "title: killed mid-step\n" + cohorts() +
                                   "steady_state:\n  - probe: command\n    run: [/bin/sleep, \"0.05\"]\n    every: 200ms\n"
                                   "method:\n  - fault: {fail: \"connect=ECONNREFUSED:100%\"}\n    for: 60s\n");
    int out = -1;
    auto pid = spawn_cmd({build_dir() + "/tardy", "run", f, "--quiet"}, &out);
    ASSERT_TRUE(pid);
    ASSERT_TRUE(eventually([&] { return active() == 2; }, 20000, 100)) << "the step never started";
    ASSERT_TRUE(eventually([&] { return probe(kExp, "tcp", false, 1, 1, 500).answered() == 0; }, 3000, 50));
    kill(*pid, SIGKILL);
    double t0 = mono_ms();
    waitpid(*pid, nullptr, 0);
    close(out);
    EXPECT_TRUE(eventually([&] { return active() == 0; }, 1000, 20)) << list_json().dump();
    double gone = mono_ms() - t0;
    EXPECT_LT(gone, 1000);
    EXPECT_EQ(probe(kExp, "tcp", false, 10, 1, 1000).answered(), 10u) << "connects still refused";
    // The probers (named tardy-probe) went with it.
    EXPECT_TRUE(eventually([&] { return !has_comm(kExp, "tardy-probe"); }, 1000));
}

// SIGTERM: rolled back, exit 4, a journal that says why.
TEST_F(RunLab, SigtermAbortsAndRollsBack) {
    load_both(10);
    auto f = file("term.yaml", "title: stopped by hand\n" + cohorts() +
                                   "method:\n  - fault: {fail: \"connect=ECONNREFUSED:100%\"}\n    for: 60s\n");
    int out = -1;
    auto pid = spawn_cmd({build_dir() + "/tardy", "run", f, "--quiet", "--report", dir_ + "/rep"}, &out);
    ASSERT_TRUE(pid);
    ASSERT_TRUE(eventually([&] { return active() == 2; }, 20000, 100));
    kill(*pid, SIGTERM);
    int st = 0;
    waitpid(*pid, &st, 0);
    close(out);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 4) << st;
    EXPECT_EQ(active(), 0u);
    json j = journal(dir_ + "/rep");
    EXPECT_EQ(j.value("status", ""), "aborted");
    EXPECT_NE(j.value("reason", "").find("Terminated"), std::string::npos) << j.dump();
}

// A real client as the probe: Debian's redis-cli against a real redis-server, run by tardy
// inside each cohort. Every connect of the experiment refused: the probe's success drops,
// the run deviates, the fault is rolled back and redis-cli gets PONG again.
TEST_F(RunLab, RedisCliProbeDeviatesAndIsRolledBack) {
    pid_t srv = fork();
    if (srv == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        std::string ns = lab_->netns_b_name();
        execlp("ip", "ip", "netns", "exec", ns.c_str(), "redis-server", "--port", "6391", "--bind", "0.0.0.0",
               "--protected-mode", "no", "--save", "", "--appendonly", "no", static_cast<char*>(nullptr));
        _exit(127);
    }
    ASSERT_GT(srv, 0);
    servers_.push_back(srv);
    auto ping = [&](Sandbox::Cohort c) {
        auto r = run_cmd({"sh", "-c", "echo $$ > " + lab_->cgroup(c) + "/cgroup.procs && exec ip netns exec " +
                                          lab_->netns_a_name() + " redis-cli -h 198.18.0.2 -p 6391 ping"});
        return r ? r->out : std::string();
    };
    ASSERT_TRUE(eventually([&] { return ping(kCtl).find("PONG") != std::string::npos; }, 5000, 100)) << "no redis";
    load_both(15);
    auto f = file("redis.yaml", "title: the cache refuses us\n" + cohorts() +
                                    "steady_state:\n  - probe: command\n    run: [redis-cli, -h, 198.18.0.2, -p, \"6391\", ping]\n"
                                    "    every: 200ms\n    over: 2s\n    min_success: 90%\n"
                                    "baseline: 2s\n"
                                    "method:\n  - fault: {fail: \"connect=ECONNREFUSED:100%\"}\n    for: 20s\n");
    double t0 = mono_ms();
    auto r = tardy({"run", f, "--json", "--quiet"});
    double took = mono_ms() - t0;
    EXPECT_EQ(r.status, 1) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["status"], "deviated") << j.value("reason", "");
    EXPECT_NE(j.value("reason", "").find("probe command redis-cli"), std::string::npos) << j["reason"];
    EXPECT_TRUE(j["phases"][0].value("completed", false)) << "the baseline did not hold: " << j["phases"][0].dump();
    EXPECT_GT(j["phases"][1]["fault"]["counters"].value("failed", 0), 0) << j["phases"][1].dump();
    EXPECT_LT(took, 10000) << "the run went on after the breach";
    EXPECT_EQ(active(), 0u);
    EXPECT_NE(ping(kExp).find("PONG"), std::string::npos) << "still refused after the rollback";
}

// A signal ends a suite: the experiment in progress is rolled back and reported, the next
// file never starts, and the summary says how many ran.
TEST_F(RunLab, SigtermEndsTheSuite) {
    load_both(10);
    for (const char* n : {"1-first.yaml", "2-second.yaml"})
        file(n, std::string("title: ") + n + "\n" + cohorts() +
                    "method:\n  - fault: {fail: \"connect=ECONNREFUSED:100%\"}\n    for: 60s\n");
    std::string suite = dir_;
    std::string rep = "/tmp/tardy-run-rep-" + std::to_string(getpid());
    int out = -1;
    auto pid = spawn_cmd({build_dir() + "/tardy", "run", suite, "--quiet", "--report", rep}, &out);
    ASSERT_TRUE(pid);
    ASSERT_TRUE(eventually([&] { return active() == 2; }, 20000, 100));
    kill(*pid, SIGTERM);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) text.append(buf, n);
    int st = 0;
    waitpid(*pid, &st, 0);
    close(out);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 4) << st;
    EXPECT_NE(text.find("1 of 2 experiments run (stopped by a signal): 1 aborted"), std::string::npos) << text;
    EXPECT_TRUE(std::filesystem::exists(rep + "/1-first/journal.json"));
    EXPECT_FALSE(std::filesystem::exists(rep + "/2-second")) << "the second experiment started";
    EXPECT_EQ(active(), 0u);
    std::filesystem::remove_all(rep);
}

// Bad files: exit 2, one line naming the file's line; a dry run prints the plan and starts
// nothing; a suite runs every file and ends with one summary line.
TEST_F(RunLab, BadFilesDryRunsAndSuites) {
    auto bad = file("bad.yaml", "title: t\n" + cohorts() + "method:\n  - fault: {loss: 5%}\n    for: 5 minutes\n");
    auto r = tardy({"run", bad});
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.err.rfind("tardy: " + bad + ":7: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    auto missing = file("missing.yaml", "title: t\ncohorts:\n  experiment: {cgroup: no/such/cgroup}\n"
                                        "method:\n  - fault: {loss: 5%}\n    for: 5s\n");
    r = tardy({"run", missing, "--dry-run"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find(missing + ":3: cohorts.experiment"), std::string::npos) << r.err;
    std::filesystem::remove(missing);
    auto good = file("good.yaml", "title: plan me\n" + cohorts() + "baseline: 10s\n"
                                  "method:\n  - fault: {loss: 5%}\n    for: 1m\nrecovery: 5s\n");
    r = tardy({"run", good, "--dry-run"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("step 1 for 1m: loss 5%"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Nothing was injected"), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(run_dir_ + "/agent.sock")) << "a dry run started an agent";
    // The directory as a suite: bad.yaml refused, good.yaml planned, in the files' order.
    r = tardy({"run", dir_, "--dry-run"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.out.find("2 experiments: 1 refused, 1 planned"), std::string::npos) << r.out;
    // A dry run outside the window still shows the plan, and says the window is shut.
    std::filesystem::remove(bad);
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char hours[32];
    std::snprintf(hours, sizeof hours, "\"%02d:00-%02d:30\"", (utc.tm_hour + 3) % 24, (utc.tm_hour + 3) % 24);
    auto shut = file("shut.yaml", "title: shut\n" + cohorts() + "window: {hours: " + hours + ", timezone: UTC}\n"
                                  "method:\n  - fault: {loss: 5%}\n    for: 1m\n");
    r = tardy({"run", shut, "--dry-run"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("SHUT now"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Nothing was injected"), std::string::npos) << r.out;
    std::filesystem::remove(shut);
    // Nested cohorts measure each other: refused, naming both.
    std::string inner = lab_->cgroup(kExp) + "/inner";
    ASSERT_EQ(mkdir(inner.c_str(), 0755), 0);
    auto nested = file("nested.yaml", "title: nested\ncohorts:\n  experiment: {cgroup: " + lab_->cgroup_rel(kExp) +
                                          "}\n  control: {cgroup: " + lab_->cgroup_rel(kExp) + "/inner}\n"
                                          "method:\n  - fault: {loss: 5%}\n    for: 1m\n");
    r = tardy({"run", nested, "--dry-run"});
    rmdir(inner.c_str());
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.err.find("is inside the experiment"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
