// SPDX-License-Identifier: Apache-2.0
// A disposable network lab for the demo and the tests: namespaces <name>-a and <name>-b
// joined by a veth pair (IPv4 198.18.0.0/24 from the benchmarking range and IPv6 ULA,
// reachable only inside the pair), an echo server in -b, and two cgroups of clients in -a:
// "exp" (the experiment cohort) and "ctl" (the control cohort), each with an idle resident
// process so its network namespace can be discovered. Everything is removed by the
// destructor, also after a failure half way.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "lab/probe.hpp"

namespace tardy {

class Sandbox {
public:
    struct Options {
        std::string name;      // short and unique, e.g. "td12345" (veth names are <name>a/<name>b)
        std::string self_exe;  // the tardy binary: runs the echo server and the probes
        int port = 7007;
    };
    static Result<std::unique_ptr<Sandbox>> create(const Options& o);
    ~Sandbox();

    enum class Cohort { Experiment, Control };
    std::string cgroup(Cohort c) const { return c == Cohort::Experiment ? exp_ : ctl_; }
    std::string cgroup_rel(Cohort c) const;
    std::string netns_a() const { return "/run/netns/" + o_.name + "-a"; }
    std::string netns_a_name() const { return o_.name + "-a"; }
    std::string netns_b_name() const { return o_.name + "-b"; }
    std::string device_a() const { return o_.name + "a"; }
    std::string device_b() const { return o_.name + "b"; }
    std::string server(bool ipv6) const { return ipv6 ? "fd00:7a7d::2" : "198.18.0.2"; }
    int port() const { return o_.port; }

    // Runs `tardy __probe` as a member of the cohort, from namespace -a.
    Result<ProbeResult> probe(Cohort c, const std::string& proto, bool ipv6, int count, int interval_ms,
                              int timeout_ms, double stream_seconds = 3, int stream_sndbuf = 0) const;

private:
    explicit Sandbox(Options o) : o_(std::move(o)) {}
    Result<void> build();
    Options o_;
    std::string root_, exp_, ctl_, mount_;
    std::vector<pid_t> pids_;  // echo server and residents
    bool made_ns_a_ = false, made_ns_b_ = false;
};

// Kills every process in a cgroup tree and removes its directories, deepest first.
void remove_cgroup_tree(const std::string& path);

}  // namespace tardy
