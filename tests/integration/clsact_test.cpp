// SPDX-License-Identifier: Apache-2.0
// tardy's clsact filters share the clsact qdisc with other tools: removing ours (detach, the
// journal's undo, `tardy stop`, `tardy kill`) must leave their filters, and the qdisc while it
// holds any, in place (issue 7, item 8). Foreign filters are made and checked with the real `tc`.
//
// ClsactTest.* run on the host: a named network namespace of their own (so the journal can find
// it by inode) holding a veth pair, deleted in TearDown even after a failure; namespaces that a
// killed earlier run left behind are deleted in SetUp. VmClsactLab.* run in the VM
// (tests/vm/vm.sh), whose 6.1 kernel has no TCX, so every loss injection goes through clsact.
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "../common/harness.hpp"
#include "sys/journal.hpp"
#include "sys/tc_filter.hpp"
#include "loader/tc_object.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr const char* kPrefix = "tdcl";  // namespaces tdcl<pid>x<n>, devices tdcl<pid>x<n>a/b

// A filter nobody else would make: u32 at pref 7 on egress whose key (the first word of the
// network header) no IPv4 or IPv6 packet has, so it never ends classification before ours.
// matchall when the kernel has no u32 (it would pass everything, which only the VM could notice).
CmdResult add_foreign_filter(const std::string& ns, const std::string& dev) {
    auto r = run_cmd({"tc", "-n", ns, "filter", "add", "dev", dev, "egress", "prio", "7", "protocol", "all", "u32",
                      "match", "u32", "0x0badf00d", "0xffffffff", "at", "0"});
    if (r && r->status == 0) return *r;
    auto m = run_cmd({"tc", "-n", ns, "filter", "add", "dev", dev, "egress", "prio", "7", "protocol", "all",
                      "matchall", "action", "pass"});
    if (m && m->status == 0) return *m;
    CmdResult out = r ? *r : CmdResult{};
    out.err += m ? m->err : std::string("cannot run tc");
    return out;
}

std::string tc_out(const std::vector<std::string>& args) {
    auto r = run_cmd(args);
    if (!r) return "(cannot run tc: " + r.error().message + ")";
    return r->out + r->err;
}

std::string egress_filters(const std::string& ns, const std::string& dev) {
    return tc_out({"tc", "-n", ns, "filter", "show", "dev", dev, "egress"});
}
std::string ingress_filters(const std::string& ns, const std::string& dev) {
    return tc_out({"tc", "-n", ns, "filter", "show", "dev", dev, "ingress"});
}
std::string qdiscs(const std::string& ns, const std::string& dev) {
    return tc_out({"tc", "-n", ns, "qdisc", "show", "dev", dev});
}

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }
// Ours: cls_bpf, handle 0x7a7d, pref 0xc000 (tc_object.cpp).
bool has_ours(const std::string& filters) { return has(filters, "pref 49152 bpf") || has(filters, "0x7a7d"); }
bool has_foreign(const std::string& filters) { return has(filters, "pref 7 u32") || has(filters, "pref 7 matchall"); }
bool has_clsact(const std::string& q) { return has(q, "qdisc clsact ffff:"); }

class ClsactTest : public ::testing::Test {
protected:
    void SetUp() override {
        TARDY_REQUIRE_ROOT();
        remove_stale_namespaces();
        static int seq = 0;
        ns_ = kPrefix + std::to_string(getpid()) + "x" + std::to_string(seq++);
        dev_ = ns_ + "a";
        ASSERT_LT(dev_.size(), static_cast<size_t>(IF_NAMESIZE));
        auto add = run_cmd({"ip", "netns", "add", ns_});
        ASSERT_TRUE(add && add->status == 0) << (add ? add->err : add.error().message);
        made_ns_ = true;
        auto veth = run_cmd({"ip", "-n", ns_, "link", "add", dev_, "type", "veth", "peer", "name", ns_ + "b"});
        ASSERT_TRUE(veth && veth->status == 0) << (veth ? veth->err : veth.error().message);
        auto up = run_cmd({"ip", "-n", ns_, "link", "set", dev_, "up"});
        ASSERT_TRUE(up && up->status == 0) << (up ? up->err : up.error().message);

        // The library acts in the calling thread's namespace: this thread enters ours.
        old_ns_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(old_ns_, 0);
        int fd = open(("/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0) << std::strerror(errno);
        int rc = setns(fd, CLONE_NEWNET);
        int e = errno;
        close(fd);
        ASSERT_EQ(rc, 0) << "setns: " << std::strerror(e);
        entered_ = true;
        ifindex_ = static_cast<int>(if_nametoindex(dev_.c_str()));
        ASSERT_GT(ifindex_, 0);

        auto obj = TcObject::load({"", 0});
        ASSERT_TRUE(obj) << obj.error().message;
        obj_ = std::move(*obj);
    }

    void TearDown() override {
        obj_.reset();
        // Carrying on in the wrong namespace would make later tests touch the wrong devices.
        if (entered_ && setns(old_ns_, CLONE_NEWNET) != 0) std::abort();
        if (old_ns_ >= 0) close(old_ns_);
        if (made_ns_) {
            auto del = run_cmd({"ip", "netns", "del", ns_});  // takes the veth pair with it
            EXPECT_TRUE(del && del->status == 0) << "ip netns del " << ns_;
        }
    }

    // Namespaces of ours whose test process is gone (killed half way through a test).
    static void remove_stale_namespaces() {
        std::error_code ec;
        for (const auto& d : std::filesystem::directory_iterator("/run/netns", ec)) {
            std::string n = d.path().filename().string();
            if (n.rfind(kPrefix, 0) != 0) continue;
            int pid = std::atoi(n.c_str() + std::strlen(kPrefix));
            if (pid > 0 && !process_alive(pid)) (void)run_cmd({"ip", "netns", "del", n});
        }
    }

    struct Attached {
        TcAttachment a;
        JournalEntry entry;  // what the agent would have journaled for it
    };
    std::optional<Attached> attach() {
        uint32_t handle = 0, prio = 0;
        bool created = false;
        auto a = TcAttachment::attach_egress(*obj_, ifindex_, TcAttachment::Mode::Clsact,
                                             [&](uint32_t h, uint32_t p, bool c) -> Result<void> {
                                                 handle = h, prio = p, created = c;
                                                 return ok();
                                             });
        EXPECT_TRUE(a) << a.error().message;
        if (!a) return std::nullopt;
        EXPECT_EQ(a->kind(), TcAttachment::Kind::Clsact);
        EXPECT_EQ(a->handle(), handle);
        EXPECT_EQ(a->priority(), prio);
        EXPECT_EQ(a->created_hook(), created);
        char data[64];
        std::snprintf(data, sizeof data, "%x:%x:%d", handle, prio, created ? 1 : 0);
        JournalEntry e{0, "clsact", current_netns_ino(), ifindex_, dev_, data};
        EXPECT_TRUE(has_ours(egress_filters(ns_, dev_))) << egress_filters(ns_, dev_);
        return Attached{std::move(*a), e};
    }

    void expect_foreign_kept() {
        std::string f = egress_filters(ns_, dev_);
        EXPECT_FALSE(has_ours(f)) << "our filter is still there:\n" << f;
        EXPECT_TRUE(has_foreign(f)) << "the foreign filter was destroyed:\n" << f;
        EXPECT_TRUE(has_clsact(qdiscs(ns_, dev_))) << "the clsact was destroyed:\n" << qdiscs(ns_, dev_);
        auto n = count_filters(ifindex_, kClsactEgress);
        ASSERT_TRUE(n) << n.error().message;
        EXPECT_EQ(*n, 1);
    }

    std::string ns_, dev_;
    int ifindex_ = 0;
    int old_ns_ = -1;
    bool made_ns_ = false, entered_ = false;
    std::unique_ptr<TcObject> obj_;
};

TEST_F(ClsactTest, DetachLeavesAForeignFilterAndTheClsact) {
    auto at = attach();
    ASSERT_TRUE(at);
    ASSERT_TRUE(at->a.created_hook()) << "a fresh veth had a clsact already";
    auto add = add_foreign_filter(ns_, dev_);
    ASSERT_EQ(add.status, 0) << add.err;
    auto busy = clsact_has_filters(ifindex_);
    ASSERT_TRUE(busy) << busy.error().message;
    EXPECT_TRUE(*busy);
    auto d = at->a.detach();
    ASSERT_TRUE(d) << d.error().message;
    expect_foreign_kept();
}

TEST_F(ClsactTest, AForeignIngressFilterAlsoKeepsTheClsact) {
    auto at = attach();
    ASSERT_TRUE(at);
    ASSERT_TRUE(at->a.created_hook());
    auto add = run_cmd({"tc", "-n", ns_, "filter", "add", "dev", dev_, "ingress", "prio", "7", "protocol", "all",
                        "u32", "match", "u32", "0x0badf00d", "0xffffffff", "at", "0"});
    ASSERT_TRUE(add && add->status == 0) << (add ? add->err : add.error().message);
    auto d = at->a.detach();
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_TRUE(has_clsact(qdiscs(ns_, dev_))) << qdiscs(ns_, dev_);
    EXPECT_TRUE(has(ingress_filters(ns_, dev_), "pref 7 u32")) << ingress_filters(ns_, dev_);
    auto in = count_filters(ifindex_, kClsactIngress);
    auto out = count_filters(ifindex_, kClsactEgress);
    ASSERT_TRUE(in && out);
    EXPECT_EQ(*in, 1);
    EXPECT_EQ(*out, 0);
}

TEST_F(ClsactTest, DetachRemovesAnEmptyClsactItCreated) {
    auto at = attach();
    ASSERT_TRUE(at);
    ASSERT_TRUE(at->a.created_hook());
    auto exists = clsact_exists(ifindex_);
    ASSERT_TRUE(exists) << exists.error().message;
    EXPECT_TRUE(*exists);
    auto d = at->a.detach();
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_FALSE(has_clsact(qdiscs(ns_, dev_))) << qdiscs(ns_, dev_);
    exists = clsact_exists(ifindex_);
    ASSERT_TRUE(exists) << exists.error().message;
    EXPECT_FALSE(*exists);
    // Again, as after a crash between the two steps: nothing left to do is not an error.
    auto again = at->a.detach();
    EXPECT_TRUE(again) << again.error().message;
}

TEST_F(ClsactTest, DetachKeepsAClsactItDidNotCreate) {
    auto q = run_cmd({"tc", "-n", ns_, "qdisc", "add", "dev", dev_, "clsact"});
    ASSERT_TRUE(q && q->status == 0) << (q ? q->err : q.error().message);
    auto at = attach();
    ASSERT_TRUE(at);
    EXPECT_FALSE(at->a.created_hook());
    auto d = at->a.detach();
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_FALSE(has_ours(egress_filters(ns_, dev_)));
    EXPECT_TRUE(has_clsact(qdiscs(ns_, dev_))) << qdiscs(ns_, dev_);
}

TEST_F(ClsactTest, JournalUndoLeavesAForeignFilterThenRemovesTheEmptyClsact) {
    auto at = attach();
    ASSERT_TRUE(at);
    ASSERT_TRUE(at->a.created_hook());
    auto add = add_foreign_filter(ns_, dev_);
    ASSERT_EQ(add.status, 0) << add.err;
    auto u = undo_journal_entry(at->entry);
    ASSERT_TRUE(u) << u.error().message;
    expect_foreign_kept();
    // Once the other tool is done, a later undo (the entry is redone until marked done)
    // removes the clsact tardy made.
    auto del = run_cmd({"tc", "-n", ns_, "filter", "del", "dev", dev_, "egress", "prio", "7"});
    ASSERT_TRUE(del && del->status == 0) << (del ? del->err : del.error().message);
    u = undo_journal_entry(at->entry);
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_FALSE(has_clsact(qdiscs(ns_, dev_))) << qdiscs(ns_, dev_);
}

TEST_F(ClsactTest, JournalUndoOfAGoneDeviceIsDone) {
    auto at = attach();
    ASSERT_TRUE(at);
    auto del = run_cmd({"ip", "-n", ns_, "link", "del", dev_});
    ASSERT_TRUE(del && del->status == 0) << (del ? del->err : del.error().message);
    auto u = undo_journal_entry(at->entry);
    EXPECT_TRUE(u) << u.error().message;
}

// In the VM: a loss injection attaches by clsact (6.1 has no TCX); another tool then adds a
// filter to that clsact; ending the injection must leave the filter and the clsact.
class VmClsactLab : public Lab {
protected:
    // The sandbox waits 1 s for its residents' `ip netns exec` to enter the namespace; under
    // emulation that can take longer, and an inject meanwhile sees the namespace change under it.
    void wait_for_residents() {
        struct stat want{};
        ASSERT_EQ(stat(lab_->netns_a().c_str(), &want), 0);
        bool all = false;
        for (int i = 0; i < 400 && !all; i++) {
            all = true;
            for (auto c : {kExp, kCtl}) {
                std::ifstream procs(lab_->cgroup(c) + "/cgroup.procs");
                for (std::string pid; procs >> pid;) {
                    struct stat st{};
                    all &= stat(("/proc/" + pid + "/ns/net").c_str(), &st) == 0 && st.st_ino == want.st_ino;
                }
            }
            if (!all) sleep_ms(25);
        }
        ASSERT_TRUE(all) << "the sandbox's residents did not enter " << lab_->netns_a() << " within 10 s";
    }
    // Injects 100% loss, checks it went through a clsact, adds the foreign filter.
    void inject_and_add_foreign() {
        ASSERT_NO_FATAL_FAILURE(wait_for_residents());
        inject({"--loss", "100%"}, "cls");
        ns_ = lab_->netns_a_name();
        dev_ = lab_->device_a();
        std::string f = egress_filters(ns_, dev_);
        ASSERT_TRUE(has_ours(f)) << "the loss did not attach by clsact (a kernel with TCX?): the VmClsact "
                                    "tests are for tests/vm/vm.sh\n"
                                 << f;
        auto add = add_foreign_filter(ns_, dev_);
        ASSERT_EQ(add.status, 0) << add.err;
    }
    // Waits for our filter to go (the agent detaches after replying), then checks.
    void expect_foreign_kept() {
        std::string f;
        for (int i = 0; i < 100 && has_ours(f = egress_filters(ns_, dev_)); i++) sleep_ms(50);
        EXPECT_FALSE(has_ours(f)) << "our filter is still there:\n" << f;
        EXPECT_TRUE(has_foreign(f)) << "the foreign filter was destroyed:\n" << f;
        std::string q = qdiscs(ns_, dev_);
        EXPECT_TRUE(has_clsact(q)) << "the clsact was destroyed:\n" << q;
    }
    // The foreign filter and the clsact are the test's own to remove.
    void remove_foreign() {
        (void)run_cmd({"tc", "-n", ns_, "filter", "del", "dev", dev_, "egress", "prio", "7"});
        (void)run_cmd({"tc", "-n", ns_, "qdisc", "del", "dev", dev_, "clsact"});
        EXPECT_FALSE(has_clsact(qdiscs(ns_, dev_))) << qdiscs(ns_, dev_);
    }
    std::string ns_, dev_;
};

TEST_F(VmClsactLab, StopLeavesAForeignFilterAndTheClsact) {
    ASSERT_NO_FATAL_FAILURE(inject_and_add_foreign());
    auto s = tardy({"stop", "cls"});
    EXPECT_EQ(s.status, 0) << s.err;
    expect_foreign_kept();
    remove_foreign();
}

TEST_F(VmClsactLab, KillLeavesAForeignFilterAndTheClsact) {
    ASSERT_NO_FATAL_FAILURE(inject_and_add_foreign());
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.err;
    std::printf("%s", k.out.c_str());
    expect_foreign_kept();
    remove_foreign();
}

}  // namespace
