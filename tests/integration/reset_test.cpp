// SPDX-License-Identifier: Apache-2.0
// --reset through the real kernel path against real servers and clients: curl against
// Python's http.server, and hiredis's redis-cli against Debian's redis-server, in the lab's
// namespaces. A share of the experiment cohort's connections is reset as by the peer, the
// control's never; a connection open before the injection is reset at its next request; the
// server keeps no half-open connection.
#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

int count(const std::string& s, const std::string& what) {
    int n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) n++;
    return n;
}

class ResetLab : public Lab {
protected:
    void SetUp() override {
        Lab::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        for (const char* tool : {"/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/curl", "/usr/bin/python3"})
            ASSERT_EQ(access(tool, X_OK), 0) << tool << " missing (scripts/deps.sh installs it)";
        serve({"redis-server", "--port", "6391", "--bind", "0.0.0.0 ::", "--protected-mode", "no", "--save", "",
               "--appendonly", "no"});
        serve({"python3", "-m", "http.server", "8080", "--bind", "::", "--directory", "/usr/share/doc"});
        ASSERT_TRUE(eventually([&] { return count(redis(kCtl, "198.18.0.2", 1), "PONG") == 1; }, 5000, 100))
            << "redis-server did not answer";
        ASSERT_TRUE(eventually([&] { return count(curl(kCtl, "198.18.0.2", 1), "0 200") == 1; }, 5000, 100))
            << "http.server did not answer";
    }
    // `n` redis-cli processes, one PING each: their output.
    std::string redis(Sandbox::Cohort c, const std::string& host, int n) {
        return in_cohort(c, "for i in $(seq " + std::to_string(n) + "); do redis-cli -h " + host +
                                " -p 6391 ping 2>&1; done")
            .out;
    }
    // One curl, `n` requests, each on a connection of its own: a line "EXITCODE HTTPCODE ERROR" each.
    std::string curl(Sandbox::Cohort c, const std::string& host, int n) {
        std::string h = host.find(':') == std::string::npos ? host : "[" + host + "]";
        return in_cohort(c, "curl -sg -H \"Connection: close\" -w \"%{exitcode} %{http_code} "
                            "%{errormsg}\\n\" $(for i in $(seq " + std::to_string(n) + "); do echo -o /dev/null http://" + h +
                                ":8080/?$i; done)")
            .out;
    }
    // The server's connected clients, as a client of the control cohort sees them (itself included).
    int redis_clients() {
        auto out = in_cohort(kCtl, "redis-cli -h 198.18.0.2 -p 6391 info clients").out;
        auto at = out.find("connected_clients:");
        return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 18);
    }
};

// curl does not retry: the share of its requests that fail is the share of connections reset.
TEST_F(ResetLab, AShareOfConnectionsIsResetAsByThePeer) {
    inject({"--reset", "30%", "--port", "8080"}, "resets");
    constexpr int kN = 200;
    int reset_total = 0;
    for (const char* host : {"198.18.0.2", "fd00:7a7d::2"}) {
        auto out = curl(kExp, host, kN);
        int ok = count(out, "0 200"), reset = count(out, "Connection reset by peer");
        std::printf("  %s: %d curl requests: %d answered, %d reset by peer\n", host, kN, ok, reset);
        EXPECT_EQ(ok + reset, kN) << "other errors than resets:\n" << out.substr(0, 2000);
        EXPECT_NEAR(reset / double(kN), 0.30, 3 * 0.0324) << host;  // binomial sd 0.032
        reset_total += reset;
        auto ctl = curl(kCtl, host, 50);
        EXPECT_EQ(count(ctl, "0 200"), 50) << "control cohort:\n" << ctl;
    }
    auto n = list_json()["injections"][0];
    std::printf("  counters %s; faults: %s\n", n["counters"].dump().c_str(), n["faults"].get<std::string>().c_str());
    EXPECT_GE(n["counters"]["resets"].get<int>(), reset_total) << "a reset the client saw is not counted";
    // Another port of the same cohort is untouched.
    auto other = redis(kExp, "198.18.0.2", 20);
    EXPECT_EQ(count(other, "PONG"), 20) << other;
}

// hiredis sees the reset on the reply to its PING, and does not retry it.
TEST_F(ResetLab, RedisCliSeesItsConnectionsResetAndTheServerKeepsNone) {
    inject({"--reset", "40%", "--port", "6391"}, "resets");
    constexpr int kN = 150;
    auto out = redis(kExp, "198.18.0.2", kN);
    int pong = count(out, "PONG"), reset = count(out, "reset by peer");
    std::printf("  %d redis-cli: %d PONG, %d reset by peer\n", kN, pong, reset);
    EXPECT_EQ(pong + reset, kN) << out;
    EXPECT_NEAR(reset / double(kN), 0.40, 3 * 0.040) << "sd 0.040";
    EXPECT_EQ(count(redis(kCtl, "198.18.0.2", 30), "PONG"), 30);
    EXPECT_TRUE(eventually([&] { return redis_clients() == 1; }, 3000, 100))
        << "the server kept connections the clients no longer have: " << redis_clients();
    // Changed live: every connection now, the counter going on from where it was.
    uint64_t before = list_json()["injections"][0]["counters"]["resets"].get<uint64_t>();
    EXPECT_GE(before, static_cast<uint64_t>(reset));
    auto u = tardy({"update", "resets", "--reset", "100%"});
    ASSERT_EQ(u.status, 0) << u.err;
    auto all = redis(kExp, "198.18.0.2", 20);
    EXPECT_EQ(count(all, "reset by peer"), 20) << all;
    EXPECT_EQ(list_json()["injections"][0]["counters"]["resets"].get<uint64_t>(), before + 20);
}

// A connection opened before the injection (redis-cli -r: one connection, a PING every 0.2 s)
// fails at its first request after it. 75 pings (15 s): starting an agent under the VM's
// emulation once took longer than the 4.4 s that 25 left.
TEST_F(ResetLab, AnOpenConnectionIsResetAtItsNextSegment) {
    std::filesystem::create_directories(run_dir_);  // the agent's; removed by TearDown
    std::string out_file = run_dir_ + "/long.out";
    pid_t cli = fork();
    if (cli == 0) {
        std::string sh = "echo $$ > " + lab_->cgroup(kExp) + "/cgroup.procs && exec ip netns exec " +
                         lab_->netns_a_name() + " stdbuf -oL redis-cli -h 198.18.0.2 -p 6391 -r 75 -i 0.2 ping > " +
                         out_file + " 2>&1";
        execlp("sh", "sh", "-c", sh.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    ASSERT_GT(cli, 0);
    bool started = eventually([&] { return count(read_all(out_file), "PONG") >= 3; }, 5000, 50);
    if (started) inject({"--reset", "100%"}, "all");
    int status = 0;
    waitpid(cli, &status, 0);
    ASSERT_TRUE(started) << "[" << read_all(out_file) << "]";
    auto out = read_all(out_file);
    int pongs = count(out, "PONG");
    std::printf("  long-lived redis-cli: %d PONG, then: %s\n", pongs, out.substr(out.rfind("PONG") + 5).c_str());
    EXPECT_LT(pongs, 75) << "the open connection was never reset";
    EXPECT_NE(out.find("reset by peer"), std::string::npos) << out;
}

// A subscriber sends nothing but acknowledgments once subscribed: it is reset at the next
// one, the control cohort's subscriber beside it keeps its messages. redis-cli SUBSCRIBE in
// each cohort, a publisher (control cohort) every 50 ms; once both have messages, --reset
// 100% on redis's port. Before acknowledgments counted, the subscription went on untouched.
TEST_F(ResetLab, ASubscriberThatOnlyReceivesIsResetAtItsNextAcknowledgment) {
    std::filesystem::create_directories(run_dir_);  // the agent's; removed by TearDown
    auto start = [&](Sandbox::Cohort c, const std::string& cmd, const std::string& out) {
        std::string sh = "echo $$ > " + lab_->cgroup(c) + "/cgroup.procs && exec ip netns exec " +
                         lab_->netns_a_name() + " " + cmd + " > " + out + " 2>&1";
        pid_t p = fork();
        if (p == 0) {
            execlp("sh", "sh", "-c", sh.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        return p;
    };
    const std::string exp_out = run_dir_ + "/exp.out", ctl_out = run_dir_ + "/ctl.out";
    const std::string sub = "stdbuf -oL redis-cli -h 198.18.0.2 -p 6391 subscribe news";
    pid_t exp = start(kExp, sub, exp_out), ctl = start(kCtl, sub, ctl_out);
    pid_t pub = start(kCtl, "redis-cli -h 198.18.0.2 -p 6391 -r 300 -i 0.05 publish news hello", "/dev/null");
    ASSERT_GT(exp, 0);
    ASSERT_GT(ctl, 0);
    ASSERT_GT(pub, 0);
    bool flowing = eventually(
        [&] { return count(read_all(exp_out), "hello") >= 3 && count(read_all(ctl_out), "hello") >= 3; }, 10000, 50);
    if (flowing) inject({"--reset", "100%", "--port", "6391"}, "subscribers");
    double t0 = mono_ms();
    int exp_at = count(read_all(exp_out), "hello");
    bool ended = eventually([&] { return waitpid(exp, nullptr, WNOHANG) == exp; }, 5000, 20);
    double took = mono_ms() - t0;
    int ctl_then = count(read_all(ctl_out), "hello");
    sleep_ms(1000);
    int ctl_later = count(read_all(ctl_out), "hello");
    for (pid_t p : {exp, ctl, pub}) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
    }
    ASSERT_TRUE(flowing) << read_all(exp_out) << read_all(ctl_out);
    auto out = read_all(exp_out);
    std::printf("  experiment's subscriber: %d messages at the injection, %d in all, ended %.0f ms after it: %s\n",
                exp_at, count(out, "hello"), took, out.substr(out.rfind("hello") + 6).c_str());
    std::printf("  control's subscriber: %d messages then, %d a second later\n", ctl_then, ctl_later);
    EXPECT_TRUE(ended) << "the subscription was not reset";
    EXPECT_NE(out.find("reset by peer"), std::string::npos) << out;
    EXPECT_GE(ctl_later, ctl_then + 10) << "the control cohort's subscriber stopped getting messages";
    EXPECT_EQ(list_json()["injections"][0]["counters"]["resets"].get<uint64_t>(), 1u);
}

}  // namespace
