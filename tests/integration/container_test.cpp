// SPDX-License-Identifier: Apache-2.0
// Real containers (issue 14): two podman containers, A and B, run from a local image built
// FROM scratch (scripts/build-image.sh: tardy and its libraries, no registry), both in the
// lab's namespace -a and each in the cgroup podman made for it. Proves that
// `tardy inject --container ID-PREFIX` resolves to that container's own cgroup (the one its
// processes are in), that --loss 100% on A drops every UDP echo A sends to the lab's echo
// server and none of B's, and that --fail connect=ECONNREFUSED:100% on A refuses every TCP
// connect of A's (the injection counts them all as failed) while B's all succeed. The probes
// are `tardy __probe` run inside each container with `podman exec`.
//
// Needs podman and buildah (and runc where podman's default runtime cannot start containers,
// as on hybrid-cgroup hosts: it is used whenever it is installed): skipped without them, a
// failure with CI=true. Traffic stays between the lab's namespaces. The image,
// localhost/tardy-itest:<first 16 hex digits of the tardy binary's sha256>, is built on first
// use and KEPT for later runs (building it takes seconds; older tags are removed).
// scripts/run-tests.sh also writes it beside the binary as an OCI archive,
// build/tardy-itest-<same digits>.oci.tar, before the guests boot. Everything else (the
// containers, their cgroups, the lab's namespaces and cgroups) is removed in TearDown, also
// after a failure.
//
// In the test VM (TARDY_VM=1: a stock kernel, pure cgroup v2) the same tests run with podman's
// storage on a tmpfs of the guest's (/run/tardy-podman, through CONTAINERS_STORAGE_CONF: the
// host's storage, seen through the guest's overlay root, cannot hold an overlay mount), and the
// image is loaded from that archive when the host wrote one, else built in the guest.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>

#include "../common/harness.hpp"
#include "sys/cgroup.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

bool on_path(const std::string& tool) {
    const char* env = std::getenv("PATH");
    std::stringstream dirs(env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (std::string d; std::getline(dirs, d, ':');)
        if (!d.empty() && access((d + "/" + tool).c_str(), X_OK) == 0) return true;
    return false;
}

bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::strcmp(ci, "true") == 0;
}

std::string trimmed(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
}

CmdResult cmd(const std::vector<std::string>& argv) {
    auto r = run_cmd(argv);
    return r ? *r : CmdResult{-1, "", r.error().message};
}

constexpr const char* kImageRepo = "localhost/tardy-itest";

class ContainerLab : public Lab {
protected:
    void SetUp() override {
        for (const char* tool : {"podman", "buildah"}) {
            if (on_path(tool)) continue;
            if (in_ci()) FAIL() << tool << " is not installed, and CI=true (scripts/deps.sh must install it)";
            GTEST_SKIP() << tool << " is not installed (apt-get install podman buildah runc)";
        }
        if (std::getenv("TARDY_VM")) use_guest_storage();
        Lab::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        double t0 = mono_ms();
        auto fs = CgroupFs::detect();
        ASSERT_TRUE(fs) << fs.error().message;
        mount_ = fs->mount();
        std::string image = ensure_image();
        ASSERT_FALSE(image.empty());
        for (const char* which : {"a", "b"}) {
            names_.push_back("tardy-it-" + name_ + "-" + which);  // before `run`: TearDown removes it by name
            std::vector<std::string> run{"podman", "run", "--detach", "--name", names_.back(),
                                         // podman's own cgroup tree, the same under systemd or not
                                         "--cgroup-manager", "cgroupfs",
                                         // podman's default limits (1048576) are above the hard
                                         // limits where the runtime may not raise them
                                         "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                                         "--network", "ns:" + lab_->netns_a(), "--entrypoint", "/usr/bin/sleep"};
            // crun refuses hybrid cgroups ("cgroups in hybrid mode not supported"); runc does not
            if (on_path("runc")) run.insert(run.begin() + 2, {"--runtime", "runc"});
            run.insert(run.end(), {image, "infinity"});
            auto r = cmd(run);
            ASSERT_EQ(r.status, 0) << "podman run: " << r.err;
            ids_.push_back(trimmed(r.out));
            ASSERT_EQ(ids_.back().size(), 64u) << r.out;
            auto pid = cmd({"podman", "inspect", "--format", "{{.State.Pid}}", ids_.back()});
            ASSERT_EQ(pid.status, 0) << pid.err;
            auto cg = fs->by_pid(std::stoi(pid.out));
            ASSERT_TRUE(cg) << cg.error().message;
            cgroups_.push_back(cg->rel);
            std::printf("  container %s %s (pid %d) in cgroup %s\n", which, ids_.back().substr(0, 12).c_str(),
                        std::stoi(pid.out), cg->rel.c_str());
        }
        if (std::getenv("TARDY_TEST_TIMES")) std::printf("  [times] containers %.0f ms\n", mono_ms() - t0);
    }

    void TearDown() override {
        // Newest first: a container that shares another's network must go before that one.
        for (auto n = names_.rbegin(); n != names_.rend(); ++n) {
            auto r = cmd({"podman", "rm", "--force", "--ignore", "--time", "0", *n});
            EXPECT_EQ(r.status, 0) << "podman rm " << *n << ": " << r.err;
        }
        for (const auto& cg : cgroups_) {
            EXPECT_FALSE(std::filesystem::exists(mount_ + cg)) << "podman rm left the cgroup " << cg;
            remove_cgroup_tree(mount_ + cg);
        }
        Lab::TearDown();
    }

    // podman's (and buildah's) storage in the guest: a tmpfs of its own, for every process this
    // test starts. Each boot starts with it empty.
    static void use_guest_storage() {
        const std::string dir = "/run/tardy-podman";
        std::filesystem::create_directories(dir);
        std::ofstream(dir + "/storage.conf") << "[storage]\ndriver = \"overlay\"\nrunroot = \"" << dir
                                             << "/run\"\ngraphroot = \"" << dir << "/graph\"\n";
        setenv("CONTAINERS_STORAGE_CONF", (dir + "/storage.conf").c_str(), 1);
    }

    // The image for this tardy binary: reused when present, loaded from the archive
    // scripts/run-tests.sh wrote (the VM, whose storage starts empty), else built; older tags
    // of kImageRepo are removed. "" after a failure.
    std::string ensure_image() {
        auto sum = cmd({"sha256sum", build_dir() + "/tardy"});
        EXPECT_EQ(sum.status, 0) << sum.err;
        if (sum.status != 0 || sum.out.size() < 16) return "";
        std::string digits = sum.out.substr(0, 16), tag = std::string(kImageRepo) + ":" + digits;
        std::string archive = build_dir() + "/tardy-itest-" + digits + ".oci.tar";
        double t0 = mono_ms();
        if (cmd({"podman", "image", "exists", tag}).status == 0) {
            std::printf("  image %s (cached)\n", tag.c_str());
        } else if (std::filesystem::exists(archive)) {
            auto l = cmd({"podman", "load", "--quiet", "--input", archive});
            EXPECT_EQ(l.status, 0) << "podman load " << archive << ": " << l.err;
            if (l.status != 0 || cmd({"podman", "image", "exists", tag}).status != 0) return "";
            std::printf("  image %s loaded from %s in %.0f ms\n", tag.c_str(), archive.c_str(), mono_ms() - t0);
            return tag;
        } else {
            std::string script = build_dir() + "/../scripts/build-image.sh";
            EXPECT_TRUE(std::filesystem::exists(script)) << script << ": the build directory is not in the source tree";
            auto b = cmd({script, "--binary", build_dir() + "/tardy", "--tag", tag});
            EXPECT_EQ(b.status, 0) << b.err;
            if (b.status != 0) return "";
            std::printf("  image %s built in %.0f ms\n", tag.c_str(), mono_ms() - t0);
        }
        auto old = cmd({"podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                        std::string("reference=") + kImageRepo});
        std::stringstream lines(old.out);
        for (std::string l; std::getline(lines, l);)
            if (!l.empty() && l != tag) (void)cmd({"podman", "rmi", l});
        return tag;
    }

    // `tardy __probe` inside container i, to the lab's echo server: the answered count.
    int answered_in(size_t i, const std::string& proto, int count, int timeout_ms) {
        auto r = cmd({"podman", "exec", ids_[i], "/usr/bin/tardy", "__probe", "--proto", proto, "--to",
                      lab_->server(false), "--port", std::to_string(lab_->port()), "--count", std::to_string(count),
                      "--interval-ms", "2", "--timeout-ms", std::to_string(timeout_ms)});
        EXPECT_EQ(r.status, 0) << "podman exec " << names_[i] << ": " << r.err;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out;
        return j.is_discarded() ? -1 : j.value("answered", -1);
    }

    // `tardy inject --container <12-digit prefix of container i's id>`; asserts success.
    void inject_on(size_t i, std::vector<std::string> faults, const std::string& name) {
        std::vector<std::string> args{"inject", "--container", ids_[i].substr(0, 12), "--name", name};
        args.insert(args.end(), faults.begin(), faults.end());
        auto r = tardy(args);
        ASSERT_EQ(r.status, 0) << r.err;
    }

    // The injection `name` as `tardy list --json` shows it ({} when it is not listed).
    nlohmann::json injection(const std::string& name) {
        for (const auto& inj : list_json().value("injections", nlohmann::json::array()))
            if (inj.value("name", "") == name) return inj;
        return nlohmann::json::object();
    }
    std::string cgroup_of(const std::string& name) { return injection(name).value("cgroup", ""); }
    nlohmann::json counters_of(const std::string& name) {
        return injection(name).value("counters", nlohmann::json::object());
    }

    std::string mount_;
    std::vector<std::string> names_, ids_, cgroups_;  // A = 0, B = 1
};

TEST_F(ContainerLab, EachContainerIdResolvesToItsOwnCgroup) {
    // A harmless fault (loss to a port nothing uses) just to see where the target resolves.
    inject_on(0, {"--loss", "100%", "--port", "9"}, "on-a");
    inject_on(1, {"--loss", "100%", "--port", "9"}, "on-b");
    std::string a = cgroup_of("on-a"), b = cgroup_of("on-b");
    std::printf("  --container %s -> %s\n  --container %s -> %s\n", ids_[0].substr(0, 12).c_str(), a.c_str(),
                ids_[1].substr(0, 12).c_str(), b.c_str());
    EXPECT_EQ(a, cgroups_[0]) << "not the cgroup container A's process is in";
    EXPECT_EQ(b, cgroups_[1]) << "not the cgroup container B's process is in";
    EXPECT_NE(a, b);
    EXPECT_NE(a.find(ids_[0]), std::string::npos) << a;
    EXPECT_EQ(answered_in(0, "udp", 5, 200), 5) << "a fault on port 9 hit port 7007";
}

TEST_F(ContainerLab, LossAndRefusalHitOneContainerNotItsSibling) {
    ASSERT_EQ(answered_in(0, "udp", 20, 100), 20) << "A cannot reach the echo server before any fault";
    ASSERT_EQ(answered_in(1, "udp", 20, 100), 20) << "B cannot reach the echo server before any fault";

    inject_on(0, {"--loss", "100%"}, "loss-a");
    EXPECT_EQ(cgroup_of("loss-a"), cgroups_[0]);
    int a = answered_in(0, "udp", 20, 60), b = answered_in(1, "udp", 20, 60);
    std::printf("  --loss 100%% on A: udp echoes answered A %d/20, B %d/20\n", a, b);
    EXPECT_EQ(a, 0) << "A's echoes got through";
    EXPECT_EQ(b, 20) << "B, the sibling, lost echoes";
    auto lost = counters_of("loss-a");
    std::printf("  loss-a counters %s\n", lost.dump().c_str());
    EXPECT_EQ(lost.value("dropped", -1), 20) << "not exactly A's 20 echoes dropped: " << lost;
    ASSERT_EQ(tardy({"stop", "loss-a"}).status, 0);
    EXPECT_TRUE(eventually([&] { return answered_in(0, "udp", 1, 50) == 1; }, 2000, 20))
        << "A still loses echoes after `tardy stop`";

    inject_on(0, {"--fail", "connect=ECONNREFUSED:100%"}, "refuse-a");
    a = answered_in(0, "tcp", 10, 500);
    b = answered_in(1, "tcp", 10, 500);
    std::printf("  --fail connect=ECONNREFUSED:100%% on A: tcp connects succeeded A %d/10, B %d/10\n", a, b);
    EXPECT_EQ(a, 0) << "A's connects succeeded";
    EXPECT_EQ(b, 10) << "B, the sibling, had connects fail";
    // Refused by tardy, not lost: the injection saw A's 10 connects (and none of B's) and failed them all.
    auto counters = counters_of("refuse-a");
    std::printf("  refuse-a counters %s\n", counters.dump().c_str());
    EXPECT_EQ(counters.value("calls", -1), 10) << counters;
    EXPECT_EQ(counters.value("failed", -1), 10) << counters;
    ASSERT_EQ(tardy({"stop", "refuse-a"}).status, 0);
    EXPECT_EQ(answered_in(0, "tcp", 5, 500), 5) << "A's connects still fail after `tardy stop`";
}

// The DaemonSet's pod as podman runs it (deploy/kubernetes/tardy-daemonset.yaml): an `agent`
// container running the manifest's command with exactly the manifest's capabilities, a
// read-only root, a cgroup namespace of its own, no network, the host's PID namespace and the
// three host directories; a `ctl` container beside it in the same network namespace. As
// `kubectl exec` would, `podman exec` runs `tardy doctor`, `inject --container`, `list` and
// `kill` in `ctl`: the fault hits container B and not A, and `kill` ends it and the agent.
TEST_F(ContainerLab, TheImageRunsAsTheDaemonSetRunsIt) {
    // The manifest's agent command and capabilities, read from it: the test follows the manifest.
    std::string manifest = read_all(build_dir() + "/../deploy/kubernetes/tardy-daemonset.yaml");
    auto list_after = [&](const std::string& key) {
        std::vector<std::string> out;
        size_t at = manifest.find(key), end = manifest.find(']', at);
        if (at == std::string::npos || end == std::string::npos) return out;
        std::stringstream items(manifest.substr(at + key.size(), end - at - key.size()));
        for (std::string item; std::getline(items, item, ',');) {
            size_t q1 = item.find('"'), q2 = item.rfind('"');
            if (q1 != std::string::npos && q2 > q1) out.push_back(item.substr(q1 + 1, q2 - q1 - 1));
        }
        return out;
    };
    auto command = list_after("command: [\"/usr/bin/tardy\", ");
    auto caps = list_after("add: [");
    ASSERT_EQ(command.size(), 3u) << "the manifest's agent command is not `/usr/bin/tardy agent --metrics ADDR`";
    ASSERT_EQ(caps.size(), 6u) << "the manifest's capabilities are not the six this test knows";
    std::string cap_add;
    for (const auto& c : caps) cap_add += (cap_add.empty() ? "CAP_" : ",CAP_") + c;

    std::filesystem::create_directories(run_dir_);
    std::string image = ensure_image();
    ASSERT_FALSE(image.empty());
    auto pod_container = [&](const std::string& which, std::vector<std::string> tail) {
        names_.push_back("tardy-it-" + name_ + "-" + which);  // before `run`: TearDown removes it
        std::vector<std::string> run{"podman", "run", "--detach", "--name", names_.back(), "--cgroup-manager",
                                     "cgroupfs", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
                                     "--cap-drop=all", "--cap-add=" + cap_add, "--read-only", "--pid=host",
                                     "--cgroupns=private", "-e", "TARDY_RUN_DIR=" + run_dir_, "-e",
                                     "TARDY_BPFFS=" + bpffs_, "-v", "/sys/fs/bpf:/sys/fs/bpf", "-v",
                                     "/sys/fs/cgroup:/sys/fs/cgroup", "-v", run_dir_ + ":" + run_dir_};
        if (on_path("runc")) run.insert(run.begin() + 2, {"--runtime", "runc"});
        run.insert(run.end(), tail.begin(), tail.end());
        auto r = cmd(run);
        EXPECT_EQ(r.status, 0) << "podman run " << which << ": " << r.err;
        return r.status == 0;
    };
    std::vector<std::string> agent{"--network=none", image};
    agent.insert(agent.end(), command.begin(), command.end());
    ASSERT_TRUE(pod_container("agent", agent));
    std::string agent_name = names_.back();
    ASSERT_TRUE(pod_container("ctl", {"--network=container:" + agent_name, "--entrypoint", "/usr/bin/sleep", image,
                                      "infinity"}));
    std::string ctl = names_.back();
    // 30 s under emulation (the CLI waits as long for an agent it starts); 10 s on the host.
    const int listen_ms = std::getenv("TARDY_VM") ? 30000 : 10000;
    double t0 = mono_ms();
    ASSERT_TRUE(eventually([&] { return std::filesystem::exists(run_dir_ + "/agent.sock"); }, listen_ms))
        << "the agent in its container did not listen within " << listen_ms / 1000
        << " s: " << cmd({"podman", "logs", agent_name}).err;
    std::printf("  the agent in its container listened after %.0f ms\n", mono_ms() - t0);
    auto in_ctl = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"podman", "exec", ctl, "/usr/bin/tardy"});
        return cmd(args);
    };

    auto doctor = in_ctl({"doctor"});
    std::printf("  tardy doctor in ctl: exit %d, %zu lines\n", doctor.status,
                static_cast<size_t>(std::count(doctor.out.begin(), doctor.out.end(), '\n')));
    EXPECT_EQ(doctor.status, 0) << doctor.out << doctor.err;

    auto inj = in_ctl({"inject", "--container", ids_[1].substr(0, 12), "--loss", "100%", "--name", "ds-loss"});
    ASSERT_EQ(inj.status, 0) << inj.err;
    int a = answered_in(0, "udp", 20, 60), b = answered_in(1, "udp", 20, 60);
    std::printf("  --loss 100%% on B from ctl: udp echoes answered A %d/20, B %d/20\n", a, b);
    EXPECT_EQ(a, 20) << "A, the sibling, lost echoes";
    EXPECT_EQ(b, 0) << "B's echoes got through";
    auto list = in_ctl({"list", "--json"});
    ASSERT_EQ(list.status, 0) << list.err;
    auto j = nlohmann::json::parse(list.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << list.out;
    ASSERT_EQ(j.value("injections", nlohmann::json::array()).size(), 1u) << list.out;
    const auto& one = j["injections"][0];
    EXPECT_EQ(one.value("cgroup", ""), cgroups_[1]) << "not B's cgroup as the node sees it";
    EXPECT_EQ(one.value("counters", nlohmann::json::object()).value("dropped", -1), 20) << one;

    auto kill = in_ctl({"kill"});
    std::printf("  tardy kill in ctl: exit %d, last line: %s\n", kill.status,
                trimmed(kill.out).substr(trimmed(kill.out).rfind('\n') + 1).c_str());
    EXPECT_EQ(kill.status, 0) << kill.out << kill.err;
    EXPECT_NE(kill.out.find("clean"), std::string::npos) << kill.out;
    auto state = [&] {
        return trimmed(cmd({"podman", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", agent_name}).out);
    };
    EXPECT_TRUE(eventually([&] { return state() == "exited 0"; }, 5000)) << "the agent container: " << state();
    EXPECT_EQ(answered_in(1, "udp", 20, 60), 20) << "B still loses echoes after `tardy kill`";
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 2000))
        << "a program of ours outlived `tardy kill` in ctl";
}

}  // namespace
