// SPDX-License-Identifier: Apache-2.0
// --pod UID [--container ID] and --pid PID,PID... over fake cgroup trees: kubelet's systemd
// and cgroupfs drivers, each QoS class, cgroup v2.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "agent/inject.hpp"
#include "sys/cgroup.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

using test::FailsWithUserError;
using test::TempDir;

const std::string kUid = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const std::string kUidUnderscores = "0b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0";

using test::cid;

// The pod's cgroup directory (below the mount) for a kubelet cgroup driver and QoS class.
std::string pod_dir(const std::string& driver, const std::string& qos, const std::string& uid) {
    std::string u = uid;
    if (driver == "cgroupfs") return qos == "guaranteed" ? "kubepods/pod" + u : "kubepods/" + qos + "/pod" + u;
    for (char& c : u)
        if (c == '-') c = '_';
    if (qos == "guaranteed") return "kubepods.slice/kubepods-pod" + u + ".slice";
    return "kubepods.slice/kubepods-" + qos + ".slice/kubepods-" + qos + "-pod" + u + ".slice";
}

class PodTest : public ::testing::Test {
protected:
    TempDir tmp;
    std::string mnt = tmp.mkdirs("cg");
    std::string proc = tmp.mkdirs("proc");
    CgroupFs fs{mnt, proc};
};

class PodLayout : public PodTest, public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {};

TEST_P(PodLayout, FindsThePodAndOneContainer) {
    auto [driver, qos] = GetParam();
    const bool systemd = driver == "systemd";
    std::string dir = pod_dir(driver, qos, kUid);
    std::string app = cid("a11", '1'), side = cid("a12", '2'), pause = cid("9a5", '3');
    auto ctr = [&](const std::string& id) { return dir + "/" + (systemd ? "cri-containerd-" + id + ".scope" : id); };
    for (const auto& id : {app, side, pause}) tmp.mkdirs("cg/" + ctr(id));
    // A sibling pod of another QoS class and another UID.
    tmp.mkdirs("cg/" + pod_dir(driver, qos == "besteffort" ? "burstable" : "besteffort",
                               "ffffffff-4f50-6172-8394-a5b6c7d8e9f0") + "/" + cid("a13"));

    for (const std::string& uid : {kUid, kUidUnderscores, std::string("0B1C2D3E"), std::string("0b1c")}) {
        auto pod = fs.by_pod(uid);
        ASSERT_TRUE(pod) << uid << ": " << pod.error().message;
        EXPECT_EQ(pod->rel, "/" + dir) << uid;
    }
    auto one = fs.by_pod(kUid, "a11");
    ASSERT_TRUE(one) << one.error().message;
    EXPECT_EQ(one->rel, "/" + ctr(app));
    auto full = fs.by_pod(kUid, "containerd://" + side);
    ASSERT_TRUE(full) << full.error().message;
    EXPECT_EQ(full->rel, "/" + ctr(side));
    // Through the target the CLI builds.
    auto r = fs.resolve({TargetRef::Kind::Pod, kUid, "a12"});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->rel, "/" + ctr(side));
    EXPECT_TRUE(FailsWithUserError(fs.by_pod(kUid, "a1"), {"ambiguous", app.substr(0, 12), side.substr(0, 12)}));
    EXPECT_TRUE(FailsWithUserError(fs.by_pod(kUid, "a13"), {"no container of this pod", "it has"}));
}

INSTANTIATE_TEST_SUITE_P(KubeletDrivers, PodLayout,
                         ::testing::Combine(::testing::Values("systemd", "cgroupfs"),
                                            ::testing::Values("guaranteed", "burstable", "besteffort")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

// kubelet --cgroup-root (e.g. kind's /kubelet) prefixes every name with its own.
TEST_F(PodTest, UnderAKubeletCgroupRoot) {
    std::string dir = "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
                      "kubelet-kubepods-burstable-pod" + kUidUnderscores + ".slice";
    tmp.mkdirs("cg/" + dir);
    auto pod = fs.by_pod(kUid);
    ASSERT_TRUE(pod) << pod.error().message;
    EXPECT_EQ(pod->rel, "/" + dir);
}

// Static pods have a 32-digit hash for a UID.
TEST_F(PodTest, StaticPodUid) {
    std::string uid = "c2a5d1a9e1b4e6b7a8e0c45f3d8d8c10";
    tmp.mkdirs("cg/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid + ".slice");
    auto pod = fs.by_pod("c2a5d1");
    ASSERT_TRUE(pod) << pod.error().message;
    EXPECT_EQ(pod->rel, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid + ".slice");
}

TEST_F(PodTest, Errors) {
    tmp.mkdirs("cg/" + pod_dir("systemd", "burstable", kUid) + "/cri-containerd-" + cid("a11") + ".scope");
    tmp.mkdirs("cg/" + pod_dir("systemd", "besteffort", "0b1c9999-4f50-6172-8394-a5b6c7d8e9f0"));
    EXPECT_TRUE(FailsWithUserError(fs.by_pod("0b1c"), {"--pod 0b1c", "ambiguous", "2 pods"}));
    EXPECT_TRUE(FailsWithUserError(fs.by_pod("deadbeef"), {"--pod deadbeef", "no pod", "kubectl"}));
    for (const char* bad : {"", "my-pod", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-00", "0b1c/2d"})
        EXPECT_TRUE(FailsWithUserError(fs.by_pod(bad), {"--pod", "UID"})) << "'" << bad << "'";
    // A container name is not in the cgroup tree: one line saying so and how to get the id.
    EXPECT_TRUE(FailsWithUserError(fs.by_pod(kUid, "nginx"), {"--container nginx", "by id, not by name", "containerID"}));
}

TEST(PodUidOf, Names) {
    EXPECT_EQ(pod_uid_of("kubepods-burstable-pod" + kUidUnderscores + ".slice"), kUid);
    EXPECT_EQ(pod_uid_of("kubepods-besteffort-pod" + kUidUnderscores + ".slice"), kUid);
    EXPECT_EQ(pod_uid_of("kubepods-pod" + kUidUnderscores + ".slice"), kUid);
    EXPECT_EQ(pod_uid_of("pod" + kUid), kUid);
    for (const std::string& n : {std::string("kubepods.slice"), std::string("kubepods-burstable.slice"),
                                 std::string("kubepods"), std::string("burstable"), std::string("pod"),
                                 "kubepods-burstable-pod" + kUid + ".slice",  // systemd never leaves a dash
                                 "system-pod" + kUidUnderscores + ".slice", "pod" + kUidUnderscores,
                                 "pod" + kUid + ".slice", "kubepods-pod" + kUidUnderscores.substr(1) + ".slice"})
        EXPECT_EQ(pod_uid_of(n), "") << n;
}

// ---- several PIDs ------------------------------------------------------------------------------

TEST(ParsePids, ListsAndRefusals) {
    auto one = parse_pids("42");
    ASSERT_TRUE(one) << one.error().message;
    EXPECT_EQ(*one, std::vector<pid_t>{42});
    auto many = parse_pids("42,43,42,7");
    ASSERT_TRUE(many) << many.error().message;
    EXPECT_EQ(*many, (std::vector<pid_t>{42, 43, 7}));
    for (const char* bad : {"", ",", "42,", ",42", "42,,43", "42,x", "0", "-1", "42 43", "4.2"})
        EXPECT_TRUE(FailsWithUserError(parse_pids(bad), {"--pid", "not a process id"})) << "'" << bad << "'";
}

TEST_F(PodTest, SeveralPidsOfOneCgroup) {
    tmp.mkdirs("cg/app.slice/web.service");
    tmp.write("proc/10/cgroup", "0::/app.slice/web.service\n");
    tmp.write("proc/11/cgroup", "0::/app.slice/web.service\n");
    auto cg = fs.resolve({TargetRef::Kind::Pid, "10,11", ""});
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->rel, "/app.slice/web.service");
}

TEST_F(PodTest, PidsOfSeveralCgroupsAreNamed) {
    tmp.mkdirs("cg/a.service");
    tmp.mkdirs("cg/b.service");
    tmp.write("proc/10/cgroup", "0::/a.service\n");
    tmp.write("proc/11/cgroup", "0::/b.service\n");
    tmp.write("proc/12/cgroup", "0::/b.service\n");
    EXPECT_TRUE(FailsWithUserError(fs.resolve({TargetRef::Kind::Pid, "10,11,12", ""}),
                                   {"--pid 10,11,12", "2 cgroups", "10 in /a.service", "11,12 in /b.service"}));
    EXPECT_TRUE(FailsWithUserError(fs.resolve({TargetRef::Kind::Pid, "10,99", ""}), {"--pid 99", "no such process"}));
}

// A process in the root cgroup: refused with the commands that move it into one of its own.
TEST_F(PodTest, PidsInTheRootCgroupGetTheCommandsThatMoveThem) {
    tmp.write("proc/10/cgroup", "0::/\n");
    tmp.write("proc/11/cgroup", "0::/\n");
    InjectRequest r;
    r.sock.faults.push_back({});  // a socket fault: no network namespace is looked up
    r.target = {TargetRef::Kind::Pid, "10", ""};
    EXPECT_TRUE(FailsWithUserError(prepare_inject(r, fs), {"refusing --pid 10", "root cgroup", "mkdir " + mnt + "/tardy-target",
                                                           "echo 10 > " + mnt + "/tardy-target/cgroup.procs",
                                                           "--cgroup tardy-target", "systemd-run --scope", "--force"}));
    r.target = {TargetRef::Kind::Pid, "10,11", ""};
    EXPECT_TRUE(FailsWithUserError(prepare_inject(r, fs), {"refusing --pid 10,11", "they are", "for p in 10 11; do echo $p > "}));
    r.target = {TargetRef::Kind::Cgroup, "/", ""};
    EXPECT_TRUE(FailsWithUserError(prepare_inject(r, fs), {"refusing the root cgroup", "--force"}));
}

}  // namespace
}  // namespace tardy
