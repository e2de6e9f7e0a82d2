// SPDX-License-Identifier: Apache-2.0
// Test drivers: small clients that make one kind of call from inside a cgroup (and network
// namespace) and report what happened as one JSON line. Built into build/tardy-testkit, never
// into the shipped binary.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace tardy {

// Makes one kind of socket call `count` times and counts the outcomes by errno name.
struct SockCallArgs {
    std::string cgroup, netns;
    // connect | connect-nb (non-blocking, then connect() again on the same socket to learn
    // the outcome, as hiredis does) | sendto | bind | socket
    std::string op = "connect";
    std::string to = "127.0.0.1";
    int port = 7;
    int count = 10;
    std::string family;  // for socket and bind without --to: "4" or "6"
    // sendto only: one socket for every send with IP_RECVERR/IPV6_RECVERR set, as glibc's
    // resolver does; the output adds "errqueue": errors queued for it after the sends.
    bool recverr = false;
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

void add_sockcall_options(CLI::App* app, SockCallArgs& a);
int run_sockcall(const SockCallArgs& a);  // prints {"OK": n, "ECONNREFUSED": m, ...}
void add_writetime_options(CLI::App* app, WriteTimeArgs& a);
void add_filecall_options(CLI::App* app, FileCallArgs& a);
int run_filecall(const FileCallArgs& a);
int run_writetime(const WriteTimeArgs& a);  // prints {"ms": [...]}

}  // namespace tardy
