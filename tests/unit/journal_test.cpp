// SPDX-License-Identifier: Apache-2.0
// The journal: records, closes, compacts, survives corrupt and truncated files.
#include "journal_fixture.hpp"

namespace tardy {
namespace {

TEST_F(JournalTest, EmptyWhenMissing) {
    int corrupt = -1;
    EXPECT_TRUE(j.open_entries(&corrupt).empty());
    EXPECT_EQ(corrupt, 0);
    EXPECT_EQ(j.path(), path);
}

TEST_F(JournalTest, RecordThenOpen) {
    auto id = j.record(clsact(3, "veth0"));
    ASSERT_TRUE(id) << id.error().message;
    EXPECT_EQ(*id, 1u);
    int corrupt = -1;
    auto open = j.open_entries(&corrupt);
    EXPECT_EQ(corrupt, 0);
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].id, 1u);
    EXPECT_EQ(open[0].kind, "clsact");
    EXPECT_EQ(open[0].netns_ino, 4026531840ULL);
    EXPECT_EQ(open[0].ifindex, 3);
    EXPECT_EQ(open[0].ifname, "veth0");
    EXPECT_EQ(open[0].data, "ffff:1:1");
}

TEST_F(JournalTest, FileIsPrivate) {
    ASSERT_TRUE(j.record(clsact(1)));
    struct stat st{};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(JournalTest, IdsIncrease) {
    std::vector<uint64_t> ids;
    for (int i = 0; i < 5; ++i) {
        auto id = j.record(clsact(i + 1));
        ASSERT_TRUE(id);
        ids.push_back(*id);
    }
    for (size_t i = 1; i < ids.size(); ++i) EXPECT_GT(ids[i], ids[i - 1]);
    // Done entries still count: an id is not handed out twice while its lines are in the file.
    ASSERT_TRUE(j.done(ids.back()));
    auto next = j.record(clsact(9));
    ASSERT_TRUE(next);
    EXPECT_GT(*next, ids.back());
    // A second Journal on the same file (another process) continues the sequence.
    Journal other(path);
    auto o = other.record(clsact(10));
    ASSERT_TRUE(o);
    EXPECT_GT(*o, *next);
}

TEST_F(JournalTest, DoneCloses) {
    auto a = j.record(clsact(1));
    auto b = j.record(clsact(2));
    auto c = j.record(clsact(3));
    ASSERT_TRUE(a && b && c);
    ASSERT_TRUE(j.done(*b));
    auto open = j.open_entries();
    ASSERT_EQ(open.size(), 2u);
    EXPECT_EQ(open[0].id, *a);
    EXPECT_EQ(open[1].id, *c);
    ASSERT_TRUE(j.done(*a));
    ASSERT_TRUE(j.done(*c));
    EXPECT_TRUE(j.open_entries().empty());
    // Done twice, or for an id never recorded: harmless.
    ASSERT_TRUE(j.done(*c));
    ASSERT_TRUE(j.done(12345));
    int corrupt = -1;
    EXPECT_TRUE(j.open_entries(&corrupt).empty());
    EXPECT_EQ(corrupt, 0);
}

TEST_F(JournalTest, QdiscDataWithSpacesSurvives) {
    std::string line = qdisc_line();
    ASSERT_NE(line.find(' '), std::string::npos);
    auto id = j.record({0, "qdisc", 77, 5, "eth0", line});
    ASSERT_TRUE(id) << id.error().message;
    auto open = j.open_entries();
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].kind, "qdisc");
    EXPECT_EQ(open[0].data, line);
    auto snap = decode(open[0].data);
    ASSERT_TRUE(snap) << snap.error().message;
    EXPECT_EQ(snap->kind, "htb");
    EXPECT_EQ(snap->not_restored, "2 classes, 1 filter");
    EXPECT_EQ(encode(*snap), line);

    // And through compact.
    ASSERT_TRUE(j.record(clsact(1)));
    ASSERT_TRUE(j.compact());
    auto after = j.open_entries();
    ASSERT_EQ(after.size(), 2u);
    EXPECT_EQ(after[0].data, line);
}

TEST_F(JournalTest, CorruptLinesAreCountedAndSkipped) {
    ASSERT_TRUE(j.record(clsact(1)));
    {
        std::ofstream out(path, std::ios::app);
        out << "garbage\n"                                     // no id
            << "+ x clsact 1 1 eth0 ffff:1:1\n"                // id not a number
            << "+ 7 bogus 1 1 eth0 data\n"                     // unknown kind
            << "+ 8 clsact 1 1 eth0\n"                         // no data
            << "+ 9 clsact 1 1 eth0 -\n"                       // placeholder data
            << "+ 10 clsact notanumber 1 eth0 ffff:1:1\n"      // bad netns
            << "* 11 clsact 1 1 eth0 ffff:1:1\n"               // unknown op
            << "+ 12 qdisc 1 2 eth1 qdisc-v1 ifindex=2\n";     // valid line (data is opaque here)
    }
    ASSERT_TRUE(j.record(clsact(2)));
    int corrupt = -1;
    auto open = j.open_entries(&corrupt);
    EXPECT_EQ(corrupt, 7);
    ASSERT_EQ(open.size(), 3u);
    EXPECT_EQ(open[0].id, 1u);
    EXPECT_EQ(open[1].id, 12u);
    EXPECT_EQ(open[1].data, "qdisc-v1 ifindex=2");
    EXPECT_EQ(open[2].ifindex, 2);
    EXPECT_GT(open[2].id, 12u);  // ids go past every number in the file
}

TEST_F(JournalTest, TruncatedLastLine) {
    ASSERT_TRUE(j.record(clsact(1)));
    {
        std::ofstream out(path, std::ios::app);
        out << "+ 2 clsa";  // the writer died mid-line
    }
    int corrupt = -1;
    auto open = j.open_entries(&corrupt);
    EXPECT_EQ(corrupt, 1);
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].id, 1u);
}

// After a torn write (crash or ENOSPC mid-line) the next record must still be readable: it
// has to start on a line of its own, not be glued to the torn one.
TEST_F(JournalTest, RecordAfterATruncatedLineIsNotLost) {
    ASSERT_TRUE(j.record(clsact(1)));
    {
        std::ofstream out(path, std::ios::app);
        out << "+ 2 clsa";
    }
    auto id = j.record({0, "qdisc", 9, 4, "eth1", "qdisc-v1 data"});
    ASSERT_TRUE(id) << id.error().message;
    auto open = j.open_entries();
    bool found = false;
    for (const auto& e : open) found |= e.id == *id && e.kind == "qdisc" && e.data == "qdisc-v1 data";
    EXPECT_TRUE(found) << "entry " << *id << " lost; journal:\n" << test::read_file(path);
}

TEST_F(JournalTest, EmptyIfnameIsWrittenAsDash) {
    ASSERT_TRUE(j.record(clsact(1, "")));
    auto open = j.open_entries();
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].ifname, "-");
}

TEST_F(JournalTest, CompactKeepsOnlyOpenEntries) {
    auto a = j.record(clsact(1));
    auto b = j.record({0, "qdisc", 1, 2, "eth1", qdisc_line()});
    auto c = j.record(clsact(3));
    ASSERT_TRUE(a && b && c);
    ASSERT_TRUE(j.done(*a));
    {
        std::ofstream out(path, std::ios::app);
        out << "junk line\n";
    }
    auto before = j.open_entries();
    ASSERT_TRUE(j.compact());
    int corrupt = -1;
    auto after = j.open_entries(&corrupt);
    EXPECT_EQ(corrupt, 0);
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
        EXPECT_EQ(after[i].id, before[i].id);
        EXPECT_EQ(after[i].kind, before[i].kind);
        EXPECT_EQ(after[i].netns_ino, before[i].netns_ino);
        EXPECT_EQ(after[i].ifindex, before[i].ifindex);
        EXPECT_EQ(after[i].ifname, before[i].ifname);
        EXPECT_EQ(after[i].data, before[i].data);
    }
    // Exactly one line per open entry, no "-" lines.
    std::string text = test::read_file(path);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
    EXPECT_EQ(text.find("\n-"), std::string::npos);
    EXPECT_FALSE(exists(path + ".tmp"));
    // Ids keep increasing after a compaction that kept entries.
    auto d = j.record(clsact(4));
    ASSERT_TRUE(d);
    EXPECT_GT(*d, *c);
}

TEST_F(JournalTest, CompactRemovesTheFileWhenNothingIsOpen) {
    auto a = j.record(clsact(1));
    ASSERT_TRUE(a);
    ASSERT_TRUE(j.done(*a));
    ASSERT_TRUE(exists(path));
    ASSERT_TRUE(j.compact());
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(exists(path + ".tmp"));
    // Compacting a missing journal is fine too.
    ASSERT_TRUE(j.compact());
    EXPECT_FALSE(exists(path));
}

TEST_F(JournalTest, RecordFailsInAMissingDirectory) {
    Journal bad(tmp / "no/such/dir/journal");
    auto r = bad.record(clsact(1));
    ASSERT_FALSE(r);
    EXPECT_FALSE(r.error().is_user());
    EXPECT_EQ(r.error().err, ENOENT);
    EXPECT_NE(r.error().message.find("journal"), std::string::npos);
}

}  // namespace
}  // namespace tardy
