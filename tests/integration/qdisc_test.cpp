// SPDX-License-Identifier: Apache-2.0
// Integration test of user/sys/qdisc: real rtnetlink on veth pairs in scratch network
// namespaces. Runs as root (part of build/integration_tests). Each test moves the main thread
// into a fresh namespace made by unshare(CLONE_NEWNET) and moves it back when done
// (tests/common/scratch_netns.hpp); the namespace and every device in it then disappear with
// the last reference, even if the test fails or the process is killed. `ip`, `tc` and
// `sysctl` are used only to set up and to check, never by the code under test. The journal
// codec of snapshots needs no kernel: tests/unit/qdisc_codec_test.cpp.

#include "sys/qdisc.hpp"

#include <gtest/gtest.h>
#include <net/if.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <ostream>
#include <string>

#include "../common/scratch_netns.hpp"

namespace tardy {
namespace {

using test::netns_inode;
using test::ScratchNetns;

struct Cmd {
    int status = -1;
    std::string out;
};

// Runs a shell command in the calling thread's network namespace (children inherit it).
Cmd shell(const std::string& cmd) {
    Cmd c;
    FILE* f = popen((cmd + " 2>&1").c_str(), "r");
    if (!f) return c;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) c.out.append(buf, n);
    c.status = pclose(f);
    return c;
}

#define SH_OK(cmd)                                             \
    do {                                                       \
        Cmd c_ = shell(cmd);                                      \
        ASSERT_EQ(c_.status, 0) << (cmd) << "\n" << c_.out;    \
    } while (0)

// First line of `tc qdisc show dev <dev> root`, the kernel's view through iproute2.
std::string tc_root(const std::string& dev) {
    std::string out = shell("tc qdisc show dev " + dev + " root").out;
    return out.substr(0, out.find('\n'));
}

class QdiscTest : public ::testing::Test {
protected:
    void SetUp() override {
        outer_ns_ = netns_inode();
        ns_.emplace();
        ASSERT_TRUE(ns_->entered()) << "unshare(CLONE_NEWNET): " << std::strerror(errno) << " (run as root)";
        // No IPv6 link-local chatter: htb counts packets it sends directly in its options.
        shell("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
        SH_OK("ip link add va type veth peer name vb");
        SH_OK("ip link set va up && ip link set vb up");
        va_ = static_cast<int>(if_nametoindex("va"));
        ASSERT_GT(va_, 0);
    }
    void TearDown() override {
        ns_.reset();
        EXPECT_EQ(netns_inode(), outer_ns_) << "thread did not get back to its namespace";
    }

    QdiscSnapshot root(int ifindex) {
        auto r = root_qdisc(ifindex);
        EXPECT_TRUE(r.ok()) << r.error().message;
        return r.ok() ? r.value() : QdiscSnapshot{};
    }

    ino_t outer_ns_ = 0;
    std::optional<ScratchNetns> ns_;
    int va_ = 0;
};

TEST_F(QdiscTest, DefaultRootIsReplacedAndRestored) {
    QdiscSnapshot before = root(va_);
    EXPECT_EQ(before.ifindex, va_);
    EXPECT_EQ(before.ifname, "va");
    EXPECT_EQ(before.kind, "noqueue");  // veth is IFF_NO_QUEUE
    EXPECT_EQ(before.handle, 0u);
    EXPECT_TRUE(before.is_default);
    EXPECT_TRUE(before.not_restored.empty());
    EXPECT_EQ(tc_root("va").rfind("qdisc noqueue 0: root", 0), 0u) << tc_root("va");

    auto r = replace_root_qdisc(va_, "pfifo");
    ASSERT_TRUE(r.ok()) << r.error().message;
    QdiscSnapshot ours = root(va_);
    EXPECT_EQ(ours.kind, "pfifo");
    EXPECT_NE(ours.handle, 0u);
    EXPECT_FALSE(ours.is_default);
    EXPECT_EQ(tc_root("va").rfind("qdisc pfifo ", 0), 0u) << tc_root("va");

    r = restore_root_qdisc(before);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(va_), before);
    EXPECT_EQ(tc_root("va").rfind("qdisc noqueue 0: root", 0), 0u) << tc_root("va");

    r = restore_root_qdisc(before);  // repeating is a no-op
    EXPECT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(va_), before);
}

TEST_F(QdiscTest, NeverUpDeviceHasNoopRootAndGetsItsDefaultLater) {
    SH_OK("ip link add vc type veth peer name vd");
    int vc = static_cast<int>(if_nametoindex("vc"));
    QdiscSnapshot before = root(vc);
    EXPECT_EQ(before.kind, "noop");
    EXPECT_TRUE(before.is_default);

    auto r = replace_root_qdisc(vc, "pfifo");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(vc).kind, "pfifo");
    r = restore_root_qdisc(before);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(vc), before);

    SH_OK("ip link set vc up");
    QdiscSnapshot up = root(vc);
    EXPECT_EQ(up.kind, "noqueue");
    EXPECT_TRUE(up.is_default);
}

TEST_F(QdiscTest, HtbWithHandleAndOptionsIsRestoredExactly) {
    SH_OK("tc qdisc add dev va root handle 1: htb default 10 r2q 7 direct_qlen 123");
    QdiscSnapshot before = root(va_);
    EXPECT_EQ(before.kind, "htb");
    EXPECT_EQ(before.handle, 0x00010000u);
    EXPECT_FALSE(before.is_default);
    EXPECT_FALSE(before.options.empty());
    EXPECT_TRUE(before.not_restored.empty()) << before.not_restored;
    EXPECT_TRUE(check_restorable(before).ok());

    auto r = replace_root_qdisc(va_, "pfifo");
    ASSERT_TRUE(r.ok()) << r.error().message;
    QdiscSnapshot ours = root(va_);
    EXPECT_EQ(ours.kind, "pfifo");
    EXPECT_NE(ours.handle, before.handle);

    r = restore_root_qdisc(before);
    ASSERT_TRUE(r.ok()) << r.error().message;
    QdiscSnapshot after = root(va_);
    EXPECT_EQ(after.kind, "htb");
    EXPECT_EQ(after.handle, before.handle);
    EXPECT_EQ(after.options, before.options);
    EXPECT_EQ(after, before);
    std::string line = tc_root("va");
    EXPECT_EQ(line.rfind("qdisc htb 1: root", 0), 0u) << line;
    EXPECT_NE(line.find("r2q 7"), std::string::npos) << line;
    EXPECT_NE(line.find("default 0x10"), std::string::npos) << line;
    EXPECT_NE(line.find("direct_qlen 123"), std::string::npos) << line;

    r = restore_root_qdisc(before);  // already back: must not touch it
    EXPECT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(va_), before);
}

// Every non-default root this kernel can make, with options, survives replace + restore.
struct RootCase {
    const char* tc_args;  // after "tc qdisc add dev va root "
    const char* kind;
    uint32_t handle;
    const char* shown;  // in `tc qdisc show` after the restore
};

// Without it gtest prints the struct's bytes, padding included (valgrind: uninitialised).
void PrintTo(const RootCase& c, std::ostream* os) { *os << c.tc_args; }

class QdiscRootCase : public QdiscTest, public ::testing::WithParamInterface<RootCase> {};

TEST_P(QdiscRootCase, IsRestoredExactly) {
    const RootCase& c = GetParam();
    SH_OK(std::string("tc qdisc add dev va root ") + c.tc_args);
    QdiscSnapshot before = root(va_);
    EXPECT_EQ(before.kind, c.kind);
    EXPECT_EQ(before.handle, c.handle);
    EXPECT_FALSE(before.is_default);
    EXPECT_TRUE(before.not_restored.empty()) << before.not_restored;

    auto r = replace_root_qdisc(va_, "pfifo");
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_NE(root(va_).handle, before.handle);
    r = restore_root_qdisc(before);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(va_), before);
    EXPECT_NE(tc_root("va").find(c.shown), std::string::npos) << tc_root("va");
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, QdiscRootCase,
    ::testing::Values(
        RootCase{"handle 1: htb default 10 r2q 7 direct_qlen 123", "htb", 0x00010000, "r2q 7 default 0x10"},
        RootCase{"handle 2: tbf rate 1mbit burst 32kbit latency 400ms", "tbf", 0x00020000,
                 "rate 1Mbit burst 4Kb lat 400ms"},
        RootCase{"handle 3: tbf rate 10gbit peakrate 20gbit burst 1mbit mtu 64kb latency 1s", "tbf", 0x00030000,
                 "rate 10Gbit burst 130000b peakrate 20Gbit minburst 65000b lat 1s"},
        RootCase{"handle 4: pfifo limit 9", "pfifo", 0x00040000, "limit 9p"},
        RootCase{"handle 5: bfifo limit 9000", "bfifo", 0x00050000, "limit 9000b"},
        RootCase{"handle 6: pfifo_head_drop limit 9", "pfifo_head_drop", 0x00060000, "limit 9p"},
        RootCase{"handle 7: pfifo_fast", "pfifo_fast", 0x00070000, "bands 3 priomap"},
        RootCase{"handle 8: noqueue", "noqueue", 0x00080000, "qdisc noqueue 8: root"},
        RootCase{"handle abcd: pfifo", "pfifo", 0xabcd0000, "qdisc pfifo abcd: root"}),
    [](const ::testing::TestParamInfo<RootCase>& i) {
        return std::string(i.param.kind) + "_" + std::to_string(i.index);
    });

TEST_F(QdiscTest, RestoreClearsTheSameHandleHeldByAnotherKind) {
    SH_OK("tc qdisc add dev va root handle 1: htb default 10");
    QdiscSnapshot before = root(va_);
    SH_OK("tc qdisc del dev va root && tc qdisc add dev va root handle 1: pfifo limit 5");
    ASSERT_EQ(root(va_).kind, "pfifo");
    ASSERT_EQ(root(va_).handle, 0x00010000u);

    auto r = restore_root_qdisc(before);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(va_), before);
}

TEST_F(QdiscTest, ReplaceMakesAFreshQdiscEvenOfTheSameKind) {
    SH_OK("tc qdisc add dev va root handle 5: pfifo limit 7");
    QdiscSnapshot before = root(va_);
    EXPECT_EQ(before.kind, "pfifo");
    EXPECT_EQ(before.handle, 0x00050000u);
    EXPECT_EQ(before.options.size(), 4u);  // struct tc_fifo_qopt, not nested attributes

    auto r = replace_root_qdisc(va_, "pfifo");
    ASSERT_TRUE(r.ok()) << r.error().message;
    QdiscSnapshot ours = root(va_);
    EXPECT_EQ(ours.kind, "pfifo");
    EXPECT_NE(ours.handle, before.handle);
    EXPECT_NE(ours.options, before.options);
    EXPECT_EQ(tc_root("va").find("limit 7"), std::string::npos) << tc_root("va");

    r = restore_root_qdisc(before);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(va_), before);
    EXPECT_NE(tc_root("va").find("limit 7"), std::string::npos) << tc_root("va");
}

TEST_F(QdiscTest, ClassesChildQdiscsAndFiltersAreReportedAsNotRestorable) {
    SH_OK("tc qdisc add dev va root handle 1: htb default 10");
    SH_OK("tc class add dev va parent 1: classid 1:10 htb rate 1mbit");
    SH_OK("tc class add dev va parent 1: classid 1:20 htb rate 1mbit");
    SH_OK("tc qdisc add dev va parent 1:10 handle 10: pfifo");
    SH_OK("tc filter add dev va parent 1: protocol ip prio 1 u32 match ip dport 80 0xffff flowid 1:10");
    QdiscSnapshot s = root(va_);
    EXPECT_EQ(s.not_restored, "2 classes, 1 child qdisc, 1 filter");
    auto r = check_restorable(s);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.error().is_user());
    EXPECT_NE(r.error().message.find("va"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("2 classes"), std::string::npos) << r.error().message;
}

TEST_F(QdiscTest, ClsactIsLeftAlone) {
    SH_OK("tc qdisc add dev va clsact");
    QdiscSnapshot before = root(va_);
    EXPECT_EQ(before.kind, "noqueue");
    EXPECT_TRUE(before.is_default);

    auto r = replace_root_qdisc(va_, "pfifo");
    ASSERT_TRUE(r.ok()) << r.error().message;
    r = restore_root_qdisc(before);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(root(va_), before);
    EXPECT_NE(shell("tc qdisc show dev va").out.find("qdisc clsact ffff:"), std::string::npos);

    SH_OK("tc qdisc add dev va root handle 1: htb");
    EXPECT_TRUE(root(va_).not_restored.empty()) << root(va_).not_restored;
}

TEST_F(QdiscTest, UnknownKindIsNamedInTheErrorAndChangesNothing) {
    QdiscSnapshot before = root(va_);
    auto r = replace_root_qdisc(va_, "nosuchqdisc");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().err, ENOENT);
    EXPECT_NE(r.error().message.find("'nosuchqdisc'"), std::string::npos) << r.error().message;
    EXPECT_EQ(root(va_), before);

    r = replace_root_qdisc(va_, "fq codel");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.error().is_user());

    // fq: either it works, or the message says what that means for tardy.
    r = replace_root_qdisc(va_, "fq");
    if (r.ok()) {
        EXPECT_EQ(root(va_).kind, "fq");
        EXPECT_TRUE(restore_root_qdisc(before).ok());
    } else {
        EXPECT_EQ(r.error().err, ENOENT);
        EXPECT_NE(r.error().message.find("sch_fq"), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("loss works without it"), std::string::npos) << r.error().message;
    }
    EXPECT_EQ(root(va_), before);
}

TEST_F(QdiscTest, MissingDeviceIsENODEV) {
    auto s = root_qdisc(999999);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().err, ENODEV);
    EXPECT_NE(s.error().message.find("999999"), std::string::npos) << s.error().message;

    QdiscSnapshot gone = root(va_);
    SH_OK("ip link del va");
    auto r = restore_root_qdisc(gone);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().err, ENODEV);
    EXPECT_NE(r.error().message.find("va"), std::string::npos) << r.error().message;
}

TEST_F(QdiscTest, RestoreRefusesAnIfindexThatNowNamesAnotherDevice) {
    QdiscSnapshot s = root(va_);
    s.ifname = "renamed0";
    auto r = restore_root_qdisc(s);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("renamed0"), std::string::npos) << r.error().message;
}

TEST_F(QdiscTest, KindAvailabilityAgreesWithTcAndLeavesThisNamespaceAlone) {
    const ino_t here = netns_inode();
    const QdiscSnapshot lo_before = root(static_cast<int>(if_nametoindex("lo")));
    const char* kinds[] = {"pfifo", "pfifo_fast", "htb", "tbf", "fq", "fq_codel", "netem", "sfq", "prio",
                           "nosuchqdisc"};
    std::map<std::string, bool> got;
    for (const char* k : kinds) {
        auto a = qdisc_kind_available(k);
        ASSERT_TRUE(a.ok()) << k << ": " << a.error().message;
        got[k] = *a;
    }
    EXPECT_EQ(netns_inode(), here);
    EXPECT_EQ(root(static_cast<int>(if_nametoindex("lo"))), lo_before);

    EXPECT_TRUE(got["pfifo"]);
    EXPECT_TRUE(got["htb"]);  // known, although it refuses to start without options
    EXPECT_TRUE(got["tbf"]);
    EXPECT_FALSE(got["nosuchqdisc"]);
    // What `tc qdisc add` says is the reference (tbf is left out: tc wants a rate for it).
    for (const char* k : kinds) {
        if (std::string(k) == "tbf") continue;
        Cmd c = shell(std::string("tc qdisc add dev lo root ") + k);
        shell("tc qdisc del dev lo root");
        EXPECT_EQ(got[k], c.status == 0) << k << ": tc says: " << c.out;
    }

    auto bad = qdisc_kind_available("../x");
    ASSERT_FALSE(bad.ok());
    EXPECT_TRUE(bad.error().is_user());
}

TEST_F(QdiscTest, EncodeDecodeRoundTripOfARealSnapshot) {
    SH_OK("tc qdisc add dev va root handle 1: htb default 10 r2q 7");
    SH_OK("tc class add dev va parent 1: classid 1:10 htb rate 1mbit");
    QdiscSnapshot s = root(va_);
    ASSERT_FALSE(s.options.empty());
    ASSERT_FALSE(s.not_restored.empty());
    std::string line = encode(s);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    auto d = decode(line);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(*d, s);
}

}  // namespace
}  // namespace tardy
