// SPDX-License-Identifier: Apache-2.0
// /metrics (issue 11) from a real agent, checked by promtool and scraped by a real Prometheus
// server (Debian's), against `tardy stats` of the same injection. Loopback only.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/harness.hpp"
#include "sys/process.hpp"

using namespace tardy;
using namespace tardy::test;
using nlohmann::json;

namespace {

int free_port() {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

class MetricsLab : public Lab {
protected:
    void TearDown() override {
        unsetenv("TARDY_METRICS");
        Lab::TearDown();
    }
};

TEST_F(MetricsLab, PrometheusScrapesWhatStatsSays) {
    int port = free_port();
    ASSERT_GT(port, 0);
    std::string at = "127.0.0.1:" + std::to_string(port);
    setenv("TARDY_METRICS", at.c_str(), 1);
    inject({"--fail", "connect=ECONNREFUSED:50%", "--control", lab_->cgroup_rel(kCtl)}, "prom");
    for (auto c : {kExp, kCtl})
        (void)tardy({"__probe", "--cgroup", lab_->cgroup(c), "--netns", lab_->netns_a(), "--proto", "tcp", "--to",
                     "198.18.0.2", "--port", "7007", "--count", "40", "--interval-ms", "1", "--timeout-ms", "1000"});
    auto st = tardy({"stats", "prom", "--json"});
    ASSERT_EQ(st.status, 0) << st.err;
    auto s = json::parse(st.out, nullptr, false);
    ASSERT_FALSE(s.is_discarded()) << st.out;
    uint64_t failed = s["cohorts"][0]["tcp"]["failed"].get<uint64_t>();
    EXPECT_GT(failed, 0u);

    // The text itself: curl, then promtool's linter on exactly what the agent served.
    std::string file = "/tmp/" + name_ + "-metrics.txt";
    auto c = run_cmd({"curl", "-sS", "--max-time", "5", "-o", file, "-w", "%{http_code} %{content_type}",
                      "http://" + at + "/metrics"});
    ASSERT_TRUE(c && c->status == 0) << (c ? c->err : "");
    EXPECT_EQ(c->out, "200 text/plain; version=0.0.4; charset=utf-8");
    auto lint = run_cmd({"sh", "-c", "promtool check metrics < " + file});
    ASSERT_TRUE(lint);
    EXPECT_EQ(lint->status, 0) << lint->out << lint->err;
    std::ifstream f(file);
    std::string text((std::istreambuf_iterator<char>(f)), {});
    std::filesystem::remove(file);
    std::string exp_labels = "injection=\"prom\",role=\"experiment\"";
    for (auto want : {"tardy_injection_syscalls_failed_total{", "tardy_cohort_tcp_connects_total{",
                      "tardy_cohort_tcp_connect_duration_seconds_bucket{", "reason=\"tardy\"", "role=\"control\""})
        EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text.substr(0, 3000);

    // A real Prometheus server scrapes it; its answer is the count `tardy stats` gave.
    auto q = run_cmd({"bash", (std::filesystem::path(build_dir()) / "../tests/tools/prom_scrape.sh").string(), at,
                      "sum(tardy_cohort_tcp_connects_failed_total{injection=\"prom\",role=\"experiment\"})"});
    ASSERT_TRUE(q);
    ASSERT_EQ(q->status, 0) << q->out << q->err;
    auto r = json::parse(q->out, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << q->out;
    ASSERT_EQ(r["data"]["result"].size(), 1u) << q->out;
    EXPECT_EQ(r["data"]["result"][0]["value"][1].get<std::string>(), std::to_string(failed)) << q->out;
}

// A port someone holds: the agent does not start, inject says why in one line, nothing is left.
TEST_F(MetricsLab, ATakenPortIsRefusedAndNothingStarts) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(s, 1), 0);
    ASSERT_EQ(getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
    std::string at = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    setenv("TARDY_METRICS", at.c_str(), 1);
    auto r = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%"});
    close(s);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find(at), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    // Programs are freed after an RCU grace period (and the last test's may still be going).
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, 2000, 20)) << count_our_programs();
    setenv("TARDY_METRICS", "127.0.0.1:99999", 1);
    r = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "5%"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("TARDY_METRICS"), std::string::npos) << r.err;
}

}  // namespace
