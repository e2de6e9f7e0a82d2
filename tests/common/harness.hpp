// SPDX-License-Identifier: Apache-2.0
// Integration harness: a sandbox (namespaces, veth, cohort cgroups, echo server), a private
// run directory and bpffs directory, the real `tardy` binary, and a check after every test
// that nothing of ours is left in the kernel.
#pragma once

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <net/if.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "sys/netns.hpp"
#include "privileges.hpp"
#include "sys/process.hpp"
#include "sys/qdisc.hpp"
#include "lab/sandbox.hpp"

namespace tardy::test {

inline std::string build_dir() {
    return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

inline void sleep_ms(int ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1'000'000L};
    nanosleep(&ts, nullptr);
}

inline double mono_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Alive and not a zombie waiting for its parent.
inline bool process_alive(pid_t pid) {
    if (pid <= 0 || kill(pid, 0) != 0) return false;
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(st, line);
    auto close = line.rfind(')');
    return !(close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z');
}

// Loaded programs whose name starts with `prefix` (the kernel keeps 15 characters of a name).
inline int count_programs_named(const std::string& prefix) {
    int n = 0;
    __u32 id = 0;
    while (bpf_prog_get_next_id(id, &id) == 0) {
        int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0) continue;
        bpf_prog_info info{};
        __u32 len = sizeof info;
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::string(info.name).rfind(prefix, 0) == 0) n++;
        close(fd);
    }
    return n;
}

// Programs of ours loaded in the kernel right now (by program name).
inline int count_our_programs() { return count_programs_named("tardy_"); }

// A file's whole text ("" when it cannot be read). read(2), not an ifstream: libstdc++'s
// filebuf throws when a read fails half way, as /proc/PID/environ does with ESRCH when the
// process exits meanwhile (a CI run's KillLab.KillRacingInjectsNeverLeavesAnInvisibleAgent).
inline std::string read_all(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
}

class Lab : public ::testing::Test {
protected:
    void SetUp() override {
        TARDY_REQUIRE_ROOT();
        double t0 = mono_ms();
        static int seq = 0;
        name_ = "td" + std::to_string(getpid() % 100000) + "x" + std::to_string(seq++);
        run_dir_ = "/tmp/tardy-it-" + name_;
        bpffs_ = "/sys/fs/bpf/tardy-it-" + name_;
        setenv("TARDY_RUN_DIR", run_dir_.c_str(), 1);
        setenv("TARDY_BPFFS", bpffs_.c_str(), 1);
        for (int i = 0; i < 40 && count_our_programs() != 0; i++) sleep_ms(50);
        ASSERT_EQ(count_our_programs(), 0) << "programs of an earlier run are still loaded";
        auto s = Sandbox::create({name_, build_dir() + "/tardy", 7007});
        ASSERT_TRUE(s) << s.error().message;
        lab_ = std::move(*s);
        qdisc_before_ = root_qdisc_a();
        if (std::getenv("TARDY_TEST_TIMES")) std::printf("  [times] set-up %.0f ms\n", mono_ms() - t0);
    }

    void TearDown() override {
        stop_servers();
        if (!lab_) return;
        double t0 = mono_ms();
        auto k = tardy({"kill"});
        EXPECT_EQ(k.status, 0) << k.out << k.err;
        // Tracing programs are freed after an RCU grace period, not at the last close.
        for (int i = 0; i < 40 && count_our_programs() != 0; i++) sleep_ms(50);
        EXPECT_EQ(count_our_programs(), 0) << "a program of ours outlived `tardy kill`";
        EXPECT_FALSE(std::filesystem::exists(bpffs_)) << "pins left in " << bpffs_;
        auto after = root_qdisc_a();
        EXPECT_EQ(after.first, qdisc_before_.first) << "root qdisc kind changed";
        EXPECT_EQ(after.second, qdisc_before_.second) << "root qdisc handle changed";
        double t1 = mono_ms();
        lab_.reset();
        std::filesystem::remove_all(run_dir_);
        if (std::getenv("TARDY_TEST_TIMES"))
            std::printf("  [times] tear-down %.0f ms (kill and checks %.0f ms)\n", mono_ms() - t0, t1 - t0);
    }

    std::pair<std::string, uint32_t> root_qdisc_a() {
        auto fd = netns_by_name(lab_->netns_a_name());
        std::pair<std::string, uint32_t> out;
        if (!fd) return out;
        auto ns = open_netns(*fd);
        if (!ns) return out;
        (void)in_netns(ns->get(), [&]() -> Result<void> {
            int idx = static_cast<int>(if_nametoindex(lab_->device_a().c_str()));
            auto q = root_qdisc(idx);
            if (q) out = {q->kind, q->handle};
            return ok();
        });
        return out;
    }

    // `tc qdisc replace dev A root SPEC` in namespace a (netem or tbf beside tardy), and a guard
    // that deletes it again when it goes, also after a failed assertion; null, with *err set,
    // when tc refused.
    std::shared_ptr<void> put_root_qdisc_a(const std::string& spec, std::string* err) {
        auto tc = [this](const std::string& args) {
            return run_cmd({"ip", "netns", "exec", lab_->netns_a_name(), "sh", "-c", "tc qdisc " + args});
        };
        auto put = tc("replace dev " + lab_->device_a() + " root " + spec);
        if (!put || put->status != 0) {
            *err = "tc qdisc replace ... root " + spec + ": " + (put ? put->err : put.error().message);
            return nullptr;
        }
        std::string del = "del dev " + lab_->device_a() + " root";
        return std::shared_ptr<void>(static_cast<void*>(this), [tc, del](void*) { (void)tc(del); });
    }

    CmdResult tardy(std::vector<std::string> args) {
        args.insert(args.begin(), build_dir() + "/tardy");
        auto r = run_cmd(args);
        return r ? *r : CmdResult{};
    }

    // The test drivers (tests/tools/), not shipped in tardy itself.
    CmdResult testkit(std::vector<std::string> args) {
        args.insert(args.begin(), build_dir() + "/tardy-testkit");
        auto r = run_cmd(args);
        return r ? *r : CmdResult{};
    }

    // inject on the experiment cohort; asserts success
    std::string inject(const std::vector<std::string>& faults, const std::string& name = "") {
        std::vector<std::string> args{"inject", "--cgroup", lab_->cgroup_rel(Sandbox::Cohort::Experiment)};
        args.insert(args.end(), faults.begin(), faults.end());
        if (!name.empty()) args.insert(args.end(), {"--name", name});
        double t0 = mono_ms();
        auto r = tardy(args);
        if (std::getenv("TARDY_TEST_TIMES")) std::printf("  [times] inject %.0f ms\n", mono_ms() - t0);
        EXPECT_EQ(r.status, 0) << r.err;
        std::string n = r.out;
        while (!n.empty() && n.back() == '\n') n.pop_back();
        return n;
    }

    pid_t agent_pid() {
        std::ifstream f(run_dir_ + "/agent.pid");
        pid_t p = 0;
        f >> p;
        return p;
    }

    nlohmann::json list_json() {
        auto r = tardy({"list", "--json"});
        EXPECT_EQ(r.status, 0) << r.err;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? nlohmann::json::object() : j;
    }

    ProbeResult probe(Sandbox::Cohort c, const std::string& proto = "udp", bool v6 = false, int count = 20,
                      int interval_ms = 2, int timeout_ms = 60, double stream_seconds = 3, int sndbuf = 0) {
        auto r = lab_->probe(c, proto, v6, count, interval_ms, timeout_ms, stream_seconds, sndbuf);
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
        return r ? *r : ProbeResult{};
    }

    // A 200 ms delay stopped while the experiment cohort sends UDP echoes every 5 ms (400 of
    // them, the stop 800 ms after they start): which came back delayed (>= 190 ms) and which
    // were lost, by whether they left before the stop began or after it returned.
    struct StopCrossing {
        int late = 0, late_after_stop = 0, sent_after_stop = 0, lost_before = 0, lost_after = 0;
    };
    StopCrossing echoes_across_stop(const std::string& name, const char* what) {
        ProbeResult r;
        std::thread client([&] { r = probe(Sandbox::Cohort::Experiment, "udp-pipe", false, 400, 5, 1500); });
        sleep_ms(800);
        double stopping = mono_ms();
        auto s = tardy({"stop", name});
        double stopped = mono_ms();
        client.join();
        EXPECT_EQ(s.status, 0) << s.err;
        EXPECT_EQ(r.sent_at_ms.size(), r.rtt_ms.size());
        StopCrossing x;
        for (size_t i = 0; i < r.rtt_ms.size() && i < r.sent_at_ms.size(); i++) {
            if (!r.rtt_ms[i]) {
                (r.sent_at_ms[i] < stopping ? x.lost_before : x.lost_after)++;
                continue;
            }
            x.late += *r.rtt_ms[i] >= 190;
            x.late_after_stop += *r.rtt_ms[i] >= 190 && r.sent_at_ms[i] > stopped;
            x.sent_after_stop += r.sent_at_ms[i] > stopped;
        }
        std::printf("  %zu echoes 5 ms apart from %.0f ms before the stop of %s, which took %.0f ms: %d came back "
                    "delayed, %d of the %d sent after the stop returned; lost: %d sent before the stop, %d after\n",
                    r.rtt_ms.size(), r.sent_at_ms.empty() ? 0.0 : stopping - r.sent_at_ms[0], what,
                    stopped - stopping, x.late, x.late_after_stop, x.sent_after_stop, x.lost_before, x.lost_after);
        return x;
    }

    // An injection `name` with a 1 s delay stopped 700 ms into UDP echoes every 5 ms from the
    // experiment cohort, so that about 140 packets wait in fq (or the ifb's) and the agent
    // drains; `draining()` must say so. Then, after a SIGKILL of the agent when `sigkill`,
    // `tardy kill`: it must exit 0 and say clean. The caller checks what is left.
    void kill_while_draining(const std::string& name, bool sigkill, const std::function<bool()>& draining) {
        std::thread client([&] { (void)probe(Sandbox::Cohort::Experiment, "udp-pipe", false, 300, 5, 1000); });
        sleep_ms(700);
        auto s = tardy({"stop", name});
        EXPECT_EQ(s.status, 0) << s.err;
        EXPECT_TRUE(draining()) << "the delay's queue was gone at once: no drain to interrupt";
        if (sigkill) {
            EXPECT_EQ(kill(agent_pid(), SIGKILL), 0);
        }
        auto k = tardy({"kill"});
        client.join();
        EXPECT_EQ(k.status, 0) << k.err;
        std::printf("%s", k.out.c_str());
        EXPECT_NE(k.out.find("clean"), std::string::npos) << k.out;
        EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 2000)) << "a program of ours outlived kill";
    }

    // "The fault is gone within ms": single UDP echoes polled until one is answered.
    bool answers_within(Sandbox::Cohort c, int ms) {
        return eventually(
            [&] {
                auto r = lab_->probe(c, "udp", false, 1, 1, 50);
                return r && r->answered() == 1;
            },
            ms, 1);
    }

    // A shell command run as a member of cohort c in namespace -a (joins the cgroup first:
    // `ip netns exec` remounts /sys). `cmd` goes inside single quotes.
    CmdResult in_cohort(Sandbox::Cohort c, const std::string& cmd) {
        std::string sh = "echo $$ > " + lab_->cgroup(c) + "/cgroup.procs && exec ip netns exec " +
                         lab_->netns_a_name() + " sh -c '" + cmd + "'";
        auto r = run_cmd({"sh", "-c", sh});
        return r ? *r : CmdResult{};
    }

    // A server started in namespace -b, its output dropped; killed by TearDown.
    void serve(const std::vector<std::string>& argv) {
        pid_t p = fork();
        if (p == 0) {
            std::vector<std::string> a{"ip", "netns", "exec", lab_->netns_b_name()};
            a.insert(a.end(), argv.begin(), argv.end());
            std::vector<char*> v;
            for (auto& x : a) v.push_back(x.data());
            v.push_back(nullptr);
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            execvp(v[0], v.data());
            _exit(127);
        }
        servers_.push_back(p);
    }

    void stop_servers() {
        for (pid_t p : servers_) {
            kill(p, SIGKILL);
            waitpid(p, nullptr, 0);
        }
        servers_.clear();
    }

    std::string name_, run_dir_, bpffs_;
    std::vector<pid_t> servers_;
    std::unique_ptr<Sandbox> lab_;
    std::pair<std::string, uint32_t> qdisc_before_;
};

constexpr auto kExp = Sandbox::Cohort::Experiment;
constexpr auto kCtl = Sandbox::Cohort::Control;

}  // namespace tardy::test
