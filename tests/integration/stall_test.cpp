// Syscall stalls through the real tracepoints: write(2)s to /dev/null timed by processes in
// the experiment and control cgroups.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class StallLab : public Lab {
protected:
    std::vector<double> write_ms(Sandbox::Cohort c, int count, int interval_ms = 5) {
        auto r = tardy({"__writetime", "--cgroup", lab_->cgroup(c), "--count", std::to_string(count), "--interval-ms",
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
        auto p = spawn_cmd({build_dir() + "/tardy", "__writetime", "--cgroup", lab_->cgroup(kExp), "--count",
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
    EXPECT_LE(median(e), 52);
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
    sleep_ms(static_cast<int>(1200 - (mono_ms() - t0)));
    EXPECT_LT(median(write_ms(kExp, 5)), 1) << "the stall outlived --for";
}

TEST_F(StallLab, SigkilledAgentLeavesNoProcessStopped) {
    inject({"--stall", "write=5s"});
    pid_t w = background_writer(3);
    for (int i = 0; i < 100 && state(w) != 'T'; i++) sleep_ms(10);
    ASSERT_EQ(state(w), 'T') << "the writer was never stopped";
    double t0 = mono_ms();
    ASSERT_EQ(kill(agent_pid(), SIGKILL), 0);
    sleep_ms(1000);
    EXPECT_NE(state(w), 'T') << "a stalled process is still stopped 1 s after the agent died";
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

}  // namespace
