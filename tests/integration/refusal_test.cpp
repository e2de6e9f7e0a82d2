// SPDX-License-Identifier: Apache-2.0
// Bad input and refused targets: a one-line error, exit code 2, and nothing applied.
#include <sys/stat.h>
#include <algorithm>
#include "../common/harness.hpp"
#include "loader/file_object.hpp"
#include "sys/qdisc.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

void expect_refused(const CmdResult& r, const std::string& needle) {
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST_F(Lab, BadTargetsAreRefusedAndNothingIsApplied) {
    expect_refused(tardy({"inject", "--cgroup", "no/such/cgroup", "--loss", "5%"}), "no such cgroup");
    expect_refused(tardy({"inject", "--cgroup", "999999999", "--loss", "5%"}), "no cgroup has this id");
    expect_refused(tardy({"inject", "--pid", "999999999", "--loss", "5%"}), "no such process");
    expect_refused(tardy({"inject", "--container", "deadbeef", "--loss", "5%"}), "no container");
    expect_refused(tardy({"inject", "--cgroup", "/", "--loss", "5%"}), "root cgroup");
    expect_refused(tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%", "--device", "nope0"}),
                   "--device nope0");
    expect_refused(tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%", "--netns", "nope"}),
                   "no such network namespace");
    ASSERT_EQ(mkdir((lab_->cgroup(kExp) + "/empty").c_str(), 0755), 0);
    expect_refused(tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp) + "/empty", "--loss", "5%"}), "--netns");
    EXPECT_FALSE(std::filesystem::exists(run_dir_ + "/agent.sock")) << "an agent was started for bad input";
    EXPECT_EQ(count_our_programs(), 0);
}

TEST_F(Lab, OwnCgroupIsRefusedWithoutForce) {
    auto r = tardy({"inject", "--pid", std::to_string(getpid()), "--loss", "5%", "--netns", lab_->netns_a()});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
}

TEST_F(Lab, EmptyCgroupWithNetnsWorks) {
    ASSERT_EQ(mkdir((lab_->cgroup(kExp) + "/later").c_str(), 0755), 0);
    auto r = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp) + "/later", "--loss", "100%", "--netns",
                    lab_->netns_a_name()});
    EXPECT_EQ(r.status, 0) << r.err;
    auto p = tardy({"__probe", "--cgroup", lab_->cgroup(kExp) + "/later", "--netns", lab_->netns_a(), "--to",
                    lab_->server(false), "--port", "7007", "--count", "5", "--interval-ms", "2", "--timeout-ms",
                    "150"});
    EXPECT_NE(p.out.find("\"answered\":0"), std::string::npos) << p.out;
}

// This host has no sch_fq: a delay would be stamped but never enforced, so it is refused.
TEST_F(Lab, DelayWithoutFqIsRefusedUpFront) {
    auto fq = qdisc_kind_available("fq");
    ASSERT_TRUE(fq);
    if (*fq) GTEST_SKIP() << "this kernel has sch_fq; the VM suite covers delay";
    expect_refused(tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--delay", "50ms"}), "fq");
    EXPECT_FALSE(std::filesystem::exists(run_dir_ + "/agent.sock")) << "an agent was started for a refused inject";
    EXPECT_EQ(count_our_programs(), 0);
}

}  // namespace

namespace {

// This host cannot load BPF LSM programs: file faults are refused up front (the VM suite
// covers them where they load).
TEST_F(Lab, FileFaultsWithoutTheBpfLsmAreRefusedUpFront) {
    if (FileObject::load("")) GTEST_SKIP() << "this kernel loads BPF LSM programs; VmFileLab covers file faults";
    auto r = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--fail", "open=EIO", "--path", "/tmp"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("BPF LSM"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(run_dir_ + "/agent.sock")) << "an agent was started for a refused inject";
}

}  // namespace
