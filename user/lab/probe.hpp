// Measuring clients and an echo server for the demo and the tests: a probe joins a cgroup
// and a network namespace, then times UDP echoes or TCP connects.
#pragma once

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
    std::string proto = "udp";  // udp | tcp (connect time) | stream (bulk TCP to port + 1)
    double seconds = 3;         // stream: how long to send
    int sndbuf = 0;             // stream: SO_SNDBUF in bytes, 0 for the kernel's autotuning
    std::string to;      // server address, IPv4 or IPv6
    int port = 7;
    int count = 20;

    int interval_ms = 20;
    int timeout_ms = 500;
};

// Makes one kind of socket call `count` times and counts the outcomes by errno name.
struct SockCallArgs {
    std::string cgroup, netns;
    std::string op = "connect";  // connect | sendto | bind | socket
    std::string to = "127.0.0.1";
    int port = 7;
    int count = 10;
    std::string family;  // for socket and bind without --to: "4" or "6"
};

// Times `count` write(2)s of one byte to /dev/null, `interval_ms` apart, from the cgroup.
struct WriteTimeArgs {
    std::string cgroup;
    int count = 20;
    int interval_ms = 10;
};

// Makes `count` open/read/write calls on a file and counts the outcomes by errno name.
struct FileCallArgs {
    std::string cgroup, op = "open", file;
    int count = 10;
};

struct EchoArgs {
    std::string netns;
    int port = 7;
};

struct ProbeResult {
    int sent = 0;
    std::vector<std::optional<double>> rtt_ms;  // nullopt: no answer within the timeout
    double stream_mbps = 0;  // stream: goodput in Mbit/s
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
void add_sockcall_options(CLI::App* app, SockCallArgs& a);
int run_sockcall(const SockCallArgs& a);  // prints {"OK": n, "ECONNREFUSED": m, ...}
void add_writetime_options(CLI::App* app, WriteTimeArgs& a);
void add_filecall_options(CLI::App* app, FileCallArgs& a);
int run_filecall(const FileCallArgs& a);
int run_writetime(const WriteTimeArgs& a);  // prints {"ms": [...]}
// Serves UDP and TCP echo on port and a TCP discard sink on port + 1 until SIGTERM; prints
// "ready" once listening.
int run_echo(const EchoArgs& a);

}  // namespace tardy
