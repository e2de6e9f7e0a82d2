// SPDX-License-Identifier: Apache-2.0
// `tardy list`'s table: columns stay aligned whatever the length of a cgroup path or a name;
// a long path is cut from the left, and `list --json` keeps it whole.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli/list.hpp"

namespace tardy {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

wire::InjectionInfo injection(const std::string& name, const std::string& cgroup) {
    wire::InjectionInfo i;
    i.name = name;
    i.cgroup = cgroup;
    i.left_ns = 90'000'000'000ULL;
    i.devices = {"eth0"};
    i.faults = "loss 5%";
    i.counters.matched = 12;
    return i;
}

TEST(FitLeft, CutsFromTheLeft) {
    EXPECT_EQ(fit_left("/shop.slice/checkout.service", 28), "/shop.slice/checkout.service");
    EXPECT_EQ(fit_left("/abcdefghij", 8), "...fghij");
    EXPECT_EQ(fit_left("/abcdefghij", 8).size(), 8u);
    EXPECT_EQ(fit_left("", 8), "");
    EXPECT_EQ(fit_left("abcdef", 3), "def");
}

TEST(ListTable, LongCgroupPathsStayAligned) {
    std::string pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b1c2d3e_4f50_6172_8394_"
                      "a5b6c7d8e9f0.slice/cri-containerd-" + std::string(64, 'a') + ".scope";
    auto table = list_table({injection("short", "/a.service"), injection("pod", pod),
                             injection("exactly28", "/shop.slice/checkout.service")});
    auto lines = lines_of(table);
    ASSERT_EQ(lines.size(), 4u) << table;
    size_t left_col = lines[0].find("LEFT"), faults_col = lines[0].find("FAULTS");
    ASSERT_NE(left_col, std::string::npos);
    for (size_t n = 1; n < lines.size(); ++n) {
        EXPECT_EQ(lines[n].find("1m30s"), left_col) << table;
        EXPECT_EQ(lines[n].find("loss 5%"), faults_col) << table;
    }
    // The end of the path (the container) is what is kept.
    EXPECT_NE(lines[2].find(" ..." + std::string(19, 'a') + ".scope "), std::string::npos) << table;
    EXPECT_EQ(lines[2].find("kubepods.slice"), std::string::npos) << table;
    EXPECT_NE(lines[3].find("/shop.slice/checkout.service "), std::string::npos) << table;
}

// A name is what `tardy stop` takes: never cut; the column widens instead.
TEST(ListTable, LongNamesWidenTheColumn) {
    std::string name(64, 'n');
    auto table = list_table({injection("a", "/a.service"), injection(name, "/b.service")});
    auto lines = lines_of(table);
    ASSERT_EQ(lines.size(), 3u) << table;
    EXPECT_NE(lines[2].find(name + " "), std::string::npos) << table;
    size_t cg = lines[0].find("CGROUP");
    EXPECT_EQ(lines[1].find("/a.service"), cg) << table;
    EXPECT_EQ(lines[2].find("/b.service"), cg) << table;
}

// The table as the README shows it for short paths and names.
TEST(ListTable, ShortEntriesKeepTheDocumentedLayout) {
    auto lines = lines_of(list_table({injection("flaky-checkout", "/shop.slice/checkout.service")}));
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], "NAME             CGROUP                       LEFT     DEVICES     MATCHED  DELAYED  DROPPED      "
                        "BYTES   CALLS  FAILED STALLED  FAULTS");
    EXPECT_TRUE(lines[1].starts_with("flaky-checkout   /shop.slice/checkout.service 1m30s    eth0             12        0"))
        << lines[1];
}

// The faults without a column of their own say what they did, when they did something.
TEST(ListTable, CountersWithoutAColumnFollowTheirFaults) {
    auto i = injection("bad-wire", "/shop-demo");
    i.faults = "corrupt 25%, duplicate 1%";
    i.counters.corrupted = 45;
    i.counters.duplicated = 2;
    auto lines = lines_of(list_table({i, injection("quiet", "/b")}));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_TRUE(lines[1].ends_with("  corrupt 25%, duplicate 1% (2 duplicated, 45 corrupted)")) << lines[1];
    EXPECT_TRUE(lines[2].ends_with("  loss 5%")) << lines[2];
}

}  // namespace
}  // namespace tardy
