// SPDX-License-Identifier: Apache-2.0
// Hypothesis probes run from inside a cohort (experiment/probe.hpp): in a test-made cgroup and network namespace.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

// As in user/agent/metrics_http.cpp: what Debian's libcpp-httplib was built with.
#define CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#include <httplib.h>

#include "../common/harness.hpp"
#include "experiment/probe.hpp"
#include "sys/cgroup.hpp"
#include "sys/process.hpp"

using namespace tardy;
using namespace tardy::test;
namespace fs = std::filesystem;

namespace {

std::vector<pid_t> procs_of(const std::string& cg) {
    std::vector<pid_t> out;
    std::ifstream f(cg + "/cgroup.procs");
    for (pid_t p; f >> p;) out.push_back(p);
    return out;
}

bool write_file(const std::string& path, const std::string& v) {
    std::ofstream f(path);
    f << v << std::flush;
    return static_cast<bool>(f);
}

// A cgroup directory under the cgroup2 mount; killed and removed, children first, at the end.
struct TestCgroup {
    explicit TestCgroup(const std::string& name) {
        auto cgfs = CgroupFs::detect();
        if (cgfs && mkdir((cgfs->mount() + "/" + name).c_str(), 0755) == 0) path = cgfs->mount() + "/" + name;
    }
    ~TestCgroup() {
        if (path.empty()) return;
        std::vector<fs::path> dirs{path};
        std::error_code ec;
        for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec))
            if (it->is_directory(ec)) dirs.push_back(it->path());
        for (auto d = dirs.rbegin(); d != dirs.rend(); ++d)
            for (int i = 0; i < 200 && rmdir(d->c_str()) != 0; i++) {
                for (pid_t p : procs_of(d->string())) kill(p, SIGKILL);
                sleep_ms(10);
            }
    }
    TestCgroup(const TestCgroup&) = delete;
    TestCgroup& operator=(const TestCgroup&) = delete;
    std::string path;
};

// A network namespace (`ip netns add`) with its loopback up; deleted at the end.
struct TestNetns {
    explicit TestNetns(const std::string& n) {
        auto a = run_cmd({"ip", "netns", "add", n});
        if (!a || a->status != 0) return;
        name = n;
        auto b = run_cmd({"ip", "-n", n, "link", "set", "lo", "up"});
        up = b && b->status == 0;
    }
    ~TestNetns() {
        if (!name.empty()) (void)run_cmd({"ip", "netns", "del", name});
    }
    TestNetns(const TestNetns&) = delete;
    TestNetns& operator=(const TestNetns&) = delete;
    std::string name;
    bool up = false;
};

// A forked test process, SIGKILLed and reaped at the end. body(ready) writes a byte on
// `ready` once it is set up; the constructor waits up to 5 s for it (pid stays -1 if not).
struct TestChild {
    explicit TestChild(const std::function<void(int)>& body) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) return;
        pid_t parent = getpid();
        pid_t c = fork();
        if (c == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);
            close(p[0]);
            body(p[1]);
            _exit(0);
        }
        close(p[1]);
        pollfd pf{p[0], POLLIN, 0};
        char b = 0;
        bool ready = c > 0 && poll(&pf, 1, 5000) == 1 && read(p[0], &b, 1) == 1;
        close(p[0]);
        pid = c;
        if (!ready) kill_it();
    }
    ~TestChild() { kill_it(); }
    void kill_it() {
        if (pid > 0 && kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
        pid = -1;
    }
    TestChild(const TestChild&) = delete;
    TestChild& operator=(const TestChild&) = delete;
    pid_t pid = -1;
};

bool enter_netns(const std::string& name) {
    int fd = open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    return fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
}

// Something accepts TCP at 127.0.0.1:port in this (the host's) namespace.
bool host_listens(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = s >= 0 && connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (s >= 0) close(s);
    return ok;
}

ProbeSpec command(std::vector<std::string> run, int every_ms, int timeout_ms) {
    ProbeSpec s;
    s.kind = "command";
    s.run = std::move(run);
    s.every_ns = uint64_t(every_ms) * 1'000'000;
    s.timeout_ns = uint64_t(timeout_ms) * 1'000'000;
    return s;
}

ProbeSpec http(const std::string& url, int expect = 200, int every_ms = 200, int timeout_ms = 1000) {
    ProbeSpec s;
    s.kind = "http";
    s.url = url;
    s.expect_status = expect;
    s.every_ns = uint64_t(every_ms) * 1'000'000;
    s.timeout_ns = uint64_t(timeout_ms) * 1'000'000;
    return s;
}

// At least n results within ms.
std::vector<ProbeAttempt> results(Prober& p, size_t n, int ms = 5000) {
    std::vector<ProbeAttempt> all;
    eventually(
        [&] {
            for (auto& r : p.drain()) all.push_back(std::move(r));
            return all.size() >= n;
        },
        ms);
    return all;
}

class ProbeLab : public ::testing::Test {
protected:
    void SetUp() override {
        TARDY_REQUIRE_ROOT();
        static int seq = 0;
        name_ = "tdprobe" + std::to_string(getpid() % 100000) + "x" + std::to_string(seq++);
    }
    std::string name_;
};

// The command runs inside the cgroup (its /proc/self/cgroup names it), every 200 ms on a
// steady cadence; grep for another name fails with "exit 1".
TEST_F(ProbeLab, CommandRunsInsideTheCgroupAtItsCadence) {
    TestCgroup cg(name_);
    ASSERT_FALSE(cg.path.empty());
    auto p = Prober::start(command({"/bin/sh", "-c", "grep -q /" + name_ + "$ /proc/self/cgroup"}, 200, 1000), cg.path);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_NE((*p)->netns_note().find("no process in cgroup"), std::string::npos) << (*p)->netns_note();
    EXPECT_TRUE((*p)->alive());
    sleep_ms(1200);
    auto rs = (*p)->drain();
    EXPECT_GE(rs.size(), 5u);
    EXPECT_LE(rs.size(), 7u);
    for (size_t i = 0; i < rs.size(); i++) {
        EXPECT_TRUE(rs[i].ok) << i << ": " << rs[i].detail;
        EXPECT_EQ(rs[i].detail, "exit 0");
        EXPECT_LT(rs[i].ms, 200);
        // Steady: attempt i starts i * 200 ms after the first, whatever the attempts took.
        double off_ms = double(rs[i].at_mono_ns - rs[0].at_mono_ns) / 1e6 - 200.0 * double(i);
        EXPECT_NEAR(off_ms, 0, 25) << i;
    }
    auto bad =
        Prober::start(command({"/bin/sh", "-c", "grep -q /" + name_ + "nope$ /proc/self/cgroup"}, 200, 1000), cg.path);
    ASSERT_TRUE(bad) << bad.error().message;
    auto b = results(**bad, 1);
    ASSERT_FALSE(b.empty());
    EXPECT_FALSE(b[0].ok);
    EXPECT_EQ(b[0].detail, "exit 1");
}

// Too slow: "timeout" at the timeout, and the command is killed (nothing of it is left in
// the cgroup); killed by a signal: "signal 9".
TEST_F(ProbeLab, SlowAndKilledCommandsFail) {
    TestCgroup cg(name_);
    ASSERT_FALSE(cg.path.empty());
    auto p = Prober::start(command({"sleep", "5"}, 1000, 300), cg.path);
    ASSERT_TRUE(p) << p.error().message;
    auto rs = results(**p, 1);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_FALSE(rs[0].ok);
    EXPECT_EQ(rs[0].detail, "timeout");
    EXPECT_GE(rs[0].ms, 295);
    EXPECT_LT(rs[0].ms, 600);
    EXPECT_EQ(procs_of(cg.path), std::vector<pid_t>{(*p)->pid()}) << "the sleep outlived its timeout";
    auto k = Prober::start(command({"/bin/sh", "-c", "kill -9 $$"}, 1000, 1000), cg.path);
    ASSERT_TRUE(k) << k.error().message;
    rs = results(**k, 1);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_FALSE(rs[0].ok);
    EXPECT_EQ(rs[0].detail, "signal 9");
}

// A server on the loopback of a test namespace, a resident of the cohort in it: the probe
// reaches the server only from there. A cohort with no process probes from the host's
// namespace, says so, and is refused.
TEST_F(ProbeLab, HttpProbesFromTheCohortsNetworkNamespace) {
    TestNetns ns(name_);
    ASSERT_TRUE(ns.up);
    TestCgroup cg(name_), empty(name_ + "e");
    ASSERT_FALSE(cg.path.empty());
    ASSERT_FALSE(empty.path.empty());
    int port = 20000 + getpid() % 20000;
    while (host_listens(port)) port++;
    TestChild server([&](int ready) {
        if (!enter_netns(ns.name)) _exit(1);
        httplib::Server srv;
        srv.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
        if (!srv.bind_to_port("::", port)) _exit(1);  // both families: net.ipv6.bindv6only is 0
        (void)!write(ready, "R", 1);
        srv.listen_after_bind();
    });
    ASSERT_GT(server.pid, 0) << "the test server did not start";
    TestChild resident([&](int ready) {
        if (!enter_netns(ns.name) || !write_file(cg.path + "/cgroup.procs", "0")) _exit(1);
        (void)!write(ready, "R", 1);
        for (;;) pause();
    });
    ASSERT_GT(resident.pid, 0) << "the cohort's resident did not start";

    const std::string at = ":" + std::to_string(port) + "/";
    for (const std::string& url : {"http://127.0.0.1" + at, "http://[::1]" + at}) {
        auto p = Prober::start(http(url), cg.path);
        ASSERT_TRUE(p) << p.error().message;
        EXPECT_EQ((*p)->netns_note(), "");
        auto rs = results(**p, 2);
        ASSERT_EQ(rs.size(), 2u) << url;
        for (const auto& r : rs) {
            EXPECT_TRUE(r.ok) << url << ": " << r.detail;
            EXPECT_EQ(r.detail, "200");
            EXPECT_LT(r.ms, 1000);
        }
    }
    auto wrong = Prober::start(http("http://127.0.0.1" + at, 204), cg.path);
    ASSERT_TRUE(wrong) << wrong.error().message;
    auto rs = results(**wrong, 1);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_FALSE(rs[0].ok);
    EXPECT_EQ(rs[0].detail, "status 200");

    auto host = Prober::start(http("http://127.0.0.1" + at), empty.path);
    ASSERT_TRUE(host) << host.error().message;
    EXPECT_NE((*host)->netns_note().find("no process in cgroup " + empty.path), std::string::npos)
        << (*host)->netns_note();
    rs = results(**host, 2);
    ASSERT_EQ(rs.size(), 2u);
    for (const auto& r : rs) {
        EXPECT_FALSE(r.ok);
        EXPECT_NE(r.detail.find("refused"), std::string::npos) << r.detail;
    }
}

// Refusals come before any child runs, or with the child reaped: a cgroup that does not
// exist, one the kernel puts no process in, a bad URL, a command that is not there.
TEST_F(ProbeLab, StartRefusesAndLeavesNoChild) {
    auto cgfs = CgroupFs::detect();
    ASSERT_TRUE(cgfs) << cgfs.error().message;
    auto p = Prober::start(command({"true"}, 100, 100), cgfs->mount() + "/" + name_ + "-missing");
    ASSERT_FALSE(p);
    EXPECT_TRUE(p.error().is_user());
    EXPECT_NE(p.error().message.find("probe: cannot join cgroup " + cgfs->mount() + "/" + name_ + "-missing: "),
              std::string::npos)
        << p.error().message;
    errno = 0;
    EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD) << "a prober child was left";

    // A child of a threaded cgroup is "domain invalid": no process goes in (EOPNOTSUPP).
    TestCgroup cg(name_);
    ASSERT_FALSE(cg.path.empty());
    ASSERT_EQ(mkdir((cg.path + "/t").c_str(), 0755), 0);
    if (write_file(cg.path + "/t/cgroup.type", "threaded") && mkdir((cg.path + "/t/x").c_str(), 0755) == 0) {
        auto t = Prober::start(command({"true"}, 100, 100), cg.path + "/t/x");
        ASSERT_FALSE(t);
        EXPECT_TRUE(t.error().is_user());
        EXPECT_NE(t.error().message.find("leaf"), std::string::npos) << t.error().message;
        errno = 0;
        EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
    }
    for (const char* url : {"https://127.0.0.1/", "http://::1:80/", "http://[::1/", "http://h:99999/", "ftp://h/"}) {
        auto u = Prober::start(http(url), cg.path);
        ASSERT_FALSE(u) << url;
        EXPECT_TRUE(u.error().is_user()) << url;
        EXPECT_NE(u.error().message.find(url), std::string::npos) << u.error().message;
    }
    auto c = Prober::start(command({"tardy-no-such-command"}, 100, 100), cg.path);
    ASSERT_FALSE(c);
    EXPECT_TRUE(c.error().is_user());
    EXPECT_EQ(procs_of(cg.path), std::vector<pid_t>{});
}

// The destructor kills the prober, the command and what the command started, and reaps.
TEST_F(ProbeLab, DestructionLeavesNoProcess) {
    TestCgroup cg(name_);
    ASSERT_FALSE(cg.path.empty());
    const std::string file = "/tmp/" + name_ + ".pids";
    struct Rm {
        std::string f;
        ~Rm() { unlink(f.c_str()); }
    } rm{file};
    auto p = Prober::start(command({"/bin/sh", "-c", "sleep 30 & echo $$ $! > " + file + ".new; mv " + file +
                                                         ".new " + file + "; wait"},
                                   1000, 60000),
                           cg.path);
    ASSERT_TRUE(p) << p.error().message;
    pid_t prober = (*p)->pid(), sh = 0, bg = 0;
    ASSERT_TRUE(eventually([&] { return (std::ifstream(file) >> sh >> bg).good(); }, 5000));
    EXPECT_TRUE(process_alive(prober));
    EXPECT_TRUE(process_alive(sh));
    EXPECT_TRUE(process_alive(bg));
    EXPECT_EQ(getpgid(bg), sh) << "the command's own process group";
    EXPECT_NE(getpgid(prober), getpgrp()) << "the prober is in the runner's process group";
    p->reset();
    EXPECT_FALSE(process_alive(prober));
    EXPECT_TRUE(eventually([&] { return !process_alive(sh) && !process_alive(bg); }, 1000));
    EXPECT_TRUE(eventually([&] { return procs_of(cg.path).empty(); }, 1000));
}

// The runner SIGKILLed with a prober running `sleep 30`: the prober (PR_SET_PDEATHSIG) and
// the sleep (the same, to the prober) go within a second.
TEST_F(ProbeLab, KilledOwnerLeavesNoProcess) {
    TestCgroup cg(name_);
    ASSERT_FALSE(cg.path.empty());
    const std::string path = cg.path;
    TestChild owner([&](int ready) {
        auto p = Prober::start(command({"sleep", "30"}, 100, 60000), path);
        if (!p) _exit(1);
        (void)!write(ready, "R", 1);
        for (;;) pause();
    });
    ASSERT_GT(owner.pid, 0) << "the owner could not start a prober";
    std::vector<pid_t> procs;
    ASSERT_TRUE(eventually([&] { return (procs = procs_of(path)).size() == 2; }, 3000)) << procs.size();
    owner.kill_it();
    EXPECT_TRUE(eventually([&] { return procs_of(path).empty(); }, 1000)) << procs_of(path).size();
    for (pid_t p : procs) EXPECT_FALSE(process_alive(p)) << p;
}

}  // namespace
