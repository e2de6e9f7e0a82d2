// SPDX-License-Identifier: Apache-2.0
// Tools of vm_shape_test.cpp: sample statistics (percentiles, the two-sample
// Kolmogorov-Smirnov distance, runs of losses) and the pipelined UDP echo client and server
// that measure each request's one-way delay (see vm_shape_test.cpp).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "sys/process.hpp"

namespace tardy::test::vmshape {

using Rtts = std::vector<std::optional<double>>;

inline double pct(std::vector<double> v, int p) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, v.size() * static_cast<size_t>(p) / 100)];
}

inline std::vector<double> answered(const Rtts& r, double minus = 0) {
    std::vector<double> v;
    for (const auto& x : r)
        if (x) v.push_back(*x - minus);
    return v;
}

// The two-sample Kolmogorov-Smirnov distance: the largest gap between the empirical
// cumulative distribution functions.
inline double ks_distance(std::vector<double> a, std::vector<double> b) {
    if (a.empty() || b.empty()) return 1;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    size_t i = 0, j = 0;
    double d = 0;
    while (i < a.size() && j < b.size()) {
        double x = std::min(a[i], b[j]);
        while (i < a.size() && a[i] <= x) i++;
        while (j < b.size() && b[j] <= x) j++;
        d = std::max(d, std::abs(static_cast<double>(i) / a.size() - static_cast<double>(j) / b.size()));
    }
    return d;
}

// Loss rate, and mean length of runs of consecutive lost echoes (and how many runs, and
// the longest with the index of its first echo: a failure's first clue).
struct Runs {
    double loss = 0, mean_run = 0;
    int lost = 0, runs = 0, longest = 0, longest_at = -1;
};
inline Runs loss_runs(const Rtts& r) {
    Runs out;
    int run = 0;
    for (size_t i = 0; i < r.size(); i++) {
        if (r[i]) {
            run = 0;
            continue;
        }
        out.lost++;
        out.runs += run == 0;
        if (++run > out.longest) {
            out.longest = run;
            out.longest_at = static_cast<int>(i) + 1 - run;
        }
    }
    out.loss = r.empty() ? 0 : static_cast<double>(out.lost) / r.size();
    out.mean_run = out.runs ? static_cast<double>(out.lost) / out.runs : 0;
    return out;
}

// CLOCK_REALTIME in ms: the clock of SO_TIMESTAMPNS, the same in every process of the guest.
inline double real_ms() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// What the echoes carry: the client's sequence number, and in the answer the time the kernel
// received the request at the server (SO_TIMESTAMPNS, CLOCK_REALTIME).
struct EchoMsg {
    uint32_t seq;
    uint32_t pad;
    int64_t rx_ns;
};

// The echo server of these tests, in namespace -b: answers each request with the kernel's
// receive time of it, so that the request's one-way delay is measured without the server's
// or the client's wake-up, which under software emulation cost from 0.5 to tens of ms.
[[noreturn]] inline void stamp_server(int ready, const std::string& netns, int port) {
    if (!join_cgroup_and_netns("", netns)) _exit(2);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1, buf = 32 << 20;  // a stalled server holds a whole run's requests (echo_child)
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(3);
    (void)!write(ready, "r", 1);
    close(ready);
    for (;;) {
        EchoMsg m{};
        sockaddr_in from{};
        char ctl[256];
        iovec iov{&m, sizeof m};
        msghdr h{};
        h.msg_name = &from;
        h.msg_namelen = sizeof from;
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        h.msg_control = ctl;
        h.msg_controllen = sizeof ctl;
        if (recvmsg(fd, &h, 0) < static_cast<ssize_t>(sizeof(uint32_t))) continue;
        m.rx_ns = -1;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts{};
                std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
                m.rx_ns = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
            }
        sendto(fd, &m, sizeof m, 0, reinterpret_cast<sockaddr*>(&from), h.msg_namelen);
    }
}

// The child of a pipelined echo run: joins the cohort, sends `count` echoes interval_ms
// apart, and writes two doubles per echo to `out`: the round trip and the request's one-way
// delay (-1 both: no answer).
[[noreturn]] inline void echo_child(int out, const std::string& cgroup, const std::string& netns, const std::string& to,
                             int port, int count, double interval_ms, int timeout_ms, std::vector<double>& sent,
                             std::vector<double>& res) {
    if (!join_cgroup_and_netns(cgroup, netns)) _exit(2);
    socklen_t len = 0;
    auto ss = make_addr(to, port, len);
    if (!ss) _exit(3);
    int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&*ss), len) != 0) _exit(4);
    // Room for every answer of a run (20,000 at about 2.3 KB of truesize each): a client the
    // emulator does not run for half a second otherwise overflows its receive buffer (4 MB
    // did: UdpRcvbufErrors 821 and 8202 in two of eight runs, runs of 871 and 8606 echoes
    // lost that tardy never dropped).
    int buf = 32 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    std::vector<double> sent_real(count, 0);
    int next = 0, got = 0;
    double start = now_ms() + 1;
    for (;;) {
        double now = now_ms();
        while (next < count && now >= start + next * interval_ms) {
            EchoMsg m{static_cast<uint32_t>(next), 0, 0};
            sent_real[next] = real_ms();
            sent[next] = now_ms();
            (void)!send(fd, &m, sizeof m, 0);
            next++;
            now = now_ms();
        }
        // Every answer already queued is read before the deadline is judged: a client the
        // emulator did not run for a while must not count answers waiting for it as lost.
        EchoMsg m{};
        while (recv(fd, &m, sizeof m, MSG_DONTWAIT) == sizeof m) {
            double t = now_ms();
            if (m.seq < static_cast<uint32_t>(next) && res[2 * m.seq] < 0) {
                res[2 * m.seq] = t - sent[m.seq];
                res[2 * m.seq + 1] = m.rx_ns > 0 ? m.rx_ns / 1e6 - sent_real[m.seq] : -1;
                got++;
            }
        }
        if (got == count) break;
        now = now_ms();
        double until = next < count ? start + next * interval_ms : sent[count - 1] + timeout_ms;
        if (next == count && now >= until) break;
        double wait = std::max(0.0, until - now);
        timespec ts{static_cast<time_t>(wait / 1000), static_cast<long>(std::fmod(wait, 1000.0) * 1e6)};
        pollfd p{fd, POLLIN, 0};
        (void)ppoll(&p, 1, &ts, nullptr);
    }
    const char* p = reinterpret_cast<const char*>(res.data());
    size_t left = res.size() * sizeof(double);
    while (left > 0) {
        ssize_t n = write(out, p, left);
        if (n <= 0) _exit(5);
        p += n;
        left -= static_cast<size_t>(n);
    }
    _exit(0);
}

struct EchoRun {
    pid_t pid = -1;
    int fd = -1;
    int count = 0, timeout_ms = 0;
};

// Runs a shell command line, returns its result (status -1 if it could not start).
inline CmdResult sh(const std::string& cmd) {
    auto r = run_cmd({"sh", "-c", cmd});
    return r ? *r : CmdResult{};
}

}  // namespace tardy::test::vmshape
