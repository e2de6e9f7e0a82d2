// SPDX-License-Identifier: Apache-2.0
// Measuring clients and an echo server for the demo and the tests: a probe joins a cgroup
// and a network namespace, then times UDP echoes or TCP connects.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>
#include <vector>

#include "model/error.hpp"

namespace CLI {
class App;
}

namespace tardy {

struct ProbeArgs {
    std::string cgroup;  // absolute cgroup directory to join first (optional)
    std::string netns;   // network namespace file to enter (optional)
    // udp (one echo at a time) | udp-pipe (echoes interval_ms apart, answers matched as they
    // come) | tcp (connect time) | stream (bulk TCP to port + 1)
    std::string proto = "udp";
    double seconds = 3;         // stream: how long to send
    int sndbuf = 0;             // stream: SO_SNDBUF in bytes, 0 for the kernel's autotuning
    std::string to;      // server address, IPv4 or IPv6
    int port = 7;
    int count = 20;

    int interval_ms = 20;
    int timeout_ms = 500;
};

struct EchoArgs {
    std::string netns;
    int port = 7;
};

struct ProbeResult {
    int sent = 0;
    std::vector<std::optional<double>> rtt_ms;  // nullopt: no answer within the timeout
    std::vector<double> sent_at_ms;             // udp-pipe: when each echo left (CLOCK_MONOTONIC, ms)
    double stream_mbps = 0;  // stream: goodput in Mbit/s
    int duplicates = 0;      // udp: answers to a probe already answered (the request arrived twice)
    int answered() const;
    double loss_ratio() const;
    std::optional<double> median_ms() const;
};

// Runs in the calling process: it joins the cgroup and namespace for good.
Result<ProbeResult> probe(const ProbeArgs& a);
Result<void> join_cgroup_and_netns(const std::string& cgroup, const std::string& netns);

void add_probe_options(CLI::App* app, ProbeArgs& a);
void add_echo_options(CLI::App* app, EchoArgs& a);
int run_probe(const ProbeArgs& a);  // prints the result as one JSON line
// Serves UDP and TCP echo on port and a TCP discard sink on port + 1 until SIGTERM; prints
// "ready" once listening.
int run_echo(const EchoArgs& a);

// Shared with the test drivers (tests/tools/).
Result<sockaddr_storage> make_addr(const std::string& host, int port, socklen_t& len);
double now_ms();
void sleep_until_ms(double t);

}  // namespace tardy
