// SPDX-License-Identifier: Apache-2.0
#include "drivers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lab/probe.hpp"
#include "model/sock_faults.hpp"
#include "sys/fd.hpp"

namespace tardy {

void add_sockcall_options(CLI::App* app, SockCallArgs& a) {
    app->add_option("--cgroup", a.cgroup);
    app->add_option("--netns", a.netns);
    app->add_option("--op", a.op);
    app->add_option("--to", a.to);
    app->add_option("--port", a.port);
    app->add_option("--count", a.count);
    app->add_flag("--recverr", a.recverr);
}

namespace {

std::string errname(int err) {
    const char* n = strerrorname_np(err);
    return n ? n : std::to_string(err);
}

// A non-blocking connect, then connect() again once the socket is writable (or 1 s has
// passed): what that second call says, the way hiredis learns the outcome.
std::string connect_nonblocking(int s, const sockaddr* to, socklen_t len) {
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl | O_NONBLOCK);
    if (connect(s, to, len) == 0) return "OK";
    if (errno != EINPROGRESS) return errname(errno);
    pollfd p{s, POLLOUT, 0};
    (void)poll(&p, 1, 1000);
    if (connect(s, to, len) == 0 || errno == EISCONN) return "OK";
    return errname(errno);
}

// One socket, IP_RECVERR on, `count` sends; then what its error queue holds.
nlohmann::json sendto_recverr(const sockaddr_storage& ss, socklen_t len, int count) {
    nlohmann::json counts = nlohmann::json::object();
    Fd s(socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return {{errname(errno), count}};
    int one = 1;
    if (ss.ss_family == AF_INET6)
        setsockopt(s.get(), IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
    else
        setsockopt(s.get(), IPPROTO_IP, IP_RECVERR, &one, sizeof one);
    for (int i = 0; i < count; i++) {
        char b = 'x';
        ssize_t rc = sendto(s.get(), &b, 1, 0, reinterpret_cast<const sockaddr*>(&ss), len);
        std::string key = rc < 0 ? errname(errno) : "OK";
        counts[key] = counts.value(key, 0) + 1;
    }
    usleep(50 * 1000);
    int queued = 0;
    for (;;) {
        char buf[64], ctl[512];
        iovec iov{buf, sizeof buf};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl;
        m.msg_controllen = sizeof ctl;
        if (recvmsg(s.get(), &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
        queued++;
    }
    counts["errqueue"] = queued;
    return counts;
}

}  // namespace

int run_sockcall(const SockCallArgs& a) {
    if (auto j = join_cgroup_and_netns(a.cgroup, a.netns); !j) {
        std::fprintf(stderr, "tardy sockcall: %s\n", j.error().message.c_str());
        return 1;
    }
    socklen_t len = 0;
    auto ss = make_addr(a.to, a.port, len);
    if (!ss) {
        std::fprintf(stderr, "tardy sockcall: %s\n", ss.error().message.c_str());
        return 1;
    }
    if (a.op == "sendto" && a.recverr) {
        std::printf("%s\n", sendto_recverr(*ss, len, a.count).dump().c_str());
        return 0;
    }
    nlohmann::json counts = nlohmann::json::object();
    for (int i = 0; i < a.count; i++) {
        int type = a.op == "sendto" ? SOCK_DGRAM : SOCK_STREAM;
        int rc = 0, err = 0;
        Fd s(socket(ss->ss_family, type | SOCK_CLOEXEC, 0));
        if (!s.valid()) {
            rc = -1;
            err = errno;
        } else if (a.op == "connect") {
            rc = connect(s.get(), reinterpret_cast<sockaddr*>(&*ss), len);
            err = errno;
        } else if (a.op == "connect-nb") {
            std::string key = connect_nonblocking(s.get(), reinterpret_cast<sockaddr*>(&*ss), len);
            counts[key] = counts.value(key, 0) + 1;
            continue;
        } else if (a.op == "sendto") {
            char b = 'x';
            rc = static_cast<int>(sendto(s.get(), &b, 1, 0, reinterpret_cast<sockaddr*>(&*ss), len));
            err = errno;
        } else if (a.op == "bind") {
            int one = 1;
            setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            rc = bind(s.get(), reinterpret_cast<sockaddr*>(&*ss), len);
            err = errno;
        }
        std::string key = rc < 0 ? errname(err) : "OK";
        counts[key] = counts.value(key, 0) + 1;
    }
    std::printf("%s\n", counts.dump().c_str());
    return 0;
}

void add_writetime_options(CLI::App* app, WriteTimeArgs& a) {
    app->add_option("--cgroup", a.cgroup);
    app->add_option("--count", a.count);
    app->add_option("--interval-ms", a.interval_ms);
}

int run_writetime(const WriteTimeArgs& a) {
    if (auto j = join_cgroup_and_netns(a.cgroup, ""); !j) {
        std::fprintf(stderr, "tardy writetime: %s\n", j.error().message.c_str());
        return 1;
    }
    Fd f(open("/dev/null", O_WRONLY | O_CLOEXEC));
    nlohmann::json ms = nlohmann::json::array();
    double start = now_ms();
    for (int i = 0; i < a.count; i++) {
        sleep_until_ms(start + static_cast<double>(i) * a.interval_ms);
        double t0 = now_ms();
        (void)!write(f.get(), "x", 1);
        ms.push_back(now_ms() - t0);
    }
    std::printf("%s\n", nlohmann::json{{"ms", ms}}.dump().c_str());
    return 0;
}

void add_filecall_options(CLI::App* app, FileCallArgs& a) {
    app->add_option("--cgroup", a.cgroup);
    app->add_option("--op", a.op);
    app->add_option("--file", a.file)->required();
    app->add_option("--count", a.count);
}

int run_filecall(const FileCallArgs& a) {
    if (auto j = join_cgroup_and_netns(a.cgroup, ""); !j) {
        std::fprintf(stderr, "tardy filecall: %s\n", j.error().message.c_str());
        return 1;
    }
    nlohmann::json counts = nlohmann::json::object();
    auto count = [&](bool okay, int err) {
        std::string key = okay ? "OK" : (strerrorname_np(err) ? strerrorname_np(err) : std::to_string(err));
        counts[key] = counts.value(key, 0) + 1;
    };
    for (int i = 0; i < a.count; i++) {
        Fd f(open(a.file.c_str(), O_RDWR | O_CLOEXEC));
        int err = errno;
        if (a.op == "open" || !f.valid()) {
            count(f.valid(), err);
            continue;
        }
        char b = 'x';
        ssize_t n = a.op == "read" ? pread(f.get(), &b, 1, 0) : pwrite(f.get(), &b, 1, 0);
        count(n >= 0, errno);
    }
    std::printf("%s\n", counts.dump().c_str());
    return 0;
}

}  // namespace tardy
