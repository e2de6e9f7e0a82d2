// SPDX-License-Identifier: Apache-2.0
// Socket and file fault specs (--fail, --peer, --port, --path): parsing, refusals, encoding
// into the shared rule structs, and the JSON round trip the agent relies on.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "model/sock_faults.hpp"
#include "model/tardy_abi.hpp"

using namespace tardy;

namespace {

TEST(ParseFail, NamesNumbersAndPercentages) {
    auto f = parse_fail("connect=ECONNREFUSED");
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->op, static_cast<uint32_t>(TARDY_OP_CONNECT));
    EXPECT_EQ(f->err, static_cast<uint32_t>(ECONNREFUSED));
    EXPECT_EQ(f->ppm, TARDY_PPM);
    EXPECT_FALSE(f->file);
    auto g = parse_fail("sendto=101:25%");
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_EQ(g->op, static_cast<uint32_t>(TARDY_OP_SENDMSG));  // sendto is sendmsg's hook
    EXPECT_EQ(g->err, 101u);
    EXPECT_EQ(g->ppm, 250000u);
    auto h = parse_fail("openat=EIO:0.5%");
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_TRUE(h->file);
    EXPECT_EQ(h->op, static_cast<uint32_t>(TARDY_FOP_OPEN));
    EXPECT_EQ(h->ppm, 5000u);
}

TEST(ParseFail, RefusalsAreOneLineAndSayTheFix) {
    for (const auto& [spec, needle] : std::vector<std::pair<std::string, std::string>>{
             {"connect", "SYSCALL=ERRNO"},
             {"=EIO", "SYSCALL=ERRNO"},
             {"frob=EIO", "unknown syscall"},
             {"connect=EWHAT", "unknown errno"},
             {"connect=0", "unknown errno"},
             {"connect=134", "unknown errno"},
             {"connect=-1", "unknown errno"},
             {"connect=EIO:0%", "0% fails nothing"},
             {"connect=EIO:101%", "over 100%"},
             {"connect=EIO:\n5%", ""}}) {
        auto f = parse_fail(spec);
        ASSERT_FALSE(f) << spec;
        EXPECT_TRUE(f.error().is_user()) << spec;
        EXPECT_EQ(f.error().message.find('\n'), std::string::npos) << spec;
        EXPECT_NE(f.error().message.find(needle), std::string::npos) << spec << ": " << f.error().message;
    }
}

TEST(ParsePeer, IPv4AndIPv6WithAndWithoutPrefix) {
    auto a = parse_peer("10.0.0.5");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->family, static_cast<uint32_t>(AF_INET));
    EXPECT_EQ(a->prefix_len, 32u);
    auto b = parse_peer("fd00::/64");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->family, static_cast<uint32_t>(AF_INET6));
    EXPECT_EQ(b->prefix_len, 64u);
    auto c = parse_peer("0.0.0.0/0");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->prefix_len, 0u);
    for (const std::string bad : {"10.0.0.300", "10.0.0.0/33", "fd00::/129", "host.example", "10.0.0.0/", "/8",
                                  "10.0.0.0/8x", ""})
        EXPECT_FALSE(parse_peer(bad)) << bad;
}

TEST(ParsePorts, SinglesAndRanges) {
    auto p = parse_ports("53");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->first, 53);
    EXPECT_EQ(p->second, 53);
    auto r = parse_ports("8000-8080");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->first, 8000);
    EXPECT_EQ(r->second, 8080);
    for (const std::string bad : {"0", "65536", "80-79", "-1", "1-", "-", "a", "1-2-3", " 80", ""})
        EXPECT_FALSE(parse_ports(bad)) << bad;
}

TEST(BuildSockFaults, PathsMustFitTheFaults) {
    EXPECT_TRUE(build_sock_faults({"connect=ECONNREFUSED"}));
    EXPECT_TRUE(build_sock_faults({"open=EIO"}, "/var/lib/app/"));
    for (const auto& [fails, path] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"connect=EIO", "connect=EPERM"}, ""},  // one per syscall
             {{"connect=EIO"}, "/var"},               // paths filter file faults
             {{"open=EIO"}, "relative"}})             // absolute prefixes only
        EXPECT_FALSE(build_sock_faults(fails, path)) << fails[0];
    auto f = build_sock_faults({"open=EIO"}, "/var/lib/app///");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->path, "/var/lib/app");
}

TEST(EncodeSockRule, MatchesTheSharedStruct) {
    auto f = build_sock_faults({"connect=ECONNREFUSED:20%", "bind=EADDRINUSE"});
    ASSERT_TRUE(f);
    auto filter = build_filter({{"198.18.0.0/24", "fd00::1"}, {}, {}, "5000-5001", ""});
    ASSERT_TRUE(filter);
    auto r = encode(*f, *filter, 7, 123456789);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->slot, 7u);
    EXPECT_EQ(r->expires_ns, 123456789u);
    EXPECT_EQ(r->n_faults, 2u);
    EXPECT_EQ(r->faults[0].ppm, 200000u);
    EXPECT_EQ(r->filter.n_peers, 2u);
    EXPECT_EQ(r->filter.peers[0].prefix_len, 24u);
    EXPECT_EQ(r->filter.peers[1].family, static_cast<uint32_t>(AF_INET6));
    EXPECT_EQ(r->filter.port_lo, 5000);
    EXPECT_EQ(r->filter.port_hi, 5001);
    EXPECT_EQ(describe(*f), "connect=ECONNREFUSED 20%, bind=EADDRINUSE");
}

TEST(SockFaultsJson, RoundTrips) {
    auto f = build_sock_faults({"connect=ECONNREFUSED:20%", "read=EIO"}, "/srv");
    ASSERT_TRUE(f);
    nlohmann::json j = *f;
    SockFaults back = j.get<SockFaults>();
    EXPECT_EQ(describe(back), describe(*f));
    EXPECT_EQ(back.file_faults.size(), 1u);
    EXPECT_TRUE(back.file_faults[0].file);
}

}  // namespace
