// SPDX-License-Identifier: Apache-2.0
// The journal codec of qdisc snapshots (user/sys/qdisc: encode/decode), which needs no
// kernel: records round-trip, and every damaged record is refused with a journal error.
// Snapshots of real qdiscs round-trip in tests/integration/qdisc_test.cpp.
#include <gtest/gtest.h>

#include <string>

#include "sys/qdisc.hpp"

namespace tardy {
namespace {

TEST(QdiscCodec, RoundTripsDefaultsAndEmptyFields) {
    QdiscSnapshot s{7, "eth0", "pfifo_fast", 0, {}, true, ""};
    std::string line = encode(s);
    EXPECT_EQ(line,
              "qdisc-v1 ifindex=7 ifname=eth0 kind=pfifo_fast handle=00000000 default=1 options= lost=");
    auto d = decode(line);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(*d, s);

    QdiscSnapshot t{2147483647, "a=b.c-d", "htb", 0x80040000u, {0, 1, 0xfe, 0xff}, false, "1 class"};
    d = decode(encode(t));
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(*d, t);
}

TEST(QdiscCodec, RejectsDamagedRecords) {
    const std::string good =
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost=";
    ASSERT_TRUE(decode(good).ok());
    const char* bad[] = {
        "",
        "qdisc-v1",
        "qdisc-v2 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost= ",
        "qdisc-v1 ifindex=7  ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=0 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=-7 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=7x ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=7 ifname= kind=htb handle=00010000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=7 ifname=averyveryverylongname kind=htb handle=00010000 default=0 options= lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=h/b handle=00010000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=10000 default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=0001000g default=0 options=0a0b lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=2 options=0a0b lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0 lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=0 options=0A0B lost=",
        "qdisc-v1 ifindex=7 ifname=eth0 kind=htb handle=00010000 default=0 options=0a0b lost=zz",
        "qdisc-v1 kind=htb ifindex=7 ifname=eth0 handle=00010000 default=0 options=0a0b lost=",
    };
    for (const char* b : bad) {
        auto d = decode(b);
        EXPECT_FALSE(d.ok()) << "accepted: " << b;
        if (!d.ok()) {
            EXPECT_NE(d.error().message.find("journal"), std::string::npos);
        }
    }
}

}  // namespace
}  // namespace tardy
