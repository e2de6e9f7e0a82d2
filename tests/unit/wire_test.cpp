// SPDX-License-Identifier: Apache-2.0
// model/wire: the agent protocol's one definition. Each type goes to JSON with exactly the
// keys the other side (and `tardy list --json` readers) expect, and comes back unchanged.
#include "model/wire.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "model/request.hpp"
#include "model/tardy_abi.hpp"
#include "test_util.hpp"

namespace tardy::wire {
namespace {

using json = nlohmann::json;
using test::IsUserError;

std::set<std::string> keys(const json& j) {
    std::set<std::string> out;
    for (const auto& [k, v] : j.items()) out.insert(k);
    return out;
}

template <typename T>
T round_trip(const T& x) {
    return json::parse(json(x).dump()).get<T>();
}

Inject sample_inject() {
    Inject r;
    r.name = "api";
    r.cgroup = {"/sys/fs/cgroup/a.slice/api.service", "a.slice/api.service", 1234};
    r.net.delay_ns = 50'000'000, r.net.jitter_ns = 10'000'000, r.net.loss_ppm = 50'000;
    r.sock.faults = {{TARDY_OP_CONNECT, 111, 250'000, false}};
    r.sock.file_faults = {{TARDY_FOP_READ, 5, 10'000, true}};
    r.sock.path = "/var/lib/app";
    auto st = parse_stall("fsync=200ms:50%");
    EXPECT_TRUE(st) << st.error().message;
    r.stalls = {*st};
    r.for_ns = 60'000'000'000ULL;
    r.netns = {{4026531840, "/proc/1/ns/net"}};
    r.devices = {"eth0"};
    r.force = true;
    return r;
}

InjectionInfo sample_info() {
    InjectionInfo i;
    auto in = sample_inject();
    i.name = "api";
    i.cgroup = "a.slice/api.service";
    i.cgroup_id = 1234;
    i.net = in.net;
    i.sock = in.sock;
    i.stalls = in.stalls;
    i.faults = "delay 50ms";
    i.left_ns = 42;
    i.devices = {"eth0", "eth1"};
    i.replaced_qdiscs = {"netem 8001: on eth0"};
    i.counters = {1, 2, 3, 4, 5, 6, 7};
    return i;
}

TEST(Wire, InjectRequestKeysAndRoundTrip) {
    Inject r = sample_inject();
    json j = request(r);
    EXPECT_EQ(keys(j), (std::set<std::string>{"op", "v", "name", "cgroup", "net", "sock", "filter", "stalls", "for_ns",
                                              "netns", "devices", "force", "cohorts", "observe", "measure", "bound"}));
    EXPECT_EQ(j["op"], json("inject"));
    EXPECT_EQ(j["v"], kProtocolVersion);
    EXPECT_EQ(keys(j["cgroup"]), (std::set<std::string>{"path", "rel", "id"}));
    EXPECT_EQ(keys(j["netns"][0]), (std::set<std::string>{"ino", "path"}));
    EXPECT_EQ(keys(j["net"]), (std::set<std::string>{"delay_ns", "jitter_ns", "loss_ppm", "flows_ppm", "scope", "direction",
                                                     "setup_only", "dist", "distribution", "corr_ppm", "ge_p_ppm",
                                                     "ge_r_ppm", "ge_bad_loss_ppm", "ge_good_loss_ppm", "duplicate_ppm",
                                                     "reorder_ppm", "rate_bytes_per_s", "dns_rcode", "dns_ppm",
                                                     "dns_name", "reset_ppm", "corrupt_ppm", "reorder_gap"}));
    EXPECT_EQ(keys(j["stalls"][0]), (std::set<std::string>{"name", "delay_ns", "ppm", "on", "path"}));
    // What the agent accepts, and reads back to the same values.
    auto v = validate_request(j);
    ASSERT_TRUE(v) << v.error().message;
    Inject back = j.get<Inject>();
    EXPECT_EQ(json(back), json(r));
    EXPECT_EQ(back.cgroup.id, 1234u);
    EXPECT_EQ(back.netns.at(0).path, "/proc/1/ns/net");
    EXPECT_EQ(back.stalls.at(0).nrs, r.stalls.at(0).nrs);  // recomputed from the name
    EXPECT_TRUE(back.force);
    EXPECT_EQ(json(round_trip(r)), json(r));
}

// Packet and socket faults with every part of a filter (a filter takes no stalls or file
// faults, so sample_inject() has none).
TEST(Wire, FilteredInjectKeysAndRoundTrip) {
    Inject r = sample_inject();
    r.sock.file_faults.clear();
    r.sock.path.clear();
    r.stalls.clear();
    r.net.flows_ppm = 100'000;
    r.filter.peers = {"10.0.0.0/8"};
    r.filter.except_peers = {"10.0.0.9"};
    r.filter.port_lo = 5432;
    r.filter.port_hi = 5440;
    r.filter.except_port_lo = r.filter.except_port_hi = 5435;
    r.filter.protos = TARDY_PROTO_TCP;
    json j = request(r);
    EXPECT_EQ(keys(j["filter"]), (std::set<std::string>{"peers", "except_peers", "port_lo", "port_hi", "except_port_lo",
                                                        "except_port_hi", "protos"}));
    auto v = validate_request(j);
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_EQ(json(j.get<Inject>()), json(r));
    EXPECT_EQ(describe(j.get<Inject>().filter), "to 10.0.0.0/8 except 10.0.0.9 port 5432-5440 except port 5435 tcp");
}

TEST(Wire, AbsentFieldsTakeDefaults) {
    json lean = {{"op", "inject"}, {"cgroup", {{"path", "/sys/fs/cgroup/a"}, {"rel", "a"}, {"id", 7}}},
                 {"net", {{"loss_ppm", 10}}}, {"for_ns", 1}};
    Inject r = lean.get<Inject>();
    EXPECT_EQ(r.name, "");
    EXPECT_EQ(r.net.loss_ppm, 10u);
    EXPECT_EQ(r.net.delay_ns, 0u);
    EXPECT_TRUE(r.stalls.empty() && r.netns.empty() && r.devices.empty() && !r.force && !r.sock.any());
    EXPECT_EQ(json::object().get<Counters>().stalled, 0u);
}

TEST(Wire, StopIsNameOrAll) {
    EXPECT_EQ(request(Stop{"api", false}), (json{{"op", "stop"}, {"v", kProtocolVersion}, {"name", "api"}}));
    EXPECT_EQ(request(Stop{"", true}), (json{{"op", "stop"}, {"v", kProtocolVersion}, {"all", true}}));
    EXPECT_TRUE(validate_request(request(Stop{"api", false})));
    EXPECT_TRUE(validate_request(request(Stop{"", true})));
    Stop s = request(Stop{"api", false}).get<Stop>();
    EXPECT_EQ(s.name, "api");
    EXPECT_FALSE(s.all);
    EXPECT_TRUE(request(Stop{"", true}).get<Stop>().all);
    EXPECT_EQ(request(List{}), (json{{"op", "list"}, {"v", kProtocolVersion}}));
    EXPECT_EQ(request(Ping{}), (json{{"op", "ping"}, {"v", kProtocolVersion}}));
}

TEST(Wire, RepliesKeysAndRoundTrip) {
    InjectReply ir{"api", {"eth0"}};
    EXPECT_EQ(reply(ir), (json{{"ok", true}, {"v", kProtocolVersion}, {"name", "api"}, {"devices", {"eth0"}}}));
    auto irb = read_reply<InjectReply>(reply(ir));
    ASSERT_TRUE(irb);
    EXPECT_EQ(irb->name, "api");
    EXPECT_EQ(irb->devices, ir.devices);

    StopReply sr{{"a", "b"}};
    EXPECT_EQ(reply(sr), (json{{"ok", true}, {"v", kProtocolVersion}, {"stopped", {"a", "b"}}}));
    EXPECT_EQ(round_trip(sr).stopped, sr.stopped);
    EXPECT_EQ(reply(PingReply{7}), (json{{"ok", true}, {"v", kProtocolVersion}, {"pid", 7}}));

    ListReply lr{{sample_info()}, 99};
    json j = reply(lr);
    EXPECT_EQ(keys(j), (std::set<std::string>{"ok", "v", "injections", "agent_pid"}));
    const json& i = j["injections"][0];
    EXPECT_EQ(keys(i), (std::set<std::string>{"name", "cgroup", "cgroup_id", "net", "sock", "filter", "stalls", "faults",
                                              "left_ns", "devices", "replaced_qdiscs", "counters", "control",
                                              "observe", "measured", "owner_pid", "revision"}));
    EXPECT_EQ(keys(i["counters"]),
              (std::set<std::string>{"matched", "delayed", "dropped", "bytes", "calls", "failed", "stalled", "duplicated",
                                     "reordered", "paced", "dns", "resets", "corrupted"}));
    EXPECT_EQ(i["cgroup"], json("a.slice/api.service"));
    EXPECT_EQ(i["counters"]["stalled"], 7);
    EXPECT_EQ(i["replaced_qdiscs"][0], json("netem 8001: on eth0"));
    auto back = read_reply<ListReply>(j);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->agent_pid, 99);
    ASSERT_EQ(back->injections.size(), 1u);
    EXPECT_EQ(json(back->injections[0]), i);
    EXPECT_EQ(back->injections[0].counters.bytes, 4u);
    EXPECT_EQ(json(round_trip(lr)), json(lr));
}

TEST(Wire, UnreadableReplyIsAnErrorNotAThrow) {
    auto r = read_reply<ListReply>(json{{"ok", true}, {"injections", 5}});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("cannot read"), std::string::npos) << r.error().message;
    EXPECT_FALSE(read_reply<StopReply>(json{{"stopped", {1, 2}}}));
}

TEST(Wire, Versions) {
    EXPECT_EQ(version_of(json{{"ok", true}}), 1);  // before "v" was sent: version 1
    EXPECT_EQ(version_of(json{{"v", 3}}), 3);
    EXPECT_EQ(version_of(json{{"v", "1"}}), -1);
    EXPECT_EQ(version_of(json::array()), -1);
    EXPECT_TRUE(check_reply_version(reply(StopReply{})));
    EXPECT_FALSE(check_reply_version(json{{"ok", true}})) << "no \"v\": an agent of version 1";
    // An agent of another version: its refusal (or anything else) becomes one line naming
    // both versions and the fix.
    json refusal = {{"ok", false}, {"user", true}, {"error", "request protocol version 2: ..."}, {"v", 1}};
    auto r = check_reply_version(refusal);
    ASSERT_FALSE(r);
    EXPECT_TRUE(IsUserError(r.error(), {"protocol version 1", "this tardy version 7", "`tardy kill`", "retry"}));
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
    EXPECT_TRUE(IsUserError(check_reply_version(json{{"ok", true}, {"v", 1.5}}).error(), {"version unknown"}));
    // The agent's side: a request of another version, refused with both versions and the fix.
    auto q = validate_request(json{{"op", "list"}, {"v", 1}});
    ASSERT_FALSE(q);
    EXPECT_TRUE(IsUserError(q.error(), {"version 1", "speaks version 7", "`tardy kill`"}));
    // And the agent's refusal line carries its own version, which is what the client checks.
    json line = json::parse(handle_line(R"({"op":"list","v":1})", [](const json&) { return json(); }));
    EXPECT_EQ(line["ok"], false);
    EXPECT_EQ(line["v"], kProtocolVersion);
}

}  // namespace
}  // namespace tardy::wire
