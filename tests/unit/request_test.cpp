// SPDX-License-Identifier: Apache-2.0
// user/request: what the agent accepts from its socket. Garbage is refused with one line;
// what is accepted can be read the way the agent reads it without a throw.
#include "model/request.hpp"

#include <gtest/gtest.h>
#include "model/tardy_abi.hpp"

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/sock_faults.hpp"
#include "model/spec.hpp"
#include "model/wire.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

using json = nlohmann::json;
using test::IsUserError;

using test::kMs;

// Built the way prepare_inject() builds one (agent/inject.cpp), from what the CLI parses.
json valid_inject() {
    InjectRequest r;
    r.name = "api";
    r.net.delay_ns = 50 * kMs, r.net.jitter_ns = 10 * kMs, r.net.loss_ppm = 50'000;
    auto sock = build_sock_faults({"connect=ECONNREFUSED:25%", "bind=EADDRINUSE", "open=EACCES", "read=EIO:1%"},
                                  "/var/lib/app");
    EXPECT_TRUE(sock) << sock.error().message;
    r.sock = *sock;
    for (const char* s : {"write=50ms:10%", "fsync=1s"}) {
        auto st = parse_stall(s);
        EXPECT_TRUE(st) << st.error().message;
        r.stalls.push_back(*st);
    }
    r.devices = {"eth0", "lo"};
    wire::Inject w;
    w.name = r.name;
    w.cgroup = {"/sys/fs/cgroup/system.slice/api.service", "system.slice/api.service", 1234};
    w.net = r.net;
    w.sock = r.sock;
    w.stalls = r.stalls;
    w.for_ns = r.for_ns;
    w.netns = {{4026531840, "/proc/1/ns/net"}, {4026532000, "/run/netns/blue"}};
    w.devices = r.devices;
    return wire::request(w);
}

// Packet and socket faults with a filter of every kind (a filter takes no file faults or
// stalls, so valid_inject() has none).
json valid_filtered_inject() {
    json req = valid_inject();
    req["sock"] = {{"faults", json::array({{{"op", TARDY_OP_CONNECT}, {"err", 111}, {"ppm", 250'000}}})}};
    req.erase("stalls");
    auto f = build_filter({{"10.0.0.0/8", "fd00::/64"}, {"10.0.0.9"}, {"tcp"}, "5432-5440", "5435"});
    EXPECT_TRUE(f) << f.error().message;
    req["filter"] = *f;
    req["net"]["flows_ppm"] = 100'000;
    return req;
}

// Every read Agent::inject() and Agent::stop() make (agent/agent.cpp), in the same forms.
void read_like_agent(const json& req) {
    std::string op = req.value("op", std::string());
    if (op == "stop") {
        (void)req.get<wire::Stop>();
        return;
    }
    if (op != "inject") return;
    auto w = req.get<wire::Inject>();
    EXPECT_TRUE(encode(w.sock, w.filter, 0, 1)) << "encode of an accepted sock";
    EXPECT_TRUE(encode(w.filter)) << "encode of an accepted filter";
    EXPECT_TRUE(encode_file(w.sock, 0, 1)) << "encode_file of an accepted sock";
    EXPECT_FALSE(describe(w.sock).empty() && describe(w.net).empty() && describe(w.stalls).empty());
}

Result<void> check(const json& req) { return validate_request(req); }

Result<void> check_line(std::string_view line) {
    auto r = parse_request(line);
    if (!r) return r.error();
    return validate_request(*r);
}

TEST(RequestParse, NonObjectsAreRefused) {
    for (const char* line : {"[]", "1", "null", "\"x\"", "true", "1.5", "", "   ", "{", "{\"op\":\"ping\"} {}", "nope",
                             "{\"op\":\"ping\",}", "\xff\xfe"}) {
        auto r = parse_request(line);
        ASSERT_FALSE(r) << line;
        EXPECT_TRUE(IsUserError(r.error(), {"request"})) << line;
    }
    EXPECT_TRUE(IsUserError(parse_request("[]").error(), {"an array", "not a JSON object"}));
}

TEST(RequestParse, DeepNestingIsRefusedCheaply) {
    std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
    auto t0 = std::chrono::steady_clock::now();
    auto r = parse_request(deep);
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_TRUE(IsUserError(r.error(), {"deeper than 16"}));
    EXPECT_LT(took, std::chrono::milliseconds(200));
    EXPECT_FALSE(parse_request(std::string(100'000, '{')));  // unterminated too
    // 16 levels pass; brackets inside strings do not count.
    EXPECT_TRUE(check_line("{\"op\":\"ping\",\"x\":" + std::string(15, '[') + std::string(15, ']') + "}"));
    EXPECT_FALSE(check_line("{\"op\":\"ping\",\"x\":" + std::string(16, '[') + std::string(16, ']') + "}"));
    EXPECT_TRUE(check_line("{\"op\":\"ping\",\"x\":\"" + std::string(1000, '[') + "\\\"{\"}"));
}

TEST(RequestParse, OversizeLineIsRefused) {
    std::string big = "{\"op\":\"ping\",\"x\":\"" + std::string(2 << 20, 'a') + "\"}";
    auto r = parse_request(big);
    ASSERT_FALSE(r);
    EXPECT_TRUE(IsUserError(r.error(), {"bytes", "1048576"}));
}

TEST(RequestValidate, OpAndVersion) {
    EXPECT_TRUE(IsUserError(check(json::object()).error(), {"op", "missing"}));
    EXPECT_TRUE(IsUserError(check({{"op", 5}}).error(), {"op", "string"}));
    EXPECT_TRUE(IsUserError(check({{"op", "explode"}}).error(), {"op", "unknown", "explode"}));
    EXPECT_TRUE(check({{"op", "ping"}}));
    EXPECT_TRUE(check({{"op", "list"}, {"v", 7}}));
    EXPECT_TRUE(IsUserError(check({{"op", "list"}, {"v", 2}}).error(), {"version 2", "speaks version 7"}));
    EXPECT_TRUE(IsUserError(check({{"op", "list"}, {"v", 8}}).error(), {"version 8", "speaks version 7"}));
    EXPECT_TRUE(IsUserError(check({{"op", "list"}, {"v", "1"}}).error(), {"version"}));
    EXPECT_TRUE(IsUserError(check({{"op", "list"}, {"v", 1.0}}).error(), {"version"}));
}

TEST(RequestValidate, Stop) {
    EXPECT_TRUE(check({{"op", "stop"}, {"all", true}}));
    EXPECT_TRUE(check({{"op", "stop"}, {"name", "inj-1"}}));
    EXPECT_TRUE(IsUserError(check({{"op", "stop"}}).error(), {"all", "name"}));
    EXPECT_TRUE(IsUserError(check({{"op", "stop"}, {"all", false}}).error(), {"name"}));
    EXPECT_TRUE(IsUserError(check({{"op", "stop"}, {"all", "yes"}}).error(), {"all"}));
    EXPECT_TRUE(IsUserError(check({{"op", "stop"}, {"name", 7}}).error(), {"name", "string"}));
    for (std::string bad : {std::string("-x"), std::string(".x"), std::string(65, 'a'), std::string("a b"),
                            std::string("a/b"), std::string("a\nb")})
        EXPECT_TRUE(IsUserError(check({{"op", "stop"}, {"name", bad}}).error(), {"name"})) << bad;
}

TEST(RequestValidate, Update) {
    json u = {{"op", "update"}, {"name", "slow"}, {"net", {{"delay_ns", 100000000}, {"jitter_ns", 1000000}}}};
    EXPECT_TRUE(check(u));
    EXPECT_NO_THROW((void)u.get<wire::Update>());
    EXPECT_EQ(u.get<wire::Update>().net.delay_ns, 100000000u);
    u["sock"] = {{"faults", {{{"op", TARDY_OP_CONNECT}, {"err", 111}, {"ppm", 500000}}}}};
    u["for_ns"] = 60000000000ULL;
    EXPECT_TRUE(check(u));
    EXPECT_TRUE(IsUserError(check({{"op", "update"}, {"net", json::object()}}).error(), {"name"}));
    EXPECT_TRUE(IsUserError(check({{"op", "update"}, {"name", "a b"}, {"net", json::object()}}).error(), {"name"}));
    EXPECT_TRUE(IsUserError(check({{"op", "update"}, {"name", "x"}}).error(), {"net", "missing"}));
    json j = u;
    j["net"]["jitter_ns"] = 200000000;
    EXPECT_TRUE(IsUserError(check(j).error(), {"jitter_ns", "exceeds"}));
    j = u;
    j["net"]["loss_ppm"] = 2000000;
    EXPECT_TRUE(IsUserError(check(j).error(), {"loss_ppm"}));
    j = u;
    j["for_ns"] = "soon";
    EXPECT_TRUE(IsUserError(check(j).error(), {"for_ns"}));
    EXPECT_EQ(u.get<wire::Update>().revision, -1) << "no revision: the update applies to whatever is there";
    j = u;
    j["revision"] = 3;
    EXPECT_TRUE(check(j));
    EXPECT_EQ(j.get<wire::Update>().revision, 3);
    for (json bad : {json(-1), json("3"), json(1.5)}) {
        j["revision"] = bad;
        EXPECT_TRUE(IsUserError(check(j).error(), {"revision"})) << bad.dump();
    }
    j = u;
    j["sock"]["faults"][0]["op"] = 99;
    EXPECT_TRUE(IsUserError(check(j).error(), {"op"}));
}

TEST(RequestValidate, ValidInjectIsAcceptedAndReadsWithoutThrowing) {
    json req = valid_inject();
    auto v = check(req);
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_NO_THROW(read_like_agent(req));
    // Through text, as it arrives; the "v" the client adds; the optional fields left out.
    EXPECT_TRUE(check_line(req.dump() + "\n"));
    req["v"] = kProtocolVersion;
    EXPECT_TRUE(check(req));
    json lean = {{"op", "inject"},
                 {"cgroup", {{"path", "/sys/fs/cgroup/a"}, {"rel", "a"}, {"id", 7}}},
                 {"net", json::object()},
                 {"stalls", {{{"name", "write"}, {"delay_ns", 5 * kMs}, {"ppm", 1'000'000}}}},
                 {"for_ns", 1}};
    ASSERT_TRUE(check(lean)) << check(lean).error().message;
    EXPECT_NO_THROW(read_like_agent(lean));
}

struct Bad {
    const char* pointer;  // JSON pointer into valid_inject(); value null with erase: remove it
    json value;
    const char* field;    // what the message must name
    bool erase = false;
};

TEST(RequestValidate, EveryInjectFieldIsChecked) {
    json nine = json::array();
    for (int i = 0; i < 9; i++) nine.push_back({{"op", 1 + i % 4}, {"err", 1}, {"ppm", 1}});
    json stalls9 = json::array();
    for (const char* n : {"read", "write", "stat", "open", "nanosleep", "fsync", "fdatasync", "close", "connect"})
        stalls9.push_back({{"name", n}, {"delay_ns", kMs}, {"ppm", 1}});
    const std::vector<Bad> cases = {
        {"/name", 5, "name"}, {"/name", "-x", "name"}, {"/name", std::string(65, 'n'), "name"},
        {"/name", "a b", "name"},
        {"/cgroup", nullptr, "cgroup", true}, {"/cgroup", "x", "cgroup"}, {"/cgroup/path", 5, "cgroup.path"},
        {"/cgroup/path", "rel/path", "cgroup.path"}, {"/cgroup/path", std::string("/a\0b", 4), "cgroup.path"},
        {"/cgroup/path", "/" + std::string(5000, 'p'), "cgroup.path"}, {"/cgroup/rel", nullptr, "cgroup.rel", true},
        {"/cgroup/rel", json::array(), "cgroup.rel"}, {"/cgroup/id", 0, "cgroup.id"}, {"/cgroup/id", -1, "cgroup.id"},
        {"/cgroup/id", "1", "cgroup.id"}, {"/cgroup/id", 1.5, "cgroup.id"}, {"/cgroup/id", nullptr, "cgroup.id", true},
        {"/net", nullptr, "net", true}, {"/net", json::array(), "net"}, {"/net", 5, "net"},
        {"/net/delay_ns", "50ms", "net.delay_ns"}, {"/net/delay_ns", -1, "net.delay_ns"},
        {"/net/delay_ns", 6'000'000'000ULL, "net.delay_ns"}, {"/net/jitter_ns", 60 * kMs, "net.jitter_ns"},
        {"/net/delay_ns", 4'995'000'000ULL, "net"}, {"/net/loss_ppm", 1'000'001, "net.loss_ppm"},
        {"/net/loss_ppm", true, "net.loss_ppm"}, {"/sock", 5, "sock"}, {"/sock/faults", json::object(), "sock.faults"},
        {"/sock/faults", json::array({5}), "sock.faults[0]"}, {"/sock/faults/0/op", 9, "sock.faults[0].op"},
        {"/sock/faults/0/op", nullptr, "sock.faults[0].op", true}, {"/sock/faults/0/err", 0, "sock.faults[0].err"},
        {"/sock/faults/0/err", 134, "sock.faults[0].err"}, {"/sock/faults/0/err", "EIO", "sock.faults[0].err"},
        {"/sock/faults/0/ppm", 0, "sock.faults[0].ppm"}, {"/sock/faults/0/ppm", 2'000'000, "sock.faults[0].ppm"},
        {"/sock/faults/1/op", 1, "sock.faults[1].op"}, {"/sock/faults", nine, "sock.faults"},
        {"/sock/file_faults/0/op", 4, "sock.file_faults[0].op"}, {"/sock/file_faults", 1, "sock.file_faults"},
        {"/filter/peers", json::array({5}), "filter.peers[0]"}, {"/filter/peers", json::array({"nope"}), "filter.peers[0]"},
        {"/filter/peers", json::array({"10.0.0.1/33"}), "filter.peers[0]"},
        {"/filter/peers", json::array({std::string("10.0.0.1\0x", 10)}), "filter.peers[0]"},
        {"/filter/except_peers", json::array({"::1/129"}), "filter.except_peers[0]"},
        {"/filter/peers", json::array({"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6", "1.1.1.7", "1.1.1.8"}),
         "filter.peers"},
        {"/filter/port_lo", 70000, "filter.port_lo"}, {"/filter/port_lo", 6000, "filter.port_lo"},
        {"/filter/port_lo", 0, "filter.port_lo"}, {"/filter/except_port_hi", 1, "filter.except_port_lo"},
        {"/filter/protos", 8, "filter.protos"}, {"/filter", 5, "filter"}, {"/net/flows_ppm", 1'000'000, "net.flows_ppm"},
        {"/net/scope", 0, "net.scope"}, {"/net/scope", 8, "net.scope"}, {"/net/scope", "egress", "net.scope"},
        {"/net/scope", TARDY_SCOPE_SETUP, "net.scope"}, {"/net/scope", TARDY_SCOPE_TC_INGRESS | 1, "net.scope"},
        {"/sock/path", "rel", "sock.path"},
        {"/sock/path", "/" + std::string(300, 'x'), "sock.path"}, {"/sock/path", 5, "sock.path"},
        {"/stalls", json::object(), "stalls"}, {"/stalls", json::array({5}), "stalls[0]"},
        {"/stalls/0/name", 99999, "stalls[0].name"}, {"/stalls/0/name", "frob", "stalls[0].name"},
        {"/stalls/0/name", "fstat", "stalls[0].name"}, {"/stalls/0/name", nullptr, "stalls[0].name", true},
        {"/stalls/0/on", "disks", "stalls[0].on"}, {"/stalls/0/path", "rel", "stalls[0].path"}, {"/stalls/0/delay_ns", 0, "stalls[0].delay_ns"},
        {"/stalls/0/delay_ns", 61'000'000'000ULL, "stalls[0].delay_ns"}, {"/stalls/0/ppm", 0, "stalls[0].ppm"},
        {"/stalls/0/ppm", nullptr, "stalls[0].ppm", true}, {"/stalls/1/name", "write", "stalls[1].name"},
        {"/stalls", stalls9, "stalls"}, {"/for_ns", 0, "for_ns"}, {"/for_ns", "5m", "for_ns"},
        {"/for_ns", nullptr, "for_ns", true}, {"/for_ns", kMaxForNs + 1, "for_ns"}, {"/netns", 5, "netns"},
        {"/netns", json::array({5}), "netns[0]"}, {"/netns/0/ino", 0, "netns[0].ino"},
        {"/netns/0/path", 5, "netns[0].path"}, {"/netns/0/path", "proc/1/ns/net", "netns[0].path"},
        {"/netns", json::array(), "netns"}, {"/netns", nullptr, "netns", true}, {"/devices", 5, "devices"},
        {"/devices", json::array({5}), "devices[0]"}, {"/devices", json::array({""}), "devices[0]"},
        {"/devices", json::array({"a/b"}), "devices[0]"}, {"/devices", json::array({"0123456789abcdef"}), "devices[0]"},
        {"/net/dist", 4, "net.dist"}, {"/net/dist", "normal", "net.dist"}, {"/net/corr_ppm", 1'000'001, "net.corr_ppm"},
        {"/net/ge_p_ppm", 1000, "net.ge_r_ppm"}, {"/net/ge_bad_loss_ppm", -1, "net.ge_bad_loss_ppm"},
        {"/net/duplicate_ppm", 2'000'000, "net.duplicate_ppm"}, {"/net/reorder_ppm", 1'000'001, "net.reorder_ppm"},
        {"/net/rate_bytes_per_s", 100, "net.rate_bytes_per_s"},
        {"/net/rate_bytes_per_s", 20'000'000'000ULL, "net.rate_bytes_per_s"},
    };
    ASSERT_TRUE(check(valid_filtered_inject())) << check(valid_filtered_inject()).error().message;
    for (const auto& c : cases) {
        bool filtered = std::string(c.pointer).rfind("/filter", 0) == 0 || std::string(c.pointer) == "/net/flows_ppm";
        json req = filtered ? valid_filtered_inject() : valid_inject();
        json::json_pointer p(c.pointer);
        if (c.erase)
            req[p.parent_pointer()].erase(p.back());
        else
            req[p] = c.value;
        auto r = check(req);
        ASSERT_FALSE(r) << c.pointer << " = " << c.value.dump();
        EXPECT_TRUE(IsUserError(r.error(), {c.field})) << c.pointer << " = " << c.value.dump();
        EXPECT_LT(r.error().message.size(), 300u) << r.error().message;
    }
}

TEST(RequestValidate, NoFaultAtAll) {
    json req = valid_inject();
    req["net"] = json::object();
    req["sock"] = json::object();
    req["stalls"] = json::array();
    EXPECT_TRUE(IsUserError(check(req).error(), {"no fault"}));
    req.erase("sock");
    req.erase("stalls");
    EXPECT_TRUE(IsUserError(check(req).error(), {"no fault"}));
    req["net"] = {{"loss_ppm", 0}, {"delay_ns", 0}};
    EXPECT_TRUE(IsUserError(check(req).error(), {"no fault"}));
}

TEST(RequestValidate, FiltersNeedTheirFaults) {
    json req = valid_inject();
    req["sock"]["file_faults"] = json::array();
    EXPECT_TRUE(IsUserError(check(req).error(), {"sock.path"}));
    req = valid_filtered_inject();
    req["sock"]["faults"] = json::array({{{"op", TARDY_OP_SOCKET}, {"err", 24}, {"ppm", 1}}});
    EXPECT_TRUE(IsUserError(check(req).error(), {"filter", "socket()"}));
    req = valid_filtered_inject();
    req["stalls"] = valid_inject()["stalls"];
    EXPECT_TRUE(IsUserError(check(req).error(), {"filter", "stalls on sockets only"}));
    for (auto& st : req["stalls"]) st["on"] = "sockets";
    EXPECT_TRUE(check(req)) << "a filter applies to stalls on sockets";
    req = valid_filtered_inject();
    req["sock"]["file_faults"] = valid_inject()["sock"]["file_faults"];
    req["sock"]["path"] = "/var/lib/app";
    EXPECT_TRUE(IsUserError(check(req).error(), {"filter"}));
    // Without packet faults, netns is neither needed nor read.
    req = valid_inject();
    req["net"] = json::object();
    req.erase("netns");
    EXPECT_TRUE(check(req)) << check(req).error().message;
    EXPECT_NO_THROW(read_like_agent(req));
}

TEST(RequestHandleLine, RepliesOneLineAndNeverThrows) {
    int calls = 0;
    auto answer = [&](const json&) {
        calls++;
        return json{{"ok", true}, {"pid", 1}};
    };
    auto reply = [](const std::string& line) {
        EXPECT_FALSE(line.empty());
        EXPECT_EQ(line.back(), '\n');
        EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
        return json::parse(line);
    };
    json r = reply(handle_line("{\"op\":\"ping\",\"v\":7}\n", answer));
    EXPECT_EQ(r, (json{{"ok", true}, {"pid", 1}, {"v", kProtocolVersion}}));
    EXPECT_EQ(calls, 1);

    for (std::string bad : {std::string("[]"), std::string("{\"op\":5}"), std::string(100'000, '['),
                            std::string("{\"op\":\"stop\",\"name\":\"a\\nb\"}"), std::string("\xc3\x28")}) {
        json e = reply(handle_line(bad, answer));
        EXPECT_EQ(e["ok"], false) << bad.substr(0, 40);
        EXPECT_EQ(e["user"], true) << bad.substr(0, 40);
        EXPECT_TRUE(e["error"].is_string());
        EXPECT_EQ(e["v"], kProtocolVersion) << "a refusal names the agent's protocol version";
    }
    EXPECT_EQ(calls, 1) << "a refused request reached dispatch";

    json thrown = reply(handle_line("{\"op\":\"list\"}", [](const json& q) -> json { return q.at("nope"); }));
    EXPECT_EQ(thrown["ok"], false);
    EXPECT_EQ(thrown["user"], false);
    json odd = reply(handle_line("{\"op\":\"list\"}", [](const json&) -> json { throw 42; }));
    EXPECT_EQ(odd["user"], false);
    json err = reply(handle_line("{\"op\":\"list\"}", [](const json&) -> json { throw std::runtime_error("a\nb"); }));
    EXPECT_EQ(err["error"].get<std::string>().find('\n'), std::string::npos);
    json no_ok = reply(handle_line("{\"op\":\"list\"}", [](const json&) { return json::array(); }));
    EXPECT_EQ(no_ok["ok"], false);
    // A reply echoing bytes that are not UTF-8 is still sent, not thrown.
    json bytes = reply(handle_line("{\"op\":\"list\"}", [](const json&) {
        return json{{"ok", true}, {"x", std::string("\xff\xfe")}};
    }));
    EXPECT_EQ(bytes["ok"], true);
}

TEST(RequestHandleLine, LongEchoesAreCut) {
    std::string name(5000, 'x');
    auto line = handle_line(json{{"op", "stop"}, {"name", name + " "}}.dump(), [](const json&) { return json(); });
    EXPECT_LT(line.size(), 400u) << line;
    // A cut in the middle of a multi-byte character still makes valid JSON.
    std::string wide;
    for (int i = 0; i < 100; i++) wide += "\xc3\xa9";
    auto r = json::parse(handle_line(json{{"op", wide}}.dump(), [](const json&) { return json(); }));
    EXPECT_EQ(r["ok"], false);
}

}  // namespace
}  // namespace tardy
