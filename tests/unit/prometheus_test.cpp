// SPDX-License-Identifier: Apache-2.0
// model/prometheus: the /metrics text (format 0.0.4) checked line by line and by promtool;
// agent/metrics_http: the HTTP server that serves it, and its --metrics address.
#include "model/prometheus.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "agent/metrics_http.hpp"
#include "sys/fd.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

Histogram hist(std::initializer_list<std::pair<uint64_t, uint64_t>> us_times) {
    Histogram h;
    for (auto [us, n] : us_times) h.buckets[Histogram::bucket_of(us)] += n;
    return h;
}

// What an agent with a delayed database and a control cohort would show.
std::vector<CohortReport> realistic_cohorts() {
    Cohort exp{"experiment", "/sys.slice/app \"blue\"", 41, {}};
    exp.m.connects = 120, exp.m.established = 100, exp.m.failed_refused = 5, exp.m.failed_timeout = 7;
    exp.m.failed_abandoned = 3, exp.m.failed_tardy = 5, exp.m.retransmits = 44, exp.m.rtos = 9;
    exp.m.resets_sent = 2, exp.m.resets_received = 6, exp.m.packets_out = 5000, exp.m.bytes_out = 700000;
    exp.m.packets_in = 4800, exp.m.bytes_in = 9000000, exp.m.tardy_delayed = 2500, exp.m.tardy_dropped = 40;
    exp.m.connect_us = hist({{50, 3}, {150, 20}, {200000, 70}, {3000000, 6}, {70000000, 1}});
    exp.m.rtt_us = hist({{40, 100}, {210000, 3000}, {400000, 50}});
    Cohort ctl{"control", "/sys.slice/app-control", 42, {}};
    ctl.m.connects = 118, ctl.m.established = 118, ctl.m.packets_out = 4900, ctl.m.bytes_out = 690000;
    ctl.m.connect_us = hist({{120, 100}, {300, 18}});
    ctl.m.rtt_us = hist({{45, 3000}, {90, 100}});
    CohortReport db{"db-delay", 60, {exp, ctl}};
    Cohort obs{"observed", "/sys.slice/cache", 43, {}};
    obs.m.accepted = 7;
    return {db, CohortReport{"watch", 30, {obs}}};
}

std::vector<InjectionSample> realistic_injections() {
    return {{"db-delay", "/sys.slice/app \"blue\"", 5000, 2500, 40, 700000, 0, 0, 0},
            {"cache-loss", "/sys.slice/cache\\x2d1", 900, 0, 45, 120000, 12, 3, 1}};
}

// The text, parsed: family -> {type, help}, the families in order, and every sample line.
struct Parsed {
    std::map<std::string, std::pair<std::string, std::string>> meta;
    std::vector<std::string> order;
    std::map<std::string, std::string> samples;  // "name{labels}" -> value
};

Parsed parse(const std::string& text) {
    Parsed p;
    std::istringstream in(text);
    std::string line, current;
    while (std::getline(in, line)) {
        if (line.rfind("# HELP ", 0) == 0) {
            current = line.substr(7, line.find(' ', 7) - 7);
            p.order.push_back(current);
            p.meta[current].second = line.substr(8 + current.size());
        } else if (line.rfind("# TYPE ", 0) == 0) {
            EXPECT_EQ(line.substr(7, current.size() + 1), current + " ") << "TYPE does not follow its HELP: " << line;
            p.meta[current].first = line.substr(8 + current.size());
        } else {
            auto sp = line.rfind(' ');
            EXPECT_NE(sp, std::string::npos) << line;
            std::string key = line.substr(0, sp);
            EXPECT_EQ(key.rfind(current, 0), 0u) << "sample outside its family " << current << ": " << line;
            EXPECT_TRUE(p.samples.emplace(key, line.substr(sp + 1)).second) << "duplicate sample " << key;
        }
    }
    return p;
}

const char* kExpLabels = "injection=\"db-delay\",role=\"experiment\",cgroup=\"/sys.slice/app \\\"blue\\\"\"";

TEST(Prometheus, LabelValuesAreEscaped) {
    EXPECT_EQ(prometheus_label_value("plain/path"), "plain/path");
    EXPECT_EQ(prometheus_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    auto text = prometheus_text({{"x\ny", "/a\\b\"c", 1, 0, 0, 0, 0, 0, 0}}, {});
    EXPECT_NE(text.find("tardy_injection_packets_matched_total{injection=\"x\\ny\",cgroup=\"/a\\\\b\\\"c\"} 1\n"),
              std::string::npos)
        << text;
}

TEST(Prometheus, EveryFamilyHasHelpAndTypeInNameOrder) {
    auto p = parse(prometheus_text(realistic_injections(), realistic_cohorts()));
    EXPECT_TRUE(std::is_sorted(p.order.begin(), p.order.end()));
    EXPECT_EQ(p.order.size(), p.meta.size()) << "a family written twice";
    for (const auto& [name, meta] : p.meta) {
        EXPECT_EQ(name.rfind("tardy_", 0), 0u) << name;
        EXPECT_FALSE(meta.second.empty()) << name << " has no help";
        if (meta.first == "counter") EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
        else EXPECT_TRUE(meta.first == "gauge" || meta.first == "histogram") << name << ": " << meta.first;
    }
    for (const char* f :
         {"tardy_agent_injections", "tardy_injection_packets_matched_total", "tardy_injection_packets_delayed_total",
          "tardy_injection_packets_dropped_total", "tardy_injection_bytes_matched_total",
          "tardy_injection_syscalls_matched_total", "tardy_injection_syscalls_failed_total",
          "tardy_injection_syscalls_stalled_total", "tardy_cohort_tcp_connects_total",
          "tardy_cohort_tcp_established_total", "tardy_cohort_tcp_accepted_total",
          "tardy_cohort_tcp_connects_failed_total", "tardy_cohort_tcp_retransmits_total", "tardy_cohort_tcp_rtos_total",
          "tardy_cohort_tcp_resets_sent_total", "tardy_cohort_tcp_resets_received_total",
          "tardy_cohort_packets_in_total", "tardy_cohort_packets_out_total", "tardy_cohort_bytes_in_total",
          "tardy_cohort_bytes_out_total", "tardy_cohort_faults_injected_total",
          "tardy_cohort_tcp_connect_duration_seconds", "tardy_cohort_tcp_rtt_seconds"})
        EXPECT_EQ(p.meta.count(f), 1u) << f;
    EXPECT_EQ(p.meta["tardy_cohort_tcp_rtt_seconds"].first, "histogram");
    EXPECT_EQ(p.meta["tardy_agent_injections"].first, "gauge");
}

TEST(Prometheus, EmptyStillDescribesEveryFamily) {
    auto empty = parse(prometheus_text({}, {}));
    auto full = parse(prometheus_text(realistic_injections(), realistic_cohorts()));
    EXPECT_EQ(empty.order, full.order);
    EXPECT_EQ(empty.samples.size(), 1u);
    EXPECT_EQ(empty.samples["tardy_agent_injections"], "0");
}

TEST(Prometheus, CountersCarryTheirValuesAndLabels) {
    auto p = parse(prometheus_text(realistic_injections(), realistic_cohorts()));
    EXPECT_EQ(p.samples["tardy_agent_injections"], "2");
    EXPECT_EQ(p.samples["tardy_injection_syscalls_failed_total{injection=\"cache-loss\",cgroup=\"/sys.slice/cache\\\\x2d1\"}"],
              "3");
    EXPECT_EQ(p.samples[std::string("tardy_cohort_tcp_connects_total{") + kExpLabels + "}"], "120");
    EXPECT_EQ(p.samples[std::string("tardy_cohort_bytes_in_total{") + kExpLabels + "}"], "9000000");
    for (auto [reason, n] : {std::pair{"refused", "5"}, {"timeout", "7"}, {"abandoned", "3"}, {"tardy", "5"}})
        EXPECT_EQ(p.samples[std::string("tardy_cohort_tcp_connects_failed_total{") + kExpLabels + ",reason=\"" +
                            reason + "\"}"],
                  n)
            << reason;
    EXPECT_EQ(p.samples["tardy_cohort_tcp_connects_failed_total{injection=\"db-delay\",role=\"control\",cgroup=\"/"
                        "sys.slice/app-control\",reason=\"timeout\"}"],
              "0")
        << "every reason is written, zero or not";
    EXPECT_EQ(p.samples[std::string("tardy_cohort_faults_injected_total{") + kExpLabels + ",fault=\"packet_delayed\"}"],
              "2500");
    EXPECT_EQ(p.samples["tardy_cohort_tcp_accepted_total{injection=\"watch\",role=\"observed\",cgroup=\"/sys.slice/cache\"}"],
              "7");
}

TEST(Prometheus, HistogramBucketsAreCumulativeAndEndInCount) {
    auto reports = realistic_cohorts();
    auto p = parse(prometheus_text({}, reports));
    const auto& h = reports[0].cohorts[0].m.connect_us;
    std::string name = "tardy_cohort_tcp_connect_duration_seconds";
    std::string base = std::string("{") + kExpLabels;
    uint64_t prev = 0;
    for (uint64_t bound : kPrometheusBoundsUs) {
        double s = double(bound) / 1e6;
        std::string key;
        for (const auto& [k, v] : p.samples)  // the le text is the exact decimal: match it by value
            if (k.rfind(name + "_bucket" + base + ",le=\"", 0) == 0 &&
                std::stod(k.substr(k.rfind("le=\"") + 4)) == s)
                key = k;
        ASSERT_FALSE(key.empty()) << "no bucket le=" << s;
        uint64_t n = std::stoull(p.samples[key]);
        EXPECT_EQ(n, h.count_at_most_us(double(bound))) << key;
        EXPECT_GE(n, prev) << key;
        prev = n;
    }
    EXPECT_EQ(p.samples[name + "_bucket" + base + ",le=\"0.0001\"}"], "3");   // the 50 us ones
    EXPECT_EQ(p.samples[name + "_bucket" + base + ",le=\"0.00025\"}"], "23");  // and the 150 us ones
    EXPECT_EQ(p.samples[name + "_bucket" + base + ",le=\"60\"}"], "99");
    EXPECT_EQ(p.samples[name + "_bucket" + base + ",le=\"+Inf\"}"], "100");  // the 70 s one only here
    EXPECT_EQ(p.samples[name + "_count" + base + "}"], "100");
    EXPECT_DOUBLE_EQ(std::stod(p.samples[name + "_sum" + base + "}"]), h.sum_us() / 1e6);
    // The bounds, in order, as written.
    std::string le;
    for (uint64_t b : kPrometheusBoundsUs) le += (le.empty() ? "" : " ") + std::to_string(b);
    EXPECT_EQ(le, "100 250 500 1000 2500 5000 10000 25000 50000 100000 250000 500000 1000000 2500000 5000000 "
                  "10000000 30000000 60000000");
}

TEST(Prometheus, DeterministicWhateverTheInputOrderAndMergesDuplicates) {
    auto inj = realistic_injections();
    auto reports = realistic_cohorts();
    auto text = prometheus_text(inj, reports);
    EXPECT_EQ(text, prometheus_text(inj, reports));
    std::reverse(inj.begin(), inj.end());
    std::reverse(reports.begin(), reports.end());
    std::reverse(reports.back().cohorts.begin(), reports.back().cohorts.end());
    EXPECT_EQ(text, prometheus_text(inj, reports));

    auto twice = prometheus_text({{"a", "/x", 1, 0, 0, 0, 0, 0, 0}, {"a", "/x", 2, 0, 0, 0, 0, 0, 0}}, {});
    EXPECT_NE(twice.find("tardy_injection_packets_matched_total{injection=\"a\",cgroup=\"/x\"} 3\n"), std::string::npos);
    EXPECT_NE(twice.find("tardy_agent_injections 1\n"), std::string::npos) << "one injection, counted once";
}

// promtool, from Debian's prometheus package (scripts/deps.sh installs it).
std::string find_promtool() {
    for (const char* p : {"/usr/bin/promtool", "/usr/local/bin/promtool"})
        if (access(p, X_OK) == 0) return p;
    return "";
}

TEST(Prometheus, PromtoolChecksTheText) {
    std::string promtool = find_promtool();
    if (promtool.empty()) {
        const char* ci = std::getenv("CI");
        if (ci && std::string(ci) == "true") FAIL() << "promtool is missing in CI: run scripts/deps.sh";
        GTEST_SKIP() << "promtool is not installed (apt-get install prometheus)";
    }
    test::TempDir tmp;
    std::string file = tmp.write("metrics.txt", prometheus_text(realistic_injections(), realistic_cohorts()));
    std::string cmd = promtool + " check metrics < " + file + " 2>&1";
    FILE* f = popen(cmd.c_str(), "r");
    ASSERT_NE(f, nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    int status = pclose(f);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << ":\n" << out;
    EXPECT_EQ(out, "") << "promtool has remarks:\n" << out;
}

// ---- agent/metrics_http ------------------------------------------------------------------

struct HttpReply {
    int status = 0;
    std::string headers, body;
};

HttpReply http_get(int port, const std::string& path) {
    HttpReply r;
    Fd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ADD_FAILURE() << "connect to 127.0.0.1:" << port << ": " << std::strerror(errno);
        return r;
    }
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    EXPECT_EQ(send(s.get(), req.data(), req.size(), MSG_NOSIGNAL), ssize_t(req.size()));
    std::string all;
    char buf[65536];
    for (;;) {
        pollfd p{s.get(), POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) {
            ADD_FAILURE() << "no reply within 5 s";
            break;
        }
        ssize_t n = read(s.get(), buf, sizeof buf);
        if (n <= 0) break;
        all.append(buf, size_t(n));
    }
    auto end = all.find("\r\n\r\n");
    if (all.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) {
        ADD_FAILURE() << "not an HTTP reply: " << all;
        return r;
    }
    r.status = std::stoi(all.substr(9, 3));
    r.headers = all.substr(0, end + 2);  // each header line with its CRLF
    r.body = all.substr(end + 4);
    return r;
}

TEST(MetricsServer, ServesMetricsOnLoopbackAnd404Elsewhere) {
    std::atomic<int> calls{0};
    auto srv = MetricsServer::start("127.0.0.1:0", [&] {
        calls++;
        return prometheus_text(realistic_injections(), realistic_cohorts());
    });
    ASSERT_TRUE(srv) << srv.error().message;
    int port = (*srv)->port();
    ASSERT_GT(port, 0);
    EXPECT_EQ((*srv)->address(), "127.0.0.1");

    auto r = http_get(port, "/metrics");
    EXPECT_EQ(r.status, 200) << r.headers;
    EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos)
        << r.headers;
    EXPECT_EQ(r.body, prometheus_text(realistic_injections(), realistic_cohorts()));
    EXPECT_EQ(calls, 1);

    EXPECT_EQ(http_get(port, "/").status, 404);
    EXPECT_EQ(http_get(port, "/metrics/x").status, 404);
    EXPECT_EQ(http_get(port, "/metricsx").status, 404);
    EXPECT_EQ(calls, 1) << "render() is for /metrics only";
    EXPECT_EQ(http_get(port, "/metrics?x=1").status, 200);
}

TEST(MetricsServer, RenderFailureIs500AndTheServerGoesOn) {
    std::atomic<bool> fail{true};
    auto srv = MetricsServer::start("0", [&]() -> std::string {
        if (fail) throw std::runtime_error("map gone");
        return "tardy_agent_injections 0\n";
    });
    ASSERT_TRUE(srv) << srv.error().message;
    auto r = http_get((*srv)->port(), "/metrics");
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(r.body.find("map gone"), std::string::npos) << r.body;
    fail = false;
    EXPECT_EQ(http_get((*srv)->port(), "/metrics").body, "tardy_agent_injections 0\n");
}

TEST(MetricsServer, APortInUseIsASystemErrorNamingTheAddress) {
    auto first = MetricsServer::start("127.0.0.1:0", [] { return std::string(); });
    ASSERT_TRUE(first) << first.error().message;
    std::string addr = "127.0.0.1:" + std::to_string((*first)->port());
    auto second = MetricsServer::start(addr, [] { return std::string(); });
    ASSERT_FALSE(second) << "two servers share " << addr;
    EXPECT_FALSE(second.error().is_user());
    EXPECT_EQ(second.error().err, EADDRINUSE) << second.error().message;
    EXPECT_NE(second.error().message.find(addr), std::string::npos) << second.error().message;
}

TEST(MetricsServer, StopsQuicklyWithAnIdleClientConnected) {
    auto srv = MetricsServer::start("0", [] { return std::string(); });
    ASSERT_TRUE(srv) << srv.error().message;
    Fd idle(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>((*srv)->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(idle.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(send(idle.get(), "GET /met", 8, MSG_NOSIGNAL), 8);  // and then nothing
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto t0 = std::chrono::steady_clock::now();
    srv = Error::other("dropped");  // destroys the server
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, std::chrono::seconds(3)) << "a half-sent request held the server up past its read timeout";
}

TEST(MetricsServer, ParsesListenAddresses) {
    using P = std::pair<std::string, int>;
    for (auto [in, want] : {std::pair<std::string, P>{"9464", {"127.0.0.1", 9464}},
                            {"0", {"127.0.0.1", 0}},
                            {"127.0.0.1:9464", {"127.0.0.1", 9464}},
                            {"0.0.0.0:65535", {"0.0.0.0", 65535}},
                            {"[::1]:9464", {"::1", 9464}},
                            {"[::]:0", {"::", 0}}}) {
        auto r = parse_listen_address(in);
        ASSERT_TRUE(r) << in << ": " << r.error().message;
        EXPECT_EQ(*r, want) << in;
    }
    for (const char* bad : {"", "x", "-1", "+80", "65536", "123456", "1.2.3.4", "1.2.3.4:", ":80", "1.2.3.4: 80",
                            "1.2.3.4:80x", "1.2.3:80", "localhost:80", "::1:80", "[::1]", "[::1]:", "[1.2.3.4]:80",
                            "[::1]:80:", "1.2.3.4:80\nX"})
        EXPECT_TRUE(test::FailsWithUserError(parse_listen_address(bad), {"ADDR:PORT", "PORT"})) << bad;
}

}  // namespace
}  // namespace tardy
