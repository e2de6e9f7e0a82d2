// SPDX-License-Identifier: Apache-2.0
// Syscall stalls through the real tracepoints: write(2)s to /dev/null timed by processes in
// the experiment and control cgroups.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>

#include "sys/cgroup.hpp"

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class StallLab : public Lab {
protected:
    std::vector<double> write_ms(Sandbox::Cohort c, int count, int interval_ms = 5) {
        auto r = testkit({"writetime", "--cgroup", lab_->cgroup(c), "--count", std::to_string(count), "--interval-ms",
                        std::to_string(interval_ms)});
        EXPECT_EQ(r.status, 0) << r.err;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? std::vector<double>{} : j["ms"].get<std::vector<double>>();
    }
    static double median(std::vector<double> v) {
        if (v.empty()) return -1;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }
    // State letter of a process from /proc/PID/stat ('T' = stopped).
    static char state(pid_t pid) {
        std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(st, line);
        auto close = line.rfind(')');
        return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
    }
    // A writer in the experiment cohort, in the background; returns its pid. Its report
    // goes to a pipe that nobody reads (it fits), kept open so it cannot die of SIGPIPE.
    pid_t background_writer(int count) {
        int out = -1;
        auto p = spawn_cmd({build_dir() + "/tardy-testkit", "writetime", "--cgroup", lab_->cgroup(kExp), "--count",
                            std::to_string(count), "--interval-ms", "1"},
                           &out);
        EXPECT_TRUE(p);
        pipes_.emplace_back(out);
        return p ? *p : 0;
    }
    std::vector<Fd> pipes_;
};

TEST_F(StallLab, StallAddsItsDelayOnlyInTheExperimentCohort) {
    inject({"--stall", "write=50ms"});
    auto e = write_ms(kExp, 20), c = write_ms(kCtl, 20);
    std::printf("  write(2) median: experiment %.2f ms, control %.3f ms\n", median(e), median(c));
    EXPECT_GE(median(e), 50);
    EXPECT_LE(median(e), 53);  // 50.2 on the host, 52.0 in the emulated VM
    EXPECT_LT(median(c), 1);
    auto l = list_json()["injections"][0]["counters"];
    EXPECT_GE(l["stalled"].get<int>(), 20);
}

TEST_F(StallLab, PercentageIsHonoured) {
    inject({"--stall", "write=10ms:50%"});
    auto e = write_ms(kExp, 120, 1);
    int stalled = static_cast<int>(std::count_if(e.begin(), e.end(), [](double ms) { return ms >= 10; }));
    // Binomial, n = 120, p = 0.5: sd = 0.046; 5 sd either side.
    EXPECT_NEAR(stalled / 120.0, 0.5, 0.23) << stalled << " of 120 stalled";
}

TEST_F(StallLab, ForEndsTheStall) {
    inject({"--stall", "write=20ms", "--for", "1s"});
    double t0 = mono_ms();
    EXPECT_GE(median(write_ms(kExp, 5)), 20);
    EXPECT_TRUE(eventually([&] { return median(write_ms(kExp, 1)) < 1; }, static_cast<int>(1200 - (mono_ms() - t0)),
                           1))
        << "the stall outlived --for";
    EXPECT_LT(median(write_ms(kExp, 5)), 1) << "the stall outlived --for";
}

TEST_F(StallLab, SigkilledAgentLeavesNoProcessStopped) {
    inject({"--stall", "write=5s"});
    pid_t w = background_writer(3);
    for (int i = 0; i < 100 && state(w) != 'T'; i++) sleep_ms(10);
    ASSERT_EQ(state(w), 'T') << "the writer was never stopped";
    double t0 = mono_ms();
    ASSERT_EQ(kill(agent_pid(), SIGKILL), 0);
    EXPECT_TRUE(eventually([&] { return state(w) != 'T'; }, 1000, 5))
        << "a stalled process is still stopped 1 s after the agent died";
    waitpid(w, nullptr, 0);
    EXPECT_LT(mono_ms() - t0, 1500) << "the writer waited for its 5 s stall after the agent died";
}

TEST_F(StallLab, KillResumesStalledProcesses) {
    inject({"--stall", "write=5s"});
    pid_t w = background_writer(3);
    for (int i = 0; i < 100 && state(w) != 'T'; i++) sleep_ms(10);
    ASSERT_EQ(state(w), 'T');
    double t0 = mono_ms();
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.err;
    int st = 0;
    waitpid(w, &st, 0);
    EXPECT_LT(mono_ms() - t0, 1500) << "the writer waited for its stall despite kill";
}

TEST_F(StallLab, BadStallsAreRefused) {
    for (auto [arg, needle] : std::vector<std::pair<std::string, std::string>>{
             {"frob=50ms", "unknown or unsupported syscall"},
             {"write", "SYSCALL=DUR"},
             {"write=50", "not a duration"},
             {"write=0.5ms", "1ms to 60s"},
             {"write=50ms:0%", "0% stalls nothing"},
             {"write=50ms:101%", "over 100%"}}) {
        auto r = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--stall", arg});
        EXPECT_EQ(r.status, 2) << arg << ": " << r.err;
        EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    }
    EXPECT_FALSE(std::filesystem::exists(run_dir_ + "/agent.sock"));
}

// The watchdog: a child of the agent named tardy-watchdog.
pid_t watchdog_of(pid_t agent) {
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        std::string n = e.path().filename();
        if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
        std::ifstream st(e.path() / "stat");
        std::string line;
        std::getline(st, line);
        auto close = line.rfind(')');
        if (close == std::string::npos || line.find("(tardy-watchdog)") == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == agent) return std::stoi(n);
    }
    return 0;
}

// 2a. A frozen agent resumes nobody and renews no lease: the watchdog resumes, the lease
// ends new stalls.
TEST_F(StallLab, FrozenAgentLeavesNoStallLongerThanASecond) {
    inject({"--stall", "write=50ms"});
    pid_t agent = agent_pid();
    ASSERT_EQ(kill(agent, SIGSTOP), 0);
    double t0 = mono_ms();
    auto e = write_ms(kExp, 20, 1);
    double took = mono_ms() - t0;
    kill(agent, SIGCONT);
    ASSERT_EQ(e.size(), 20u);
    double worst = *std::max_element(e.begin(), e.end());
    std::printf("  agent frozen: 20 writes in %.0f ms, worst %.0f ms\n", took, worst);
    EXPECT_LT(worst, 50 + 1000) << "a stall lasted past its time plus a second while the agent was frozen";
    EXPECT_LT(took, 5000);
}

// 2b. A kill of the agent's process group (systemd, a runtime) does not take the watchdog.
TEST_F(StallLab, ProcessGroupKillOfTheAgentStillResumes) {
    inject({"--stall", "write=3s"});
    pid_t agent = agent_pid();
    pid_t w = background_writer(3);
    for (int i = 0; i < 200 && state(w) != 'T'; i++) sleep_ms(10);
    ASSERT_EQ(state(w), 'T') << "the writer was never stopped";
    pid_t dog = watchdog_of(agent);
    ASSERT_GT(dog, 0) << "no watchdog";
    EXPECT_NE(getpgid(dog), getpgid(agent)) << "the watchdog shares the agent's process group";
    double t0 = mono_ms();
    ASSERT_EQ(kill(-getpgid(agent), SIGKILL), 0);
    waitpid(w, nullptr, 0);
    EXPECT_LT(mono_ms() - t0, 1500) << "the writer stayed stopped after its agent's group was killed";
    for (int i = 0; i < 40 && process_alive(dog); i++) sleep_ms(50);
    EXPECT_FALSE(process_alive(dog)) << "the watchdog outlived its work";
}

// A task's state letter and voluntary context switches (/proc/TID/status).
std::pair<char, long> stop_mark(pid_t tid) {
    std::ifstream f("/proc/" + std::to_string(tid) + "/status");
    char st = '?';
    long switches = -1;
    for (std::string line; std::getline(f, line);) {
        if (line.rfind("State:", 0) == 0 && line.size() > 7)
            st = line[line.find_first_not_of(" \t", 6)];
        else if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
            switches = std::stol(line.substr(24));
    }
    return {st, switches};
}

// The cgroup a process is in, as /proc/PID/cgroup names it ("0::/a/b" -> "/a/b").
std::string cgroup_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    return "";
}

// 2b. A cgroup kill of the agent (systemd stopping its unit, a runtime removing its
// container, the OOM killer's group kill) SIGKILLs every process in the agent's cgroup at
// once. The watchdog left that cgroup for the root one when it started, so it resumes what
// the agent left: no task of the target stays stopped longer than its stall plus a second,
// and nothing of tardy is left afterwards. The CLI runs in a scratch cgroup below the
// test's own, so the agent it starts does too.
TEST_F(StallLab, CgroupKillOfTheAgentStillResumes) {
    constexpr int kStallMs = 300;
    auto cgfs = CgroupFs::detect();
    ASSERT_TRUE(cgfs);
    auto self = cgfs->by_pid(getpid());
    ASSERT_TRUE(self);
    const std::string scratch = self->path + "/tardy-agent-" + name_;
    ASSERT_EQ(mkdir(scratch.c_str(), 0755), 0) << scratch << ": " << std::strerror(errno);
    struct Remove {
        std::string path;
        ~Remove() { remove_cgroup_tree(path); }
    } remove{scratch};
    ASSERT_TRUE(std::filesystem::exists(scratch + "/cgroup.kill")) << "cgroup.kill needs Linux 5.14";
    auto r = run_cmd({"sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", scratch, build_dir() + "/tardy",
                      "inject", "--cgroup", lab_->cgroup_rel(kExp), "--stall",
                      "write=" + std::to_string(kStallMs) + "ms"});
    ASSERT_TRUE(r && r->status == 0) << (r ? r->err : "");
    pid_t agent = agent_pid();
    const std::string scratch_rel = scratch.substr(cgfs->mount().size());
    ASSERT_EQ(cgroup_of(agent), scratch_rel) << "the agent did not start in the scratch cgroup";
    // It names itself and moves itself after its fork, and inject does not wait for either
    // (stall_object.cpp).
    pid_t dog = 0;
    eventually([&] { return (dog = watchdog_of(agent)) > 0; }, 1000, 5);
    ASSERT_GT(dog, 0) << "no watchdog";
    EXPECT_TRUE(eventually([&] { return cgroup_of(dog) != scratch_rel; }, 1000, 5))
        << "the watchdog is still in the agent's cgroup";

    // Every task of the target, sampled every 2 ms: the longest stop of any. A stop is a
    // voluntary context switch, so a task seen stopped twice with the same count was stopped
    // all along in between; a new count is a new stop (the writer, resumed, stalls again at
    // once: its next write is due).
    std::atomic<bool> done{false};
    std::atomic<double> longest_t{0};
    std::thread sampler([&] {
        std::map<pid_t, std::pair<double, long>> stopped;  // tid -> since, switches
        while (!done) {
            double now = mono_ms();
            std::ifstream threads(lab_->cgroup(kExp) + "/cgroup.threads");
            std::map<pid_t, std::pair<double, long>> still;
            for (pid_t tid; threads >> tid;) {
                auto [st, switches] = stop_mark(tid);
                if (st != 'T') continue;
                auto it = stopped.find(tid);
                double since = it != stopped.end() && it->second.second == switches ? it->second.first : now;
                still[tid] = {since, switches};
                if (now - since > longest_t) longest_t = now - since;
            }
            stopped = std::move(still);
            sleep_ms(2);
        }
    });
    struct Join {  // on every way out, an ASSERT's too
        std::atomic<bool>& done;
        std::thread& t;
        ~Join() {
            done = true;
            if (t.joinable()) t.join();
        }
    } join{done, sampler};
    pid_t w = background_writer(1000);
    for (int i = 0; i < 200 && state(w) != 'T'; i++) sleep_ms(5);
    ASSERT_EQ(state(w), 'T') << "the writer was never stopped";
    sleep_ms(3 * kStallMs + 50);  // a few stalls come and go while the agent lives
    double before = longest_t;
    {
        std::ofstream cgkill(scratch + "/cgroup.kill");
        ASSERT_TRUE(cgkill << "1" << std::flush) << "cannot write " << scratch << "/cgroup.kill";
    }
    double t0 = mono_ms();
    EXPECT_TRUE(eventually([&] { return !process_alive(agent); }, 2000, 5)) << "the agent survived cgroup.kill";
    int st = 0;
    pid_t reaped = 0;
    while ((reaped = waitpid(w, &st, WNOHANG)) == 0 && mono_ms() - t0 < 8000) sleep_ms(10);
    done = true;
    sampler.join();
    EXPECT_EQ(reaped, w) << "the writer is stuck (state " << state(w) << ") after the agent's cgroup was killed";
    if (reaped != w) {
        kill(w, SIGCONT);
        waitpid(w, nullptr, 0);
    }
    std::printf("  longest stop of a target task: %.0f ms while the agent lived, %.0f ms in all; writer done %.0f ms "
                "after cgroup.kill\n",
                before, longest_t.load(), mono_ms() - t0);
    EXPECT_LT(longest_t, kStallMs + 1000) << "a task of the target stayed stopped past its stall plus a second";
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "the writer did not finish its writes";
    // Nothing of tardy left: no agent, no watchdog, nobody in the scratch cgroup, no program.
    EXPECT_TRUE(eventually([&] { return !process_alive(dog); }, 3000, 10)) << "the watchdog outlived its work";
    std::ifstream procs(scratch + "/cgroup.procs");
    pid_t left = 0;
    EXPECT_FALSE(procs >> left) << "process " << left << " is still in the agent's cgroup";
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 2000, 20)) << "a program outlived the agent";
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.out << k.err;
    EXPECT_EQ(k.out.find("resumed"), std::string::npos) << "kill found stopped processes: " << k.out;
    EXPECT_EQ(k.out.find("stopped agent"), std::string::npos) << k.out;
}

// 2b. Agent and watchdog SIGKILLed by hand: the next tardy command resumes what they left.
TEST_F(StallLab, WhenAgentAndWatchdogAreKilledTheNextCommandResumes) {
    inject({"--stall", "write=300ms"});
    pid_t agent = agent_pid();
    pid_t w = background_writer(3);
    for (int i = 0; i < 200 && state(w) != 'T'; i++) sleep_ms(10);
    ASSERT_EQ(state(w), 'T');
    pid_t dog = watchdog_of(agent);
    ASSERT_GT(dog, 0);
    kill(dog, SIGKILL);
    kill(agent, SIGKILL);
    sleep_ms(1500);
    ASSERT_EQ(state(w), 'T') << "expected nobody to be left to resume it";
    auto r = tardy({"list"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("resumed 1 process"), std::string::npos) << r.err;
    waitpid(w, nullptr, 0);
}

// 2c. After an agent-only SIGKILL, a process that re-enters its stalled call is not left
// stopped by the programs that linger until the kernel releases them.
TEST_F(StallLab, AfterTheAgentDiesNoRestoppedProcessIsLeft) {
    for (int run = 0; run < 5; run++) {
        inject({"--stall", "write=100ms"});
        pid_t w = background_writer(400);
        for (int i = 0; i < 200 && state(w) != 'T'; i++) sleep_ms(5);
        sleep_ms(run * 37 % 90);
        ASSERT_EQ(kill(agent_pid(), SIGKILL), 0);
        double t0 = mono_ms();
        int st = 0;
        pid_t done = 0;
        while ((done = waitpid(w, &st, WNOHANG)) == 0 && mono_ms() - t0 < 8000) sleep_ms(20);
        EXPECT_EQ(done, w) << "run " << run << ": the writer is stuck (state " << state(w) << ") after the agent died";
        if (done != w) {
            kill(w, SIGCONT);
            waitpid(w, nullptr, 0);
        }
        EXPECT_EQ(tardy({"kill"}).status, 0);
    }
}

// 7. The agent never stalls itself.
TEST_F(StallLab, StallOnTheAgentsOwnCgroupIsRefused) {
    auto cgfs = CgroupFs::detect();
    ASSERT_TRUE(cgfs);
    auto self = cgfs->by_pid(getpid());
    ASSERT_TRUE(self);
    inject({"--loss", "1%"}, "starts-agent");  // the agent runs in this test's cgroup
    std::vector<std::string> targets{self->rel};
    if (self->rel != "/") targets.push_back(std::filesystem::path(self->rel).parent_path().string());
    for (const auto& t : targets) {
        auto r = tardy({"inject", "--cgroup", t, "--force", "--stall", "write=1s"});
        EXPECT_EQ(r.status, 2) << t << ": " << r.err;
        EXPECT_NE(r.err.find("agent"), std::string::npos) << r.err;
    }
    EXPECT_EQ(list_json()["injections"].size(), 1u);
}

}  // namespace
