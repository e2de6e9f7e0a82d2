// SPDX-License-Identifier: Apache-2.0
// --container over the cgroup trees real runtimes make (fake trees in a scratch directory):
// Docker, podman (runc and crun, systemd and cgroupfs managers), containerd (CRI and nerdctl)
// and CRI-O, with the monitor cgroups (conmon) that are not containers.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "sys/cgroup.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

using test::FailsWithUserError;
using test::TempDir;

using test::cid;

class Layout : public ::testing::Test {
protected:
    // Makes `rel` below the mount and expects --container `want` to resolve to it.
    void expect(const std::string& want, const std::string& rel) {
        auto cg = fs.by_container(want);
        ASSERT_TRUE(cg) << want << ": " << cg.error().message;
        EXPECT_EQ(cg->rel, rel) << want;
    }
    TempDir tmp;
    std::string mnt = tmp.mkdirs("cg");
    std::string proc = tmp.mkdirs("proc");
    CgroupFs fs{mnt, proc};
};

TEST_F(Layout, DockerSystemd) {
    std::string id = cid("d0c4e2", '1');
    tmp.mkdirs("cg/system.slice/docker-" + id + ".scope");
    tmp.mkdirs("cg/system.slice/docker.service");
    expect("d0c4e2", "/system.slice/docker-" + id + ".scope");
    expect(id, "/system.slice/docker-" + id + ".scope");
    expect("docker://" + id, "/system.slice/docker-" + id + ".scope");  // kubectl's containerID
}

TEST_F(Layout, DockerCgroupfs) {
    std::string id = cid("d0c4e2", '2');
    tmp.mkdirs("cg/docker/" + id);
    expect("d0c4", "/docker/" + id);
}

// podman --cgroup-manager systemd with runc: the container's scope next to conmon's.
TEST_F(Layout, PodmanSystemdRunc) {
    std::string id = cid("90d0a1", '3');
    tmp.mkdirs("cg/machine.slice/libpod-" + id + ".scope");
    tmp.mkdirs("cg/machine.slice/libpod-conmon-" + id + ".scope");
    expect("90d0", "/machine.slice/libpod-" + id + ".scope");
}

// crun on cgroup v2 puts the payload into a "container" child of the scope (its
// run.oci.systemd.subgroup default): the scope is the target, and it covers the child.
TEST_F(Layout, PodmanSystemdCrunNestedContainer) {
    std::string id = cid("90d0a1", '4');
    tmp.write("cg/machine.slice/libpod-" + id + ".scope/container/cgroup.procs", "501\n502\n");
    tmp.write("cg/machine.slice/libpod-" + id + ".scope/cgroup.procs", "");
    tmp.write("cg/machine.slice/libpod-conmon-" + id + ".scope/cgroup.procs", "500\n");
    auto cg = fs.by_container("90d0");
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->rel, "/machine.slice/libpod-" + id + ".scope");
    auto pids = fs.procs(*cg);
    std::sort(pids.begin(), pids.end());
    EXPECT_EQ(pids, (std::vector<pid_t>{501, 502}));  // the payload, not conmon
}

// A podman pod under systemd: a slice named after the pod id holds the containers' scopes.
TEST_F(Layout, PodmanPodSystemd) {
    std::string pod = cid("70d", '5'), id = cid("90d0a1", '5');
    tmp.mkdirs("cg/machine.slice/machine-libpod_pod_" + pod + ".slice/libpod-" + id + ".scope");
    tmp.mkdirs("cg/machine.slice/machine-libpod_pod_" + pod + ".slice/libpod-conmon-" + id + ".scope");
    expect("90d0a1", "/machine.slice/machine-libpod_pod_" + pod + ".slice/libpod-" + id + ".scope");
    EXPECT_TRUE(FailsWithUserError(fs.by_container("70d"), {"no container"}));
}

// podman --cgroup-manager cgroupfs: libpod_parent/libpod-<id> (no .scope), conmon in
// libpod_parent/conmon (libpod-conmon-<id> in older podman).
TEST_F(Layout, PodmanCgroupfs) {
    std::string id = cid("90d0a1", '6');
    tmp.mkdirs("cg/libpod_parent/libpod-" + id);
    tmp.mkdirs("cg/libpod_parent/conmon");
    tmp.mkdirs("cg/libpod_parent/libpod-conmon-" + cid("0ff", '6'));
    expect("90d0", "/libpod_parent/libpod-" + id);
    EXPECT_TRUE(FailsWithUserError(fs.by_container("0ff"), {"no container"}));
}

TEST_F(Layout, ContainerdCriSystemd) {
    std::string id = cid("c7d", '7');
    std::string pod = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0.slice";
    tmp.mkdirs("cg/" + pod + "/cri-containerd-" + id + ".scope");
    expect("containerd://c7d7", "/" + pod + "/cri-containerd-" + id + ".scope");
}

TEST_F(Layout, ContainerdCriCgroupfs) {
    std::string id = cid("c7d", '8');
    tmp.mkdirs("cg/kubepods/besteffort/pod0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0/" + id);
    expect("c7d8", "/kubepods/besteffort/pod0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0/" + id);
}

TEST_F(Layout, NerdctlSystemdAndCgroupfs) {
    std::string a = cid("ae", '9'), b = cid("be", '9');
    tmp.mkdirs("cg/system.slice/nerdctl-" + a + ".scope");
    tmp.mkdirs("cg/default/" + b);
    expect("ae", "/system.slice/nerdctl-" + a + ".scope");
    expect("be", "/default/" + b);
}

// CRI-O, systemd manager: crio-<id>.scope next to crio-conmon-<id>.scope, possibly with
// crun's "container" child.
TEST_F(Layout, CrioSystemd) {
    std::string id = cid("c10", 'a');
    std::string pod = "kubepods.slice/kubepods-pod0b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0.slice";
    tmp.mkdirs("cg/" + pod + "/crio-" + id + ".scope/container");
    tmp.mkdirs("cg/" + pod + "/crio-conmon-" + id + ".scope");
    expect("cri-o://c10a", "/" + pod + "/crio-" + id + ".scope");
}

TEST_F(Layout, CrioCgroupfs) {
    std::string id = cid("c10", 'b');
    std::string pod = "kubepods/burstable/pod0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
    tmp.mkdirs("cg/" + pod + "/crio-" + id);
    tmp.mkdirs("cg/" + pod + "/crio-conmon-" + id);
    expect("c10b", "/" + pod + "/crio-" + id);
}

// Prefixes are matched across every layout at once.
TEST_F(Layout, AmbiguousAcrossRuntimesNamesBoth) {
    std::string d = cid("abc1", 'c'), p = cid("abc2", 'c');
    tmp.mkdirs("cg/system.slice/docker-" + d + ".scope");
    tmp.mkdirs("cg/libpod_parent/libpod-" + p);
    EXPECT_TRUE(FailsWithUserError(fs.by_container("abc"),
                                   {"--container abc", "ambiguous", "2 containers", d.substr(0, 12), p.substr(0, 12)}));
    expect("abc1", "/system.slice/docker-" + d + ".scope");
    expect("abc2", "/libpod_parent/libpod-" + p);
}

TEST_F(Layout, ConmonAloneIsNoContainer) {
    std::string id = cid("dead", 'd');
    tmp.mkdirs("cg/machine.slice/libpod-conmon-" + id + ".scope");
    tmp.mkdirs("cg/libpod_parent/libpod-conmon-" + id);
    tmp.mkdirs("cg/kubepods.slice/crio-conmon-" + id + ".scope");
    tmp.mkdirs("cg/kubepods/crio-conmon-" + id);
    EXPECT_TRUE(FailsWithUserError(fs.by_container("dead"), {"no container", "podman ps"}));
}

TEST(ContainerIdOfLayouts, Names) {
    std::string id = cid("3f2a", 'b');
    for (const std::string& n : {"docker-" + id + ".scope", "cri-containerd-" + id + ".scope", "crio-" + id + ".scope",
                                 "libpod-" + id + ".scope", "nerdctl-" + id + ".scope", "libpod-" + id, "crio-" + id, id})
        EXPECT_EQ(container_id_of(n), id) << n;
    for (const std::string& n : {"libpod-conmon-" + id + ".scope", "libpod-conmon-" + id, "crio-conmon-" + id,
                                 "crio-conmon-" + id + ".scope", "docker-" + id, "cri-containerd-" + id,
                                 "machine-libpod_pod_" + id + ".slice", "libpod-" + id + ".slice", std::string("conmon"),
                                 std::string("container"), "libpod-" + id.substr(1), "crio-" + id + "0"})
        EXPECT_EQ(container_id_of(n), "") << n;
}

}  // namespace
}  // namespace tardy
