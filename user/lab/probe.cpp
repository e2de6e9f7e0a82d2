// SPDX-License-Identifier: Apache-2.0
#include "lab/probe.hpp"

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

#include "sys/fd.hpp"

namespace tardy {

double now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Result<sockaddr_storage> make_addr(const std::string& host, int port, socklen_t& len) {
    sockaddr_storage ss{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof *v6;
    } else {
        return Error::user("'" + host + "' is not an IPv4 or IPv6 address");
    }
    return ss;
}

namespace {

// An echo of seq. Answers to earlier probes read meanwhile are skipped; those to a probe
// already answered are counted in *dups (a request the network duplicated: the server
// answered each copy).
std::optional<double> udp_once(int fd, uint32_t seq, int timeout_ms, const std::vector<std::optional<double>>& done,
                               int* dups) {
    double t0 = now_ms();
    if (send(fd, &seq, sizeof seq, 0) != sizeof seq) return std::nullopt;
    for (;;) {
        int left = static_cast<int>(timeout_ms - (now_ms() - t0));
        if (left <= 0) return std::nullopt;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0) return std::nullopt;
        uint32_t got = 0;
        bool whole = recv(fd, &got, sizeof got, 0) == sizeof got;
        if (whole && got == seq) return now_ms() - t0;
        // an answer to an earlier probe (timed out, or answered before): keep waiting for ours
        if (whole && got >= 1 && got < seq && done[got - 1]) ++*dups;
    }
}

// Echoes sent interval_ms apart without waiting for answers (udp-pipe): each answer is
// matched by its sequence number, and the run ends when all are answered or timeout_ms
// after the last request. A lost echo costs no timeout of its own (300 echoes at 30% loss
// with a 250 ms timeout: 0.85 s, not 23 s one by one).
void udp_pipelined(int fd, const ProbeArgs& a, ProbeResult& r) {
    r.rtt_ms.assign(a.count, std::nullopt);
    std::vector<double> sent(a.count, 0);
    const double start = now_ms();
    int next = 0, got_all = 0;
    for (;;) {
        double now = now_ms();
        while (next < a.count && now >= start + next * a.interval_ms) {
            uint32_t seq = static_cast<uint32_t>(next + 1);
            sent[next] = now;
            (void)!send(fd, &seq, sizeof seq, 0);
            r.sent++;
            next++;
            now = now_ms();
        }
        // Every answer already queued is read before the deadline is judged: a probe that
        // was not scheduled for a while must not count answers waiting for it as lost.
        uint32_t got = 0;
        while (recv(fd, &got, sizeof got, MSG_DONTWAIT) == sizeof got) {
            if (got < 1 || got > static_cast<uint32_t>(next)) continue;
            auto& slot = r.rtt_ms[got - 1];
            if (slot) {
                r.duplicates++;
            } else {
                slot = now_ms() - sent[got - 1];
                got_all++;
            }
        }
        if (next == a.count && (got_all == a.count || now_ms() >= sent[a.count - 1] + a.timeout_ms)) {
            r.sent_at_ms = sent;
            return;
        }
        now = now_ms();
        double until = next < a.count ? start + next * a.interval_ms : sent[a.count - 1] + a.timeout_ms;
        pollfd p{fd, POLLIN, 0};
        (void)poll(&p, 1, std::max(0, static_cast<int>(std::ceil(until - now))));
    }
}

std::optional<double> tcp_once(const sockaddr_storage& ss, socklen_t len, int timeout_ms) {
    Fd s(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s.valid()) return std::nullopt;
    double t0 = now_ms();
    if (connect(s.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS)
        return std::nullopt;
    pollfd p{s.get(), POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) return std::nullopt;
    return now_ms() - t0;
}

// Bulk TCP for `seconds`; goodput in Mbit/s, counted as bytes the sink accepted.
Result<double> tcp_stream(sockaddr_storage ss, socklen_t len, double seconds, int sndbuf) {
    auto* port = ss.ss_family == AF_INET ? &reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                         : &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port;
    *port = htons(ntohs(*port) + 1);
    Fd s(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.valid() && sndbuf > 0) setsockopt(s.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (!s.valid() || connect(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
        return Error::sys("connect to the sink", errno);
    static char buf[65536];
    double t0 = now_ms(), end = t0 + seconds * 1000;
    uint64_t sent = 0;
    while (now_ms() < end) {
        pollfd p{s.get(), POLLOUT, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = send(s.get(), buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) sent += n;
        else if (errno != EAGAIN) return Error::sys("send to the sink", errno);
    }
    int unsent = 0;
    ioctl(s.get(), SIOCOUTQ, &unsent);  // still in our send queue: not delivered
    double secs = (now_ms() - t0) / 1000;
    return (static_cast<double>(sent) - unsent) * 8 / 1e6 / secs;
}

}  // namespace

void sleep_until_ms(double t) {
    double d = t - now_ms();
    if (d <= 0) return;
    timespec ts{static_cast<time_t>(d / 1000), static_cast<long>(std::fmod(d, 1000.0) * 1e6)};
    nanosleep(&ts, nullptr);
}

int ProbeResult::answered() const {
    return static_cast<int>(std::count_if(rtt_ms.begin(), rtt_ms.end(), [](auto& r) { return r.has_value(); }));
}

double ProbeResult::loss_ratio() const { return sent ? 1.0 - static_cast<double>(answered()) / sent : 0; }

std::optional<double> ProbeResult::median_ms() const {
    std::vector<double> v;
    for (const auto& r : rtt_ms)
        if (r) v.push_back(*r);
    if (v.empty()) return std::nullopt;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

Result<void> join_cgroup_and_netns(const std::string& cgroup, const std::string& netns) {
    if (!cgroup.empty()) {
        std::ofstream f(cgroup + "/cgroup.procs");
        f << getpid() << std::flush;
        if (!f) return Error::sys("join cgroup " + cgroup, errno);
    }
    if (!netns.empty()) {
        Fd ns(open(netns.c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns.valid() || setns(ns.get(), CLONE_NEWNET) != 0) return Error::sys("enter netns " + netns, errno);
    }
    return ok();
}

Result<ProbeResult> probe(const ProbeArgs& a) {
    TARDY_TRY(join_cgroup_and_netns(a.cgroup, a.netns));
    socklen_t len = 0;
    auto ss = make_addr(a.to, a.port, len);
    if (!ss) return ss.error();
    ProbeResult r;
    if (a.proto == "stream") {
        auto m = tcp_stream(*ss, len, a.seconds, a.sndbuf);
        if (!m) return m.error();
        r.stream_mbps = *m;
        return r;
    }
    Fd udp;
    if (a.proto == "udp" || a.proto == "udp-pipe") {
        udp = Fd(socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!udp.valid() || connect(udp.get(), reinterpret_cast<sockaddr*>(&*ss), len) != 0)
            return Error::sys("udp socket to " + a.to, errno);
    } else if (a.proto != "tcp") {
        return Error::user("--proto must be udp, udp-pipe, tcp or stream");
    }
    if (a.proto == "udp-pipe") {
        udp_pipelined(udp.get(), a, r);
        return r;
    }
    double start = now_ms();
    for (int i = 0; i < a.count; i++) {
        sleep_until_ms(start + static_cast<double>(i) * a.interval_ms);
        r.sent++;
        r.rtt_ms.push_back(a.proto == "udp"
                               ? udp_once(udp.get(), static_cast<uint32_t>(i + 1), a.timeout_ms, r.rtt_ms, &r.duplicates)
                               : tcp_once(*ss, len, a.timeout_ms));
    }
    return r;
}

void add_probe_options(CLI::App* app, ProbeArgs& a) {
    app->add_option("--cgroup", a.cgroup);
    app->add_option("--netns", a.netns);
    app->add_option("--proto", a.proto);
    app->add_option("--to", a.to)->required();
    app->add_option("--port", a.port);
    app->add_option("--count", a.count);
    app->add_option("--interval-ms", a.interval_ms);
    app->add_option("--timeout-ms", a.timeout_ms);
    app->add_option("--seconds", a.seconds);
    app->add_option("--sndbuf", a.sndbuf);
}

void add_echo_options(CLI::App* app, EchoArgs& a) {
    app->add_option("--netns", a.netns);
    app->add_option("--port", a.port);
}

int run_probe(const ProbeArgs& a) {
    auto r = probe(a);
    if (!r) {
        std::fprintf(stderr, "tardy probe: %s\n", r.error().message.c_str());
        return 1;
    }
    nlohmann::json rtts = nlohmann::json::array();
    for (const auto& x : r->rtt_ms) rtts.push_back(x ? nlohmann::json(*x) : nlohmann::json(nullptr));
    std::printf("%s\n", nlohmann::json{{"sent", r->sent}, {"answered", r->answered()}, {"rtt_ms", rtts},
                                       {"sent_at_ms", r->sent_at_ms}, {"stream_mbps", r->stream_mbps},
                                       {"duplicates", r->duplicates}}
                             .dump()
                             .c_str());
    return 0;
}

int run_echo(const EchoArgs& a) {
    if (auto j = join_cgroup_and_netns("", a.netns); !j) {
        std::fprintf(stderr, "tardy echo: %s\n", j.error().message.c_str());
        return 1;
    }
    int zero = 0, one = 1;
    sockaddr_in6 any{};
    any.sin6_family = AF_INET6;
    any.sin6_port = htons(a.port);
    any.sin6_addr = in6addr_any;
    Fd u(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    Fd t(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    Fd sink(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    for (int fd : {u.get(), t.get(), sink.get()}) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 too
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        any.sin6_port = htons(fd == sink.get() ? a.port + 1 : a.port);
        if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) {
            std::fprintf(stderr, "tardy echo: bind port %d: %s\n", ntohs(any.sin6_port), std::strerror(errno));
            return 1;
        }
    }
    listen(t.get(), 512);
    listen(sink.get(), 16);
    signal(SIGPIPE, SIG_IGN);
    std::printf("ready\n");
    std::fflush(stdout);
    std::vector<Fd> conns;
    std::vector<int> is_sink;
    for (;;) {
        std::vector<pollfd> fds{{u.get(), POLLIN, 0}, {t.get(), POLLIN, 0}, {sink.get(), POLLIN, 0}};
        for (const auto& c : conns) fds.push_back({c.get(), POLLIN, 0});
        if (poll(fds.data(), fds.size(), -1) < 0) continue;
        if (fds[0].revents) {
            char buf[2048];
            sockaddr_storage from{};
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(u.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n > 0) sendto(u.get(), buf, n, 0, reinterpret_cast<sockaddr*>(&from), fl);
        }
        for (int l : {1, 2}) {
            if (!fds[l].revents) continue;
            int c = accept4(fds[l].fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c >= 0) {
                conns.emplace_back(c);
                is_sink.push_back(l == 2);
            }
        }
        for (size_t i = 3; i < fds.size(); i++) {
            if (!fds[i].revents) continue;
            static char buf[65536];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                if (!is_sink[i - 3]) (void)!write(fds[i].fd, buf, n);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                conns[i - 3].reset();
            }
        }
        for (size_t i = conns.size(); i-- > 0;) {
            if (conns[i].valid()) continue;
            conns.erase(conns.begin() + static_cast<long>(i));
            is_sink.erase(is_sink.begin() + static_cast<long>(i));
        }
    }
}

}  // namespace tardy
