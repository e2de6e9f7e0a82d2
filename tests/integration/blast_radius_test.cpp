// SPDX-License-Identifier: Apache-2.0
// Blast radius (issue 10) through the real kernel path: packet and socket faults filtered by
// peer, port and protocol, several injections on one cgroup, and a sticky share of flows,
// with real sockets of the experiment and control cohorts, IPv4 and IPv6. The server side
// has two addresses per family (.2 and .3) and echo servers on two ports (7007 and 7017).
#include <signal.h>
#include <algorithm>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/harness.hpp"
#include "sys/process.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class BlastLab : public Lab {
protected:
    void SetUp() override {
        Lab::SetUp();
        if (HasFatalFailure()) return;
        const std::string b = lab_->netns_b_name();
        for (auto addr : {"198.18.0.3/24", "fd00:7a7d::3/64"}) {
            std::vector<std::string> a{"ip", "-n", b, "addr", "add", addr, "dev", lab_->device_b()};
            // Deprecated, so that answers to ::2 keep leaving from ::2 (source address selection
            // avoids a deprecated address); it still receives.
            if (addr[0] == 'f') a.insert(a.end(), {"nodad", "preferred_lft", "0"});
            auto r = run_cmd(a);
            ASSERT_TRUE(r && r->status == 0) << addr;
        }
        int out = -1;
        auto echo = spawn_cmd({build_dir() + "/tardy", "__echo", "--netns", "/run/netns/" + b, "--port", "7017"}, &out);
        ASSERT_TRUE(echo) << echo.error().message;
        echo_ = *echo;
        char buf[16] = {};
        ssize_t n = read(out, buf, sizeof buf - 1);
        close(out);
        ASSERT_GT(n, 0) << "the second echo server did not start";
        // Neighbours and IPv6 duplicate detection settled before anything is measured. The .3
        // addresses are probed over TCP only: the echo server's UDP answers leave from the
        // device's first address, which a socket connected to .3 does not take.
        for (auto to : {"198.18.0.2", "fd00:7a7d::2"})
            ASSERT_TRUE(eventually([&] { return answered(kCtl, "udp", to, 7007, 1, 100) == 1; }, 5000)) << to;
        for (auto to : {"198.18.0.3", "fd00:7a7d::3"})
            ASSERT_TRUE(eventually([&] { return answered(kCtl, "tcp", to, 7007, 1, 200) == 1; }, 5000)) << to;
    }
    void TearDown() override {
        if (echo_ > 0) {
            kill(echo_, SIGKILL);
            waitpid(echo_, nullptr, 0);
        }
        Lab::TearDown();
    }
    // Echoes answered of `count` (UDP: one socket, so one flow; TCP: a connect each).
    int answered(Sandbox::Cohort c, const char* proto, const std::string& to, int port, int count, int timeout_ms = 60) {
        auto r = tardy({"__probe", "--cgroup", lab_->cgroup(c), "--netns", lab_->netns_a(), "--proto", proto, "--to", to,
                        "--port", std::to_string(port), "--count", std::to_string(count), "--interval-ms", "1",
                        "--timeout-ms", std::to_string(timeout_ms)});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.err;
        int n = 0;
        if (!j.is_discarded())
            for (const auto& x : j["rtt_ms"]) n += !x.is_null();
        return n;
    }
    // The median time of the probe's calls (UDP: send to echo; TCP: connect), -1 if none.
    double median_ms(Sandbox::Cohort c, const char* proto, const std::string& to, int port, int count) {
        auto r = tardy({"__probe", "--cgroup", lab_->cgroup(c), "--netns", lab_->netns_a(), "--proto", proto, "--to", to,
                        "--port", std::to_string(port), "--count", std::to_string(count), "--interval-ms", "1",
                        "--timeout-ms", "2000"});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        std::vector<double> v;
        if (!j.is_discarded())
            for (const auto& x : j["rtt_ms"])
                if (!x.is_null()) v.push_back(x.get<double>());
        if (v.empty()) return -1;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }
    nlohmann::json sockcall(const std::string& to, int port, int count) {
        auto r = testkit({"sockcall", "--cgroup", lab_->cgroup(kExp), "--netns", lab_->netns_a(), "--op", "connect",
                          "--to", to, "--port", std::to_string(port), "--count", std::to_string(count)});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? nlohmann::json::object() : j;
    }
    const nlohmann::json* injection(const nlohmann::json& l, const std::string& name) {
        for (const auto& i : l["injections"])
            if (i["name"] == name) return &i;
        return nullptr;
    }
    pid_t echo_ = 0;
};

TEST_F(BlastLab, LossHitsOnlyTheChosenPeerAndPort) {
    inject({"--loss", "100%", "--peer", "198.18.0.2", "--peer", "fd00:7a7d::2", "--port", "7007"}, "db");
    for (auto [hit, other] : {std::pair{"198.18.0.2", "198.18.0.3"}, std::pair{"fd00:7a7d::2", "fd00:7a7d::3"}}) {
        EXPECT_EQ(answered(kExp, "udp", hit, 7007, 10), 0) << hit << ":7007 got through";
        EXPECT_EQ(answered(kExp, "tcp", hit, 7007, 3, 200), 0) << hit << ":7007 TCP got through";
        EXPECT_EQ(answered(kExp, "udp", hit, 7017, 10), 10) << hit << ":7017 was hit";
        EXPECT_EQ(answered(kExp, "tcp", other, 7007, 3, 500), 3) << other << " TCP was hit";
        EXPECT_EQ(answered(kCtl, "udp", hit, 7007, 10), 10) << "the control cohort was hit";
    }
    auto l = list_json();
    const auto* db = injection(l, "db");
    ASSERT_NE(db, nullptr) << l.dump();
    EXPECT_EQ((*db)["filter"]["port_lo"], 7007);
    EXPECT_EQ((*db)["filter"]["peers"].size(), 2u);
    EXPECT_NE((*db)["faults"].get<std::string>().find("to 198.18.0.2 fd00:7a7d::2 port 7007"), std::string::npos)
        << (*db)["faults"];
    // 20 UDP echoes and 6 SYNs (with their retransmits, if any) matched; nothing else did.
    EXPECT_GE((*db)["counters"]["dropped"].get<uint64_t>(), 26u);
    EXPECT_EQ((*db)["counters"]["matched"], (*db)["counters"]["dropped"]);
    auto text = tardy({"list"});
    EXPECT_NE(text.out.find("port 7007"), std::string::npos) << text.out;
}

TEST_F(BlastLab, ExclusionsAndProtocolForPacketsAndCallsAlike) {
    inject({"--loss", "100%", "--fail", "connect=ECONNREFUSED", "--except-peer", "198.18.0.3", "--except-port",
            "7017", "--proto", "tcp"});
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7007, 10), 10) << "UDP was not asked for";
    auto refused = sockcall("198.18.0.2", 7007, 5);
    EXPECT_EQ(refused.value("ECONNREFUSED", 0), 5) << refused.dump();
    auto peer = sockcall("198.18.0.3", 7007, 5);
    EXPECT_EQ(peer.value("OK", 0), 5) << "an excluded peer was refused: " << peer.dump();
    auto port = sockcall("198.18.0.2", 7017, 5);
    EXPECT_EQ(port.value("OK", 0), 5) << "an excluded port was refused: " << port.dump();
}

// Two injections on one cgroup, each with its own filter, counters, --for and stop. A packet
// that matches both goes through both (docs/faults.md); here each drops what it matches.
TEST_F(BlastLab, SeveralInjectionsOnOneCgroup) {
    inject({"--loss", "100%", "--peer", "198.18.0.2", "--port", "7007"}, "db");
    inject({"--loss", "100%", "--port", "7017", "--proto", "udp", "--for", "1h"}, "cache");
    inject({"--fail", "connect=ECONNREFUSED", "--peer", "198.18.0.3", "--port", "7017"}, "refuse");
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7007, 10), 0);
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7017, 10), 0);
    EXPECT_EQ(answered(kExp, "tcp", "198.18.0.3", 7007, 3, 500), 3);
    EXPECT_EQ(sockcall("198.18.0.3", 7017, 3).value("ECONNREFUSED", 0), 3);
    EXPECT_EQ(answered(kCtl, "udp", "198.18.0.2", 7007, 10), 10);
    // One cgroup holds one injection of socket faults: a second is refused in one line.
    auto again = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--fail", "connect=EPERM", "--name", "more"});
    EXPECT_EQ(again.status, 2);
    EXPECT_NE(again.err.find("already has injection 'refuse'"), std::string::npos) << again.err;
    auto l = list_json();
    ASSERT_EQ(l["injections"].size(), 3u) << l.dump();
    const auto *db = injection(l, "db"), *cache = injection(l, "cache");
    ASSERT_TRUE(db && cache);
    EXPECT_EQ((*db)["counters"]["dropped"], 10);
    EXPECT_EQ((*cache)["counters"]["dropped"], 10);
    EXPECT_GT((*cache)["left_ns"].get<uint64_t>(), (*db)["left_ns"].get<uint64_t>()) << "each its own --for";
    ASSERT_EQ(tardy({"stop", "db"}).status, 0);
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7007, 10), 10) << "stop db ended the other's fault";
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7017, 10), 0) << "stop db ended cache too";
}

// --flows: a sticky share of flows. A UDP probe is one socket, one flow: each run is answered
// whole or not at all. New TCP connections are new flows: the share refused is binomial.
TEST_F(BlastLab, FlowsAreAStickyShareOfConnections) {
    inject({"--loss", "100%", "--flows", "30%"});
    int dead = 0, partial = 0;
    constexpr int kRuns = 40;
    for (int i = 0; i < kRuns; i++) {
        int a = answered(kExp, "udp", "198.18.0.2", 7007, 5, 20);
        dead += a == 0;
        partial += a != 0 && a != 5;
    }
    EXPECT_EQ(partial, 0) << "a flow was hit for some packets only";
    EXPECT_GT(dead, 0);
    EXPECT_LT(dead, kRuns);
    constexpr int kConnects = 200;
    int ok = answered(kExp, "tcp", "198.18.0.2", 7007, kConnects, 50);
    double hit = 1.0 - ok / double(kConnects);
    std::printf("  --flows 30%%: %d of %d UDP flows dead, %.3f of %d TCP connections\n", dead, kRuns, hit, kConnects);
    // Binomial, n = 200, p = 0.3: sd = 0.032; 5 sd.
    EXPECT_NEAR(hit, 0.30, 0.16);
    EXPECT_EQ(answered(kCtl, "tcp", "198.18.0.2", 7007, 20, 200), 20);
}

// --direction ingress: loss of the packets the target's sockets receive (cgroup_skb ingress),
// filtered by their source (the remote end). What the target sends is untouched: every
// answer that was dropped was an answer to a request that got out.
TEST_F(BlastLab, IngressLossHitsWhatTheTargetReceives) {
    inject({"--loss", "100%", "--direction", "ingress", "--port", "7007"}, "in");
    for (auto to : {"198.18.0.2", "fd00:7a7d::2"}) {
        EXPECT_EQ(answered(kExp, "udp", to, 7007, 10), 0) << to << ": an answer from port 7007 got in";
        EXPECT_EQ(answered(kExp, "tcp", to, 7007, 2, 200), 0) << to << ": a SYN-ACK from port 7007 got in";
        EXPECT_EQ(answered(kExp, "udp", to, 7017, 10), 10) << to << ": port 7017 was hit";
        EXPECT_EQ(answered(kCtl, "udp", to, 7007, 10), 10) << to << ": the control cohort was hit";
    }
    auto l = list_json();
    const auto* in = injection(l, "in");
    ASSERT_NE(in, nullptr) << l.dump();
    EXPECT_EQ((*in)["net"].value("direction", ""), "ingress");
    EXPECT_TRUE((*in)["devices"].empty()) << "ingress loss needs no device: " << (*in)["devices"];
    auto c = (*in)["counters"];
    // 20 answers came back and were dropped, and nothing the cohort sent was counted.
    EXPECT_GE(c["dropped"].get<uint64_t>(), 24u) << c;  // 20 echoes, 4 SYN-ACKs or more
    EXPECT_EQ(c["matched"], c["dropped"]);
    EXPECT_NE(tardy({"list"}).out.find("loss 100% on ingress port 7007"), std::string::npos);
}

// The agent loads its ingress programs with the first ingress fault, not before: an egress
// injection leaves none of them loaded (nobody's received packet pays for them), and the
// ingress ones it loads later share the first ones' maps (the rules, counters and control map:
// the fault works and is counted where `list` reads).
TEST_F(BlastLab, IngressProgramsAreLoadedWithTheFirstIngressFault) {
    inject({"--loss", "100%", "--port", "7017"}, "out");
    EXPECT_GT(count_our_programs(), 0);
    EXPECT_EQ(count_programs_named("tardy_cg_ingres"), 0) << "the ingress loss program loaded for an egress fault";
    EXPECT_EQ(count_programs_named("tardy_tc_ingres"), 0) << "the ingress delay program loaded for an egress fault";
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7017, 5), 0);
    inject({"--loss", "100%", "--direction", "ingress", "--port", "7007", "--proto", "udp"}, "in");
    EXPECT_EQ(count_programs_named("tardy_cg_ingres"), 1);
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7007, 10), 0) << "the ingress fault let answers in";
    EXPECT_EQ(answered(kCtl, "udp", "198.18.0.2", 7007, 10), 10) << "the control cohort was hit";
    auto l = list_json();
    const auto* in = injection(l, "in");
    ASSERT_NE(in, nullptr) << l.dump();
    EXPECT_EQ((*in)["counters"]["dropped"], 10u) << (*in)["counters"];
    EXPECT_EQ(tardy({"kill"}).status, 0);
    EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7007, 10), 10) << "an answer was lost after `tardy kill`";
}

// Ingress rules on a cgroup and on its parent: the program is linked to the topmost one only,
// so it runs once per packet (twice would count, and drop, each packet twice), and the deepest
// rule set applies as at egress. Ending the parent's links the child's again.
TEST_F(BlastLab, NestedIngressRulesRunOncePerPacket) {
    inject({"--loss", "100%", "--direction", "ingress", "--port", "7007", "--proto", "udp"}, "child");
    std::string parent = lab_->cgroup_rel(kExp).substr(0, lab_->cgroup_rel(kExp).rfind('/'));
    auto r = tardy({"inject", "--cgroup", parent, "--loss", "100%", "--direction", "ingress", "--port", "7017", "--name",
                    "parent"});
    ASSERT_EQ(r.status, 0) << r.err;
    auto matched = [&] {
        auto l = list_json();
        const auto* i = injection(l, "child");
        return i ? (*i)["counters"]["matched"].get<uint64_t>() : 0;
    };
    for (bool parent_live : {true, false}) {
        uint64_t before = matched();
        EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7007, 10), 0) << "the child's rule lapsed";
        EXPECT_EQ(matched() - before, 10u) << "each answer counted once (parent live: " << parent_live << ")";
        EXPECT_EQ(answered(kExp, "udp", "198.18.0.2", 7017, 10), 10) << "the deepest rule set applies";
        EXPECT_EQ(answered(kCtl, "udp", "198.18.0.2", 7017, 10), parent_live ? 0 : 10);
        EXPECT_EQ(answered(kCtl, "udp", "198.18.0.2", 7007, 10), 10);
        if (parent_live) {
            ASSERT_EQ(tardy({"stop", "parent"}).status, 0);
        }
    }
}

// --setup-only: only packets with SYN set. Lost SYNs fail new connections; other packets,
// here UDP echoes, pass.
TEST_F(BlastLab, SetupOnlyHitsConnectionSetup) {
    inject({"--loss", "100%", "--setup-only", "--peer", "198.18.0.2", "--peer", "fd00:7a7d::2"});
    for (auto to : {"198.18.0.2", "fd00:7a7d::2"}) {
        EXPECT_EQ(answered(kExp, "tcp", to, 7007, 2, 200), 0) << to << ": a SYN got out";
        EXPECT_EQ(answered(kExp, "udp", to, 7007, 10), 10) << to << ": a packet other than a SYN was hit";
        EXPECT_EQ(answered(kCtl, "tcp", to, 7007, 2, 500), 2) << to << ": the control cohort was hit";
    }
}

// Stalls filtered by peer, port and protocol: connect() judged by the address it names, send()
// on a connected UDP socket by the socket's peer. Other peers, ports and the control cohort
// are not stalled.
TEST_F(BlastLab, StallsOfCallsToOnePeerAndPort) {
    inject({"--stall", "connect=300ms", "--peer", "198.18.0.2", "--peer", "fd00:7a7d::2", "--port", "7007"}, "conn");
    for (auto [hit, other] : {std::pair{"198.18.0.2", "198.18.0.3"}, std::pair{"fd00:7a7d::2", "fd00:7a7d::3"}}) {
        EXPECT_GE(median_ms(kExp, "tcp", hit, 7007, 3), 300) << hit << ":7007 connects were not stalled";
        EXPECT_LT(median_ms(kExp, "tcp", hit, 7017, 3), 100) << hit << ":7017 connects were stalled";
        EXPECT_LT(median_ms(kExp, "tcp", other, 7007, 3), 100) << other << " connects were stalled";
        EXPECT_LT(median_ms(kCtl, "tcp", hit, 7007, 3), 100) << "the control cohort was stalled";
    }
    ASSERT_EQ(tardy({"stop", "conn"}).status, 0);
    inject({"--stall", "send=200ms", "--port", "7017", "--proto", "udp"}, "send");
    EXPECT_GE(median_ms(kExp, "udp", "198.18.0.2", 7017, 3), 200) << "send() to port 7017 was not stalled";
    EXPECT_LT(median_ms(kExp, "udp", "198.18.0.2", 7007, 5), 100) << "send() to port 7007 was stalled";
    EXPECT_LT(median_ms(kExp, "tcp", "198.18.0.2", 7017, 3), 100) << "a TCP connect was stalled";
    auto l = list_json();
    const auto* in = injection(l, "send");
    ASSERT_NE(in, nullptr) << l.dump();
    EXPECT_GE((*in)["counters"]["stalled"].get<uint64_t>(), 3u);
    EXPECT_NE((*in)["faults"].get<std::string>().find("on sockets port 7017 udp"), std::string::npos) << (*in)["faults"];
}

}  // namespace
