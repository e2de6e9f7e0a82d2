// SPDX-License-Identifier: Apache-2.0
// user/spec: turning `tardy inject` flags into a validated InjectRequest.
#include "model/spec.hpp"

#include <gtest/gtest.h>
#include "model/tardy_abi.hpp"

#include <string>

#include "test_util.hpp"

namespace tardy {
namespace {

using test::FailsWithUserError;

using test::kMs;
using test::kS;

InjectArgs loss_on_cgroup() {
    InjectArgs a;
    a.cgroup = "system.slice/api.service";
    a.loss = "5%";
    return a;
}

TEST(BuildInjectRequest, MinimalLossRequest) {
    auto r = build_inject_request(loss_on_cgroup());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->target.kind, TargetRef::Kind::Cgroup);
    EXPECT_EQ(r->target.value, "system.slice/api.service");
    EXPECT_EQ(r->net.loss_ppm, 50'000u);
    EXPECT_EQ(r->net.delay_ns, 0u);
    EXPECT_EQ(r->net.jitter_ns, 0u);
    EXPECT_TRUE(r->name.empty());
    EXPECT_TRUE(r->devices.empty());
    EXPECT_TRUE(r->netns.empty());
    EXPECT_FALSE(r->force);
}

TEST(BuildInjectRequest, EveryField) {
    InjectArgs a;
    a.container = "3f2a";
    a.delay = "50ms";
    a.jitter = "10ms";
    a.loss = "0.01%";
    a.for_dur = "2m";
    a.name = "slow-db";
    a.devices = {"eth0", "veth1"};
    a.netns = "blue";
    a.force = true;
    auto r = build_inject_request(a);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->target.kind, TargetRef::Kind::Container);
    EXPECT_EQ(r->target.value, "3f2a");
    EXPECT_EQ(r->net.delay_ns, 50 * kMs);
    EXPECT_EQ(r->net.jitter_ns, 10 * kMs);
    EXPECT_EQ(r->net.loss_ppm, 100u);
    EXPECT_EQ(r->for_ns, 120 * kS);
    EXPECT_EQ(r->name, "slow-db");
    EXPECT_EQ(r->devices, (std::vector<std::string>{"eth0", "veth1"}));
    EXPECT_EQ(r->netns, "blue");
    EXPECT_TRUE(r->force);
    EXPECT_EQ(describe(r->net), "delay 50ms±10ms, loss 0.01%");
}

TEST(BuildInjectRequest, PidTarget) {
    InjectArgs a = loss_on_cgroup();
    a.cgroup.clear();
    a.pid = "4242";
    auto r = build_inject_request(a);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->target.kind, TargetRef::Kind::Pid);
    EXPECT_EQ(r->target.value, "4242");
}

TEST(BuildInjectRequest, ExactlyOneTarget) {
    InjectArgs none = loss_on_cgroup();
    none.cgroup.clear();
    EXPECT_TRUE(FailsWithUserError(build_inject_request(none), {"exactly one target", "--cgroup", "--pid", "--container"}));

    InjectArgs two = loss_on_cgroup();
    two.pid = "1";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(two), {"exactly one target"}));

    InjectArgs three = two;
    three.container = "abc";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(three), {"exactly one target"}));

    InjectArgs pc = loss_on_cgroup();
    pc.cgroup.clear();
    pc.pid = "1";
    pc.container = "abc";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(pc), {"exactly one target"}));
}

TEST(BuildInjectRequest, JitterNeedsDelay) {
    InjectArgs a = loss_on_cgroup();
    a.jitter = "1ms";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--jitter", "--delay"}));
}

TEST(BuildInjectRequest, JitterAtMostDelay) {
    InjectArgs a = loss_on_cgroup();
    a.delay = "10ms";
    a.jitter = "11ms";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--jitter 11ms", "--delay 10ms", "jitter <= delay"}));

    a.jitter = "10ms";  // equal is fine: departures never before the send time
    auto r = build_inject_request(a);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.jitter_ns, 10 * kMs);
}

TEST(BuildInjectRequest, DelayPlusJitterAtMost5s) {
    InjectArgs a = loss_on_cgroup();
    a.delay = "5s";
    auto ok5 = build_inject_request(a);
    ASSERT_TRUE(ok5) << ok5.error().message;
    EXPECT_EQ(ok5->net.delay_ns, TARDY_MAX_DELAY_NS);

    a.delay = "4s";
    a.jitter = "1s";
    EXPECT_TRUE(build_inject_request(a));

    a.jitter = "1.5s";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--delay", "--jitter", "5s"}));

    a.delay = "5s";
    a.jitter = "1ns";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"5s"}));

    InjectArgs b = loss_on_cgroup();
    b.delay = "6s";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(b), {"5s"}));

    b.delay = "1h";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(b), {"5s"}));
}

TEST(BuildInjectRequest, UnitErrorsPassThroughWithTheirFlag) {
    InjectArgs a = loss_on_cgroup();
    a.delay = "abc";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--delay", "abc"}));

    a = loss_on_cgroup();
    a.delay = "10ms";
    a.jitter = "-1ms";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--jitter", "negative"}));

    a = loss_on_cgroup();
    a.loss = "120%";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--loss", "120%"}));

    a = loss_on_cgroup();
    a.for_dur = "5";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--for", "unit"}));
}

TEST(BuildInjectRequest, NoFault) {
    InjectArgs a;
    a.cgroup = "x";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"no fault", "--delay", "--loss"}));

    a.for_dur = "1m";
    a.name = "n";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"no fault"}));
}

TEST(BuildInjectRequest, ZeroFaultsAreRefused) {
    InjectArgs a;
    a.cgroup = "x";
    a.delay = "0ms";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--delay 0", "positive"}));

    InjectArgs b;
    b.cgroup = "x";
    b.loss = "0%";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(b), {"--loss 0%", "positive"}));

    b.delay = "1ms";  // a zero loss next to a real delay is still a mistake worth saying
    EXPECT_TRUE(FailsWithUserError(build_inject_request(b), {"--loss 0%"}));
}

TEST(BuildInjectRequest, ForDefaultsTo5Minutes) {
    auto r = build_inject_request(loss_on_cgroup());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->for_ns, 300 * kS);
}

TEST(BuildInjectRequest, ForTooShort) {
    InjectArgs a = loss_on_cgroup();
    a.for_dur = "999us";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--for 999us", "too short", "1ms"}));
    a.for_dur = "0s";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--for", "too short"}));
    a.for_dur = "1ms";
    auto r = build_inject_request(a);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->for_ns, kMs);
}

TEST(BuildInjectRequest, NameValidation) {
    for (const char* good : {"a", "slow-db", "inj_1.2", "A-Z_a-z.0-9"}) {
        InjectArgs a = loss_on_cgroup();
        a.name = good;
        auto r = build_inject_request(a);
        ASSERT_TRUE(r) << good << ": " << r.error().message;
        EXPECT_EQ(r->name, good);
    }
    InjectArgs a = loss_on_cgroup();
    a.name = std::string(64, 'n');
    EXPECT_TRUE(build_inject_request(a));
    a.name = std::string(65, 'n');
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--name", "64"}));
    for (const char* bad : {"bad name", "a/b", "x;rm", "caf\xc3\xa9", "a\tb", "$(id)", "*"}) {
        a.name = bad;
        EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--name", "letters, digits"})) << bad;
    }
}

TEST(ValidateName, Directly) {
    EXPECT_TRUE(validate_name("ok-name"));
    EXPECT_TRUE(FailsWithUserError(validate_name(""), {"--name", "1 to 64"}));
    EXPECT_TRUE(FailsWithUserError(validate_name("a b"), {"--name 'a b'"}));
    EXPECT_TRUE(FailsWithUserError(validate_name(std::string("a\0b", 3)), {"--name"}));
}

TEST(BuildInjectRequest, DeviceNameValidation) {
    InjectArgs a = loss_on_cgroup();
    a.devices = {"eth0", "veth-x.1", std::string(15, 'd')};  // IFNAMSIZ is 16 with the NUL
    EXPECT_TRUE(build_inject_request(a));
    for (const std::string& bad : {std::string(""), std::string(16, 'd'), std::string("a/b"), std::string("/")}) {
        a.devices = {"eth0", bad};
        EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--device", "not a network device name"}))
            << "'" << bad << "'";
    }
}

TEST(Describe, Faults) {
    NetFaults f;
    f.delay_ns = 50 * kMs;
    EXPECT_EQ(describe(f), "delay 50ms");
    f.jitter_ns = 10 * kMs;
    EXPECT_EQ(describe(f), "delay 50ms±10ms");
    f.loss_ppm = 50'000;
    EXPECT_EQ(describe(f), "delay 50ms±10ms, loss 5%");
    NetFaults l;
    l.loss_ppm = 100;
    EXPECT_EQ(describe(l), "loss 0.01%");
    EXPECT_EQ(describe(NetFaults{}), "");
}

TEST(NetFaultsJson, RoundTrip) {
    NetFaults f;
    f.delay_ns = 50 * kMs;
    f.jitter_ns = 3;
    f.loss_ppm = 999'999;
    nlohmann::json j = f;
    NetFaults g = j.get<NetFaults>();
    EXPECT_EQ(g.delay_ns, f.delay_ns);
    EXPECT_EQ(g.jitter_ns, f.jitter_ns);
    EXPECT_EQ(g.loss_ppm, f.loss_ppm);
    NetFaults empty = nlohmann::json::object().get<NetFaults>();
    EXPECT_FALSE(empty.any());
}

}  // namespace
}  // namespace tardy
