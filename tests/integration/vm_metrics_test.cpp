// SPDX-License-Identifier: Apache-2.0
// Cohort metrics against a real delay (issue 11), on a stock kernel with sch_fq: tardy's
// connect latency per cohort, measured in the kernel, against what the clients measured
// themselves at the same moment.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "../common/harness.hpp"
#include "sys/process.hpp"

using namespace tardy;
using namespace tardy::test;
using nlohmann::json;

namespace {

class VmCohortLab : public Lab {
protected:
    double client_median(Sandbox::Cohort c, int count) {
        auto r = probe(c, "tcp", false, count, 10, 3000);
        std::vector<double> v;
        for (const auto& x : r.rtt_ms)
            if (x) v.push_back(*x);
        EXPECT_EQ(static_cast<int>(v.size()), count);
        if (v.empty()) return -1;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }

    // How late the emulator wakes a task that waited idle for idle_ms, as a client blocked in
    // connect() behind a delay waits: a thread sends a datagram on loopback after idle_ms to a
    // socket on which this thread waits, and the wait's end is compared with the kernel's
    // receive stamp of the datagram (SO_TIMESTAMPNS). Median of `count` rounds, in ms.
    static double wake_after_idle(int count, int idle_ms) {
        Fd rx(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), tx(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        int one = 1;
        if (!rx.valid() || !tx.valid() || setsockopt(rx.get(), SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0 ||
            bind(rx.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            getsockname(rx.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
            return -1;
        std::vector<double> v;
        for (int i = 0; i < count; i++) {
            std::thread sender([&] {
                sleep_ms(idle_ms);
                (void)!sendto(tx.get(), "w", 1, 0, reinterpret_cast<sockaddr*>(&a), len);
            });
            char b[8], ctl[128];
            iovec iov{b, sizeof b};
            msghdr h{};
            h.msg_iov = &iov;
            h.msg_iovlen = 1;
            h.msg_control = ctl;
            h.msg_controllen = sizeof ctl;
            ssize_t n = recvmsg(rx.get(), &h, 0);
            timespec now{};
            clock_gettime(CLOCK_REALTIME, &now);
            sender.join();
            for (cmsghdr* c = n > 0 ? CMSG_FIRSTHDR(&h) : nullptr; c; c = CMSG_NXTHDR(&h, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    timespec ts{};
                    std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    v.push_back((now.tv_sec - ts.tv_sec) * 1e3 + (now.tv_nsec - ts.tv_nsec) / 1e6);
                }
        }
        if (v.empty()) return -1;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }
};

// --delay 50ms on the experiment: each cohort's connect p50 from `tardy stats` within 2 ms of
// the median its own client measured (the bound), 50 ms apart. Under emulation the
// client's own wake-up after the kernel has established the connection costs about a
// millisecond more than on hardware: measured first, with no fault (`observe`), and allowed
// on top, as VmLab allows the emulator's round trip; for the experiment, the wake-up after a
// 50 ms idle wait (wake_after_idle) if that is larger. The clients run one after the other: under
// 6.12's single-threaded TCG two clients at once share one host thread, and a CI run saw the
// control's client wake 6 ms after the kernel had its connection (tardy 1.16 ms, client
// 7.11 ms). The emulator's stalls come and go, so a measurement is repeated with a fresh
// injection up to three times; tardy's numbers must match the clients' in one of them, with
// the same bound, and every attempt is printed.
TEST_F(VmCohortLab, ConnectLatencyMatchesTheClients) {
    auto fq = qdisc_kind_available("fq");
    ASSERT_TRUE(fq && *fq) << "needs sch_fq: run it in the VM";
    auto both = [&](double& exp, double& ctl) {
        exp = client_median(kExp, 21);
        ctl = client_median(kCtl, 21);
    };
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", lab_->cgroup_rel(kExp), "--cgroup",
                          lab_->cgroup_rel(kCtl), "--for", "4s", "--json"},
                         &out);
    ASSERT_TRUE(obs) << obs.error().message;
    ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).size() == 1; }, 20000))
        << [&] { std::ifstream f(run_dir_ + "/agent.log"); return std::string((std::istreambuf_iterator<char>(f)), {}); }();
    double exp0 = 0, ctl0 = 0;
    both(exp0, ctl0);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) text.append(buf, n);
    close(out);
    waitpid(*obs, nullptr, 0);
    auto b = json::parse(text, nullptr, false);
    ASSERT_FALSE(b.is_discarded()) << text;
    const double wake_exp0 = std::max(0.0, exp0 - b["cohorts"][0]["tcp"]["connect_ms"]["p50"].get<double>());
    double wake_exp = wake_exp0;
    double wake_ctl = std::max(0.0, ctl0 - b["cohorts"][1]["tcp"]["connect_ms"]["p50"].get<double>());

    json s;
    double exp = 0, ctl = 0;
    bool matched = false;
    for (int attempt = 1; attempt <= 3 && !matched; ++attempt) {
        std::string name = "slow" + std::to_string(attempt);
        // The experiment's client waits 50 ms in connect() behind the delay, and a task woken
        // after an idle wait can take the emulator longer than with no fault (a CI run on 6.1:
        // clients 55.8-56.9 ms, tardy 51.46 ms in three attempts, against 0.85 ms of wake-up
        // with no fault): measured again in each attempt, and the larger allowed.
        double wake_idle = wake_after_idle(21, 50);
        wake_exp = std::max(wake_exp0, wake_idle);
        inject({"--delay", "50ms", "--control", lab_->cgroup_rel(kCtl)}, name);
        both(exp, ctl);
        auto r = tardy({"stats", name, "--json"});
        ASSERT_EQ(r.status, 0) << r.err;
        s = json::parse(r.out, nullptr, false);
        ASSERT_FALSE(s.is_discarded()) << r.out;
        ASSERT_EQ(s["cohorts"].size(), 2u) << r.out;
        double te = s["cohorts"][0]["tcp"]["connect_ms"]["p50"].get<double>();
        double tc = s["cohorts"][1]["tcp"]["connect_ms"]["p50"].get<double>();
        std::printf("  attempt %d: connect median: client experiment %.2f ms, control %.2f ms; tardy p50 %.2f ms, "
                    "%.2f ms; the clients' wake-up with no fault: %.2f ms, %.2f ms; after a 50 ms idle wait: %.2f ms\n",
                    attempt, exp, ctl, te, tc, wake_exp0, wake_ctl, wake_idle);
        matched = std::abs(te - exp) <= 2.0 + wake_exp && std::abs(tc - ctl) <= 2.0 + wake_ctl;
        if (!matched) {
            ASSERT_EQ(tardy({"stop", name}).status, 0);
        }
    }
    const json &e = s["cohorts"][0]["tcp"], &k = s["cohorts"][1]["tcp"];
    EXPECT_EQ(e["connects"], 21u);
    EXPECT_EQ(k["connects"], 21u);
    EXPECT_EQ(e["connect_ms"]["count"], 21u);
    EXPECT_GE(exp, 50.0);
    EXPECT_NEAR(e["connect_ms"]["p50"].get<double>(), exp, 2.0 + wake_exp) << s.dump(2);
    EXPECT_NEAR(k["connect_ms"]["p50"].get<double>(), ctl, 2.0 + wake_ctl) << s.dump(2);
    EXPECT_GT(s["cohorts"][0]["tardy"]["delayed"].get<uint64_t>(), 0u);
    EXPECT_EQ(s["cohorts"][1]["tardy"]["delayed"], 0u);
    // The round trip the kernel sampled shows the delay too, in the experiment only.
    EXPECT_GE(e["rtt_ms"]["p50"].get<double>(), 45.0) << s.dump(2);
    EXPECT_LT(k["rtt_ms"]["p50"].get<double>(), 20.0) << s.dump(2);
}

}  // namespace
