// SPDX-License-Identifier: Apache-2.0
// The journal's undo_all(): what a new agent or `tardy kill` runs over what a dead agent left.
#include "journal_fixture.hpp"
#include "model/tardy_abi.hpp"

namespace tardy {
namespace {

// ---- undo_all ---------------------------------------------------------------------------------

// No process or name has network namespace inode 1 (nsfs inodes start at 0xEFFFFFF9 or so), so
// entries there are undone without touching anything.
constexpr uint64_t kGoneNetns = 1;

JournalEntry gone(std::string kind, int ifindex, std::string data) {
    return {0, std::move(kind), kGoneNetns, ifindex, "eth" + std::to_string(ifindex), std::move(data)};
}

size_t line_count(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

TEST_F(JournalTest, UndoAllOfNothing) {
    auto s = undo_all(j);
    EXPECT_TRUE(s.undone.empty());
    EXPECT_TRUE(s.problems.empty());
    EXPECT_EQ(s.set_aside, 0);
    EXPECT_EQ(s.set_aside_path, "");
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(exists(path + ".rejected"));
    // An empty journal, or one with only done entries, goes.
    std::ofstream(path).flush();
    EXPECT_TRUE(undo_all(j).undone.empty());
    EXPECT_FALSE(exists(path));
    auto id = j.record(clsact(1));
    ASSERT_TRUE(id && j.done(*id));
    EXPECT_TRUE(undo_all(j).undone.empty());
    EXPECT_FALSE(exists(path));
}

TEST_F(JournalTest, UndoAllUndoesEntriesOfGoneNamespaces) {
    ASSERT_TRUE(j.record(gone("clsact", 3, "ffff:1:1")));
    ASSERT_TRUE(j.record(gone("qdisc", 4, qdisc_line())));
    auto s = undo_all(j);
    EXPECT_TRUE(s.problems.empty()) << s.problems[0];
    ASSERT_EQ(s.undone.size(), 2u);
    EXPECT_NE(s.undone[0].find("clsact filter on eth3"), std::string::npos) << s.undone[0];
    EXPECT_NE(s.undone[1].find("root qdisc of eth4"), std::string::npos) << s.undone[1];
    EXPECT_EQ(s.set_aside, 0);
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(exists(path + ".rejected"));
}

// One entry that can never be undone used to make every kill fail; now it is moved out of the
// way (kept for a human in .rejected) and the rest is undone.
TEST_F(JournalTest, UndecodableEntriesAreSetAsideAndDoNotBlock) {
    auto good = j.record(gone("clsact", 1, "ffff:1:1"));
    auto bad_clsact = j.record(gone("clsact", 2, "not-hex"));
    auto bad_qdisc = j.record(gone("qdisc", 3, "qdisc-v1 ifindex=3"));
    ASSERT_TRUE(good && bad_clsact && bad_qdisc);
    auto s = undo_all(j);
    EXPECT_TRUE(s.problems.empty()) << s.problems[0];
    EXPECT_EQ(s.undone.size(), 1u);
    EXPECT_EQ(s.set_aside, 2);
    EXPECT_EQ(s.set_aside_path, path + ".rejected");
    EXPECT_FALSE(exists(path));
    std::string rejected = test::read_file(path + ".rejected");
    EXPECT_EQ(line_count(rejected), 2u);
    EXPECT_NE(rejected.find("+ " + std::to_string(*bad_clsact) + " clsact 1 2 eth2 not-hex\n"), std::string::npos)
        << rejected;
    EXPECT_NE(rejected.find("qdisc-v1 ifindex=3"), std::string::npos) << rejected;
    struct stat st{};
    ASSERT_EQ(stat((path + ".rejected").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    // Nothing is left for the next kill, and .rejected is not touched again.
    auto again = undo_all(j);
    EXPECT_TRUE(again.undone.empty());
    EXPECT_TRUE(again.problems.empty());
    EXPECT_EQ(again.set_aside, 0);
    EXPECT_EQ(again.set_aside_path, "");
    EXPECT_EQ(test::read_file(path + ".rejected"), rejected);
}

TEST_F(JournalTest, UnreadableLinesAreSetAsideAndCounted) {
    ASSERT_TRUE(j.record(gone("clsact", 1, "ffff:1:1")));
    {
        std::ofstream out(path, std::ios::app);
        out << "garbage\n"
            << "+ x clsact 1 1 eth0 ffff:1:1\n"
            << "\n"
            << "+ 8 clsact 1 1 eth0\n"
            << "+ 9 clsa";  // torn last line
    }
    auto s = undo_all(j);
    EXPECT_TRUE(s.problems.empty()) << s.problems[0];
    EXPECT_EQ(s.undone.size(), 1u);
    EXPECT_EQ(s.set_aside, 5);
    EXPECT_EQ(s.set_aside_path, path + ".rejected");
    EXPECT_EQ(test::read_file(path + ".rejected"),
              "garbage\n+ x clsact 1 1 eth0 ffff:1:1\n\n+ 8 clsact 1 1 eth0\n+ 9 clsa\n");
    EXPECT_FALSE(exists(path));
    EXPECT_EQ(undo_all(j).set_aside, 0);
}

TEST_F(JournalTest, UndoAllSummarizesManyEntries) {
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(j.record(gone(i % 3 ? "clsact" : "qdisc", i + 1, i % 3 ? "ffff:1:0" : qdisc_line())));
    for (int i = 0; i < 3; ++i) {  // each kind in its own words, not counted as filters
        ASSERT_TRUE(j.record(gone("ifb", 100 + i, "ifb")));
        ASSERT_TRUE(j.record(gone("txcsum", 200 + i, "1a00000,0")));
    }
    auto s = undo_all(j);
    EXPECT_TRUE(s.problems.empty());
    ASSERT_LE(s.undone.size(), 8u);
    std::string all;
    for (const auto& l : s.undone) all += l + "\n";
    EXPECT_NE(all.find("20 clsact filter(s)"), std::string::npos) << all;
    EXPECT_NE(all.find("10 root qdisc(s)"), std::string::npos) << all;
    EXPECT_NE(all.find("3 ifb device(s)"), std::string::npos) << all;
    EXPECT_NE(all.find("3 checksum offload(s)"), std::string::npos) << all;
    EXPECT_FALSE(exists(path));
}

TEST_F(JournalTest, DoneManyMarksManyInOneAppend) {
    std::vector<uint64_t> ids;
    for (int i = 0; i < 100; ++i) {
        auto id = j.record(clsact(i + 1));
        ASSERT_TRUE(id);
        ids.push_back(*id);
    }
    std::vector<uint64_t> half;
    for (size_t i = 0; i < ids.size(); i += 2) half.push_back(ids[i]);
    size_t before = line_count(test::read_file(path));
    ASSERT_TRUE(j.done_many(half));
    EXPECT_EQ(line_count(test::read_file(path)), before + half.size());
    auto open = j.open_entries();
    ASSERT_EQ(open.size(), ids.size() - half.size());
    for (size_t i = 0; i < open.size(); ++i) EXPECT_EQ(open[i].id, ids[2 * i + 1]);
    ASSERT_TRUE(j.done_many({}));
    EXPECT_EQ(line_count(test::read_file(path)), before + half.size());
    // Marking a missing journal's ids creates nothing worth undoing.
    Journal fresh(tmp / "other");
    ASSERT_TRUE(fresh.done_many({1, 2}));
    EXPECT_TRUE(fresh.open_entries().empty());
}

// record() keeps the highest id in memory; a new Journal, or a file changed behind its back,
// still continues past every id in the file.
TEST_F(JournalTest, RecordContinuesFromTheMaxIdAfterAReopen) {
    {
        std::ofstream out(path);
        out << "+ 41 clsact 1 1 eth0 ffff:1:1\n- 57\n+ 3 clsact 1 1 eth0 ffff:1:1\n";
    }
    Journal reopened(path);
    auto a = reopened.record(clsact(1));
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, 58u);
    auto b = reopened.record(clsact(2));
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, 59u);
    {
        std::ofstream out(path, std::ios::app);
        out << "+ 100 clsact 1 1 eth0 ffff:1:1\n";
    }
    auto c = reopened.record(clsact(3));
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, 101u);
    ASSERT_TRUE(reopened.done(500));
    auto d = reopened.record(clsact(4));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, 501u);
    // Another writer in between (the file is rewritten, then appended to).
    ASSERT_TRUE(j.compact());
    ASSERT_TRUE(j.record(clsact(5)));
    auto e = reopened.record(clsact(6));
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, 503u);
    auto open = reopened.open_entries();
    ASSERT_EQ(open.size(), 9u);  // 3 41 58 59 100 101 501 502 503
    for (size_t i = 1; i < open.size(); ++i) EXPECT_LT(open[i - 1].id, open[i].id);
}

// A regression guard against the old costs: an fsync per done entry, a /proc scan per entry, a
// stream per line. A million entries took minutes; now they take seconds (the bound is generous
// so a slow machine does not fail it; the time is printed).
TEST_F(JournalTest, MillionEntriesAreUndoneInSeconds) {
    constexpr int kEntries = 1'000'000;
    {
        std::string text;
        text.reserve(kEntries * 40);
        for (int i = 1; i <= kEntries; ++i) {
            text += "+ " + std::to_string(i) + " clsact 1 " + std::to_string(i % 1000 + 1) + " eth" +
                    std::to_string(i % 1000) + " ffff:1:1\n";
            if (i % 10 == 0) text += "- " + std::to_string(i) + "\n";  // some already done
        }
        std::ofstream(path) << text;
    }
    using clock = std::chrono::steady_clock;
    auto seconds = [](clock::time_point since) { return std::chrono::duration<double>(clock::now() - since).count(); };
    auto t0 = clock::now();
    int corrupt = -1;
    EXPECT_EQ(j.open_entries(&corrupt).size(), size_t(kEntries - kEntries / 10));
    EXPECT_EQ(corrupt, 0);
    double parse = seconds(t0);
    auto t1 = clock::now();
    auto s = undo_all(j);
    double undo = seconds(t1);
    std::printf("[ TIMING   ] open_entries of %d entries: %.2f s; undo_all: %.2f s\n", kEntries, parse, undo);
    EXPECT_LT(parse, 20.0);
    EXPECT_LT(undo, 20.0);
    EXPECT_TRUE(s.problems.empty());
    EXPECT_EQ(s.set_aside, 0);
    ASSERT_LE(s.undone.size(), 20u);
    ASSERT_EQ(s.undone.size(), 1u);
    EXPECT_NE(s.undone[0].find("900000 clsact filter(s)"), std::string::npos) << s.undone[0];
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(exists(path + ".tmp"));
}

// Entries in a live namespace are undone in it; one that fails stays open for the next try.
// Needs root for a throwaway namespace, held by a child process so /proc shows it.
TEST_F(JournalTest, UndoAllInALiveNamespaceKeepsFailuresOpen) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        char ok = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
        (void)!write(ready[1], &ok, 1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    struct Reaped {  // the child (and its namespace) goes with the test, also after a failed assertion
        pid_t pid;
        ~Reaped() {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    } reaped{child};
    char ok = 'n';
    (void)!read(ready[0], &ok, 1);
    close(ready[0]);
    struct stat st{};
    bool have_ns = ok == 'y' && stat(("/proc/" + std::to_string(child) + "/ns/net").c_str(), &st) == 0;
    if (have_ns) {
        uint64_t ino = st.st_ino;
        // Loopback is ifindex 1 in a new namespace; nothing else is there.
        ASSERT_TRUE(j.record({0, "clsact", ino, 1, "lo", "ffff:1:0"}));  // no such filter: nothing to do
        QdiscSnapshot q;
        q.ifindex = 1;
        q.ifname = "eth9";  // ifindex 1 is lo here: refused without touching it, left open
        q.kind = "noqueue";
        q.is_default = true;
        auto stuck = j.record({0, "qdisc", ino, 1, "eth9", encode(q)});
        q.ifindex = 999;  // no such device: nothing to restore
        ASSERT_TRUE(stuck && j.record({0, "qdisc", ino, 999, "eth9", encode(q)}));
        auto s = undo_all(j);
        ASSERT_EQ(s.problems.size(), 1u);
        EXPECT_NE(s.problems[0].find("journal entry " + std::to_string(*stuck)), std::string::npos) << s.problems[0];
        EXPECT_EQ(s.undone.size(), 2u);
        auto left = j.open_entries();
        ASSERT_EQ(left.size(), 1u);
        EXPECT_EQ(left[0].id, *stuck);
        EXPECT_EQ(undo_all(j).problems.size(), 1u);
        EXPECT_EQ(j.open_entries().size(), 1u);
    }
    if (!have_ns) GTEST_SKIP() << "cannot make a network namespace (not root?)";
}

// Ingress delay's entries: the ifb is deleted when it is ours (kind ifb, our name, our
// index), a device of someone else's at that index is left alone, and the ingress filter's
// entry undoes like the egress one's. In a namespace made here, with `ip`.
TEST_F(JournalTest, UndoDeletesOurIfbAndNothingElse) {
    std::string ns = "tardy-ut-ifb-" + std::to_string(getpid());
    if (std::system(("ip netns add " + ns + " 2>/dev/null").c_str()) != 0) GTEST_SKIP() << "cannot make a netns";
    struct Gone {  // the namespace goes with the test, also when an assertion ends it early
        std::string ns;
        ~Gone() { (void)std::system(("ip netns del " + ns + " 2>/dev/null").c_str()); }
    } gone{ns};
    auto in_ns = [&](const std::string& cmd) { return std::system(("ip netns exec " + ns + " " + cmd).c_str()); };
    struct stat st{};
    ASSERT_EQ(stat(("/run/netns/" + ns).c_str(), &st), 0);
    uint64_t ino = st.st_ino;
    bool have_ifb = in_ns(std::string("ip link add ") + TARDY_IFB_NAME + " index " + std::to_string(TARDY_IFB_IFINDEX) +
                          " type ifb 2>/dev/null") == 0;
    if (have_ifb) {
        ASSERT_TRUE(j.record({0, "ifb", ino, TARDY_IFB_IFINDEX, TARDY_IFB_NAME, "ifb"}));
        ASSERT_TRUE(j.record({0, "clsact-in", ino, 1, "lo", "7a7d:c000:0"}));  // no such filter: nothing to do
        auto s = undo_all(j);
        for (const auto& p : s.problems) ADD_FAILURE() << p;
        ASSERT_EQ(s.undone.size(), 2u);
        EXPECT_EQ(s.undone[0], "deleted the ifb device tardy-ifb");
        EXPECT_NE(in_ns(std::string("ip link show ") + TARDY_IFB_NAME + " >/dev/null 2>&1"), 0) << "the ifb survived the undo";
        EXPECT_TRUE(j.open_entries().empty());
        // Someone else's device at that index: not ours to delete.
        ASSERT_EQ(in_ns("ip link add other index " + std::to_string(TARDY_IFB_IFINDEX) + " type ifb"), 0);
        ASSERT_TRUE(j.record({0, "ifb", ino, TARDY_IFB_IFINDEX, TARDY_IFB_NAME, "ifb"}));
        s = undo_all(j);
        EXPECT_TRUE(s.problems.empty());
        EXPECT_EQ(in_ns("ip link show other >/dev/null"), 0) << "a device that is not tardy's was deleted";
    }
    if (!have_ifb) GTEST_SKIP() << "no ifb in this kernel";
}

}  // namespace
}  // namespace tardy
