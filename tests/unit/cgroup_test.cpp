// SPDX-License-Identifier: Apache-2.0
// user/cgroup: resolving targets over a fake cgroup v2 tree and a fake /proc, both plain
// directories in a scratch directory.
#include "sys/cgroup.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace tardy {
namespace {

using test::FailsWithUserError;
using test::TempDir;

uint64_t ino(const std::string& path) {
    struct stat st{};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_ino;
}

// 64 hex digits starting with `lead`, padded with `fill`.
using test::cid;

class CgroupTest : public ::testing::Test {
protected:
    TempDir tmp;
    std::string mnt = tmp.mkdirs("cg");
    std::string proc = tmp.mkdirs("proc");
    CgroupFs fs{mnt, proc};
};

TEST_F(CgroupTest, MountTrailingSlashIsTrimmed) {
    CgroupFs f(mnt + "//", proc);
    EXPECT_EQ(f.mount(), mnt);
}

TEST_F(CgroupTest, ByPathRelative) {
    std::string dir = tmp.mkdirs("cg/system.slice/api.service");
    auto cg = fs.by_path("system.slice/api.service");
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, dir);
    EXPECT_EQ(cg->rel, "/system.slice/api.service");
    EXPECT_EQ(cg->id, ino(dir));
}

TEST_F(CgroupTest, ByPathAbsoluteBelowTheMount) {
    std::string dir = tmp.mkdirs("cg/system.slice/api.service");
    auto cg = fs.by_path("/system.slice/api.service");
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, dir);
    EXPECT_EQ(cg->rel, "/system.slice/api.service");
}

TEST_F(CgroupTest, ByPathAbsoluteIncludingTheMount) {
    std::string dir = tmp.mkdirs("cg/a/b");
    auto cg = fs.by_path(dir);
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, dir);
    EXPECT_EQ(cg->rel, "/a/b");
    EXPECT_EQ(cg->id, ino(dir));

    auto slash = fs.by_path(dir + "/");
    ASSERT_TRUE(slash) << slash.error().message;
    EXPECT_EQ(slash->path, dir);
    EXPECT_EQ(slash->rel, "/a/b");
}

TEST_F(CgroupTest, ByPathRoot) {
    for (std::string p : {std::string("/"), mnt}) {
        auto cg = fs.by_path(p);
        ASSERT_TRUE(cg) << p << ": " << cg.error().message;
        EXPECT_EQ(cg->path, mnt);
        EXPECT_EQ(cg->rel, "/");
        EXPECT_EQ(cg->id, ino(mnt));
    }
}

TEST_F(CgroupTest, ByPathRefusesDotDot) {
    tmp.mkdirs("cg/a");
    tmp.mkdirs("outside");
    for (const char* p : {"..", "../outside", "a/../../outside", "/a/..", "a/.."})
        EXPECT_TRUE(FailsWithUserError(fs.by_path(p), {"--cgroup", "'..'"})) << p;
}

TEST_F(CgroupTest, ByPathMissing) {
    EXPECT_TRUE(FailsWithUserError(fs.by_path("no/such.slice"), {"--cgroup", "no/such.slice", "no such cgroup", mnt}));
    EXPECT_TRUE(FailsWithUserError(fs.by_path(""), {"--cgroup", "empty"}));
}

TEST_F(CgroupTest, ByPathRefusesAFile) {
    tmp.write("cg/a/cgroup.procs", "1\n");
    EXPECT_TRUE(FailsWithUserError(fs.by_path("a/cgroup.procs"), {"--cgroup"}));
}

TEST_F(CgroupTest, ById) {
    std::string a = tmp.mkdirs("cg/a");
    std::string deep = tmp.mkdirs("cg/a/b/c/d");
    auto cg = fs.by_id(ino(deep));
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, deep);
    EXPECT_EQ(cg->rel, "/a/b/c/d");

    auto ca = fs.by_id(ino(a));
    ASSERT_TRUE(ca) << ca.error().message;
    EXPECT_EQ(ca->rel, "/a");

    auto root = fs.by_id(ino(mnt));
    ASSERT_TRUE(root) << root.error().message;
    EXPECT_EQ(root->rel, "/");
}

TEST_F(CgroupTest, ByIdIgnoresFilesAndOutside) {
    std::string f = tmp.write("cg/a/cgroup.procs", "");
    std::string outside = tmp.mkdirs("outside");
    EXPECT_TRUE(FailsWithUserError(fs.by_id(ino(f)), {"--cgroup", "no cgroup has this id"}));
    EXPECT_TRUE(FailsWithUserError(fs.by_id(ino(outside)), {"--cgroup", std::to_string(ino(outside))}));
    EXPECT_TRUE(FailsWithUserError(fs.by_id(0), {"--cgroup"}));
}

TEST_F(CgroupTest, ByPid) {
    std::string dir = tmp.mkdirs("cg/a/b");
    tmp.write("proc/4242/cgroup", "0::/a/b\n");
    auto cg = fs.by_pid(4242);
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, dir);
    EXPECT_EQ(cg->rel, "/a/b");
    EXPECT_EQ(cg->id, ino(dir));
}

TEST_F(CgroupTest, ByPidSkipsV1Lines) {
    std::string dir = tmp.mkdirs("cg/user.slice");
    tmp.write("proc/7/cgroup", "12:memory:/user.slice\n1:name=systemd:/user.slice\n0::/user.slice\n");
    auto cg = fs.by_pid(7);
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, dir);
}

TEST_F(CgroupTest, ByPidInTheRoot) {
    tmp.write("proc/1/cgroup", "0::/\n");
    auto cg = fs.by_pid(1);
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->rel, "/");
    EXPECT_EQ(cg->path, mnt);
}

TEST_F(CgroupTest, ByPidErrors) {
    EXPECT_TRUE(FailsWithUserError(fs.by_pid(999), {"--pid 999", "no such process"}));
    tmp.write("proc/5/cgroup", "1:name=systemd:/x\n");
    EXPECT_TRUE(FailsWithUserError(fs.by_pid(5), {"--pid 5", "no cgroup v2"}));
    tmp.write("proc/6/cgroup", "0::/gone\n");
    EXPECT_TRUE(FailsWithUserError(fs.by_pid(6), {"--pid 6", "/gone"}));
}

// In a cgroup namespace, /proc/PID/cgroup shows groups outside the namespace's root as
// "/../sibling". by_path refuses '..'; by_pid must not resolve such a line to a directory
// outside the mount either.
TEST_F(CgroupTest, ByPidDoesNotLeaveTheMount) {
    tmp.mkdirs("outside");
    tmp.write("proc/8/cgroup", "0::/../outside\n");
    auto cg = fs.by_pid(8);
    EXPECT_TRUE(FailsWithUserError(cg, {"--pid 8"})) << "resolved to " << (cg ? cg->path : "");
}

TEST_F(CgroupTest, ResolveDispatches) {
    std::string dir = tmp.mkdirs("cg/a/b");
    tmp.write("proc/42/cgroup", "0::/a/b\n");
    std::string c = tmp.mkdirs("cg/system.slice/docker-" + cid("abc") + ".scope");

    auto by_path = fs.resolve({TargetRef::Kind::Cgroup, "a/b", ""});
    ASSERT_TRUE(by_path) << by_path.error().message;
    EXPECT_EQ(by_path->path, dir);

    auto by_id = fs.resolve({TargetRef::Kind::Cgroup, std::to_string(ino(dir)), ""});
    ASSERT_TRUE(by_id) << by_id.error().message;
    EXPECT_EQ(by_id->path, dir);

    auto by_pid = fs.resolve({TargetRef::Kind::Pid, "42", ""});
    ASSERT_TRUE(by_pid) << by_pid.error().message;
    EXPECT_EQ(by_pid->path, dir);

    auto by_container = fs.resolve({TargetRef::Kind::Container, "abc", ""});
    ASSERT_TRUE(by_container) << by_container.error().message;
    EXPECT_EQ(by_container->path, c);

    for (const char* bad : {"abc", "0", "-1", "4x", "", " 42", "+42", "99999999999999999999"})
        EXPECT_TRUE(FailsWithUserError(fs.resolve({TargetRef::Kind::Pid, bad, ""}), {"--pid"})) << "'" << bad << "'";
}

// ---- containers ----------------------------------------------------------------------------

TEST(ContainerIdOf, SystemdLayout) {
    std::string id = cid("3f2a", 'b');
    EXPECT_EQ(container_id_of("docker-" + id + ".scope"), id);
    EXPECT_EQ(container_id_of("cri-containerd-" + id + ".scope"), id);
    EXPECT_EQ(container_id_of("crio-" + id + ".scope"), id);
    EXPECT_EQ(container_id_of("libpod-" + id + ".scope"), id);
}

TEST(ContainerIdOf, CgroupfsLayout) {
    std::string id = cid("0123456789abcdef");
    EXPECT_EQ(container_id_of(id), id);
}

TEST(ContainerIdOf, NotContainers) {
    std::string id = cid("3f2a");
    for (const std::string& n : {
             "crio-conmon-" + id + ".scope",  // CRI-O's monitor process, not the container
             "docker-" + id,                  // no .scope
             id + ".scope",                   // no runtime prefix
             "podman-" + id + ".scope",       // unknown runtime
             "docker-" + id.substr(1) + ".scope",  // 63 digits
             "docker-" + id + "0.scope",           // 65 digits
             "docker-" + cid("3F2A") + ".scope",   // upper case is not what runtimes write
             "docker-" + cid("3g2a") + ".scope",   // not hex
             id.substr(1),
             id + "0",
             std::string("system.slice"),
             std::string("init.scope"),
             std::string(""),
             std::string(".scope"),
             std::string("docker-.scope"),
             "kubepods-burstable-pod" + std::string("12345678_1234_1234_1234_123456789012") + ".slice",
         })
        EXPECT_EQ(container_id_of(n), "") << n;
}

class ContainerTest : public CgroupTest {};

TEST_F(ContainerTest, SystemdDocker) {
    std::string id = cid("3f2a", '1');
    std::string dir = tmp.mkdirs("cg/system.slice/docker-" + id + ".scope");
    auto cg = fs.by_container("3f2a");
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, dir);
    EXPECT_EQ(cg->rel, "/system.slice/docker-" + id + ".scope");
    EXPECT_EQ(cg->id, ino(dir));
}

TEST_F(ContainerTest, SystemdKubepodsContainerd) {
    std::string id = cid("beef", '7');
    std::string dir = tmp.mkdirs(
        "cg/kubepods.slice/kubepods-burstable.slice/"
        "kubepods-burstable-pod12345678_1234_1234_1234_123456789012.slice/cri-containerd-" +
        id + ".scope");
    auto cg = fs.by_container("beef77");
    ASSERT_TRUE(cg) << cg.error().message;
    EXPECT_EQ(cg->path, dir);
}

TEST_F(ContainerTest, SystemdCrioAndLibpod) {
    std::string crio = cid("c0de", '2'), libpod = cid("d00d", '3');
    std::string cdir = tmp.mkdirs("cg/kubepods.slice/kubepods-pod1.slice/crio-" + crio + ".scope");
    tmp.mkdirs("cg/kubepods.slice/kubepods-pod1.slice/crio-conmon-" + crio + ".scope");
    std::string ldir = tmp.mkdirs("cg/machine.slice/libpod-" + libpod + ".scope");
    auto c = fs.by_container("c0de");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->path, cdir);
    auto l = fs.by_container("d00d");
    ASSERT_TRUE(l) << l.error().message;
    EXPECT_EQ(l->path, ldir);
}

TEST_F(ContainerTest, CgroupfsDockerAndKubepods) {
    std::string d = cid("aaaa", '4'), k = cid("bbbb", '5');
    std::string ddir = tmp.mkdirs("cg/docker/" + d);
    std::string kdir = tmp.mkdirs("cg/kubepods/burstable/pod12345678-1234-1234-1234-123456789012/" + k);
    auto cd = fs.by_container("aaaa");
    ASSERT_TRUE(cd) << cd.error().message;
    EXPECT_EQ(cd->path, ddir);
    EXPECT_EQ(cd->rel, "/docker/" + d);
    auto ck = fs.by_container("bbbb");
    ASSERT_TRUE(ck) << ck.error().message;
    EXPECT_EQ(ck->path, kdir);
}

TEST_F(ContainerTest, FullIdAndCase) {
    std::string id = cid("3f2a", 'e');
    std::string dir = tmp.mkdirs("cg/system.slice/docker-" + id + ".scope");
    auto full = fs.by_container(id);
    ASSERT_TRUE(full) << full.error().message;
    EXPECT_EQ(full->path, dir);
    std::string upper = id;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    auto up = fs.by_container(upper);
    ASSERT_TRUE(up) << up.error().message;
    EXPECT_EQ(up->path, dir);
}

TEST_F(ContainerTest, UniquePrefixAmongSeveral) {
    std::string a = cid("3f2a", '1'), b = cid("3f2b", '1'), c = cid("9999");
    std::string adir = tmp.mkdirs("cg/system.slice/docker-" + a + ".scope");
    tmp.mkdirs("cg/system.slice/docker-" + b + ".scope");
    tmp.mkdirs("cg/docker/" + c);
    auto r = fs.by_container("3f2a");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->path, adir);
}

TEST_F(ContainerTest, AmbiguousPrefix) {
    tmp.mkdirs("cg/system.slice/docker-" + cid("3f2a", '1') + ".scope");
    tmp.mkdirs("cg/system.slice/docker-" + cid("3f2b", '1') + ".scope");
    EXPECT_TRUE(FailsWithUserError(fs.by_container("3f2"), {"--container 3f2", "ambiguous", "2", "more characters"}));
    EXPECT_TRUE(FailsWithUserError(fs.by_container("3"), {"ambiguous"}));
}

// One container can show up twice (a scope and a nested directory of the same id): it is one
// match, resolved to the shallower directory.
TEST_F(ContainerTest, SameIdTwiceIsOneMatch) {
    std::string id = cid("abcd", 'f');
    std::string outer = tmp.mkdirs("cg/system.slice/docker-" + id + ".scope");
    tmp.mkdirs("cg/system.slice/docker-" + id + ".scope/" + id);
    auto r = fs.by_container("abcd");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->path, outer);
}

TEST_F(ContainerTest, NotHex) {
    for (const char* bad : {"xyz", "3f2a-", "", "my-container", "3f 2a"})
        EXPECT_TRUE(FailsWithUserError(fs.by_container(bad), {"--container", "hexadecimal"})) << "'" << bad << "'";
    EXPECT_TRUE(FailsWithUserError(fs.by_container(std::string(65, 'a')), {"--container", "hexadecimal"}));
}

TEST_F(ContainerTest, NoMatch) {
    tmp.mkdirs("cg/system.slice/docker-" + cid("3f2a") + ".scope");
    tmp.mkdirs("cg/kubepods.slice/crio-conmon-" + cid("dead") + ".scope");
    EXPECT_TRUE(FailsWithUserError(fs.by_container("beef"), {"--container beef", "no container", "docker ps"}));
    // The conmon scope of a CRI-O container is not the container.
    EXPECT_TRUE(FailsWithUserError(fs.by_container("dead"), {"no container"}));
}

// ---- procs ---------------------------------------------------------------------------------

TEST_F(CgroupTest, ProcsRecursive) {
    tmp.write("cg/app/cgroup.procs", "10\n11\n");
    tmp.write("cg/app/worker/cgroup.procs", "20\n");
    tmp.write("cg/app/worker/deep/cgroup.procs", "30\n31\n32\n");
    tmp.write("cg/app/empty/cgroup.procs", "");
    tmp.mkdirs("cg/app/nofile");
    tmp.write("cg/other/cgroup.procs", "99\n");
    auto cg = fs.by_path("app");
    ASSERT_TRUE(cg) << cg.error().message;
    auto pids = fs.procs(*cg);
    std::sort(pids.begin(), pids.end());
    EXPECT_EQ(pids, (std::vector<pid_t>{10, 11, 20, 30, 31, 32}));

    auto leaf = fs.by_path("app/worker/deep");
    ASSERT_TRUE(leaf);
    auto lp = fs.procs(*leaf);
    std::sort(lp.begin(), lp.end());
    EXPECT_EQ(lp, (std::vector<pid_t>{30, 31, 32}));

    auto none = fs.by_path("app/nofile");
    ASSERT_TRUE(none);
    EXPECT_TRUE(fs.procs(*none).empty());
}

}  // namespace
}  // namespace tardy
