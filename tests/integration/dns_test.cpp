// SPDX-License-Identifier: Apache-2.0
// --dns through the real kernel path, against real clients and a real server: Debian's
// dnsmasq in the lab's server namespace answers for shop.test and cache.test; glibc's
// resolver (getent), dig and Python's getaddrinfo in the experiment cohort get the injected
// error for the chosen name only, the control cohort resolves everything. No DNS server is
// changed: the answers are made from the queries in the target's TC program.
#include <fcntl.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class DnsLab : public Lab {
protected:
    void SetUp() override {
        Lab::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        for (const char* tool : {"/usr/sbin/dnsmasq", "/usr/bin/dig", "/usr/bin/getent", "/usr/bin/python3"})
            ASSERT_EQ(access(tool, X_OK), 0) << tool << " missing (scripts/deps.sh installs it)";
        // `ip netns exec` mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf: the cohorts'
        // resolver asks the lab's dnsmasq, once, for a second at most.
        etc_ = "/etc/netns/" + lab_->netns_a_name();
        std::filesystem::create_directories(etc_);
        std::ofstream(etc_ + "/resolv.conf") << "nameserver 198.18.0.2\noptions timeout:1 attempts:1\n";
        dnsmasq_ = fork();
        if (dnsmasq_ == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            std::string ns = lab_->netns_b_name();
            execlp("ip", "ip", "netns", "exec", ns.c_str(), "dnsmasq", "--keep-in-foreground", "--no-resolv",
                   "--no-hosts", "--conf-file=/dev/null", "--bind-interfaces", "--listen-address=198.18.0.2",
                   "--listen-address=fd00:7a7d::2", "--except-interface=lo", "--user=root", "--pid-file",
                   "--address=/shop.test/198.18.0.9", "--address=/cache.test/198.18.0.10", "--log-facility=-",
                   static_cast<char*>(nullptr));
            _exit(127);
        }
        ASSERT_GT(dnsmasq_, 0);
        ASSERT_TRUE(eventually([&] { return resolves(kCtl, "www.shop.test"); }, 5000, 100)) << "dnsmasq did not answer";
    }
    void TearDown() override {
        if (dnsmasq_ > 0) {
            kill(dnsmasq_, SIGTERM);
            waitpid(dnsmasq_, nullptr, 0);
        }
        std::error_code ec;
        if (!etc_.empty()) std::filesystem::remove_all(etc_, ec);
        Lab::TearDown();
    }
    // A command run by a process of the cohort, in the client namespace.
    CmdResult in_cohort(Sandbox::Cohort c, const std::string& cmd) {
        auto r = run_cmd({"sh", "-c", "echo $$ > " + lab_->cgroup(c) + "/cgroup.procs && exec ip netns exec " +
                                          lab_->netns_a_name() + " " + cmd});
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
        return r ? *r : CmdResult{};
    }
    bool resolves(Sandbox::Cohort c, const std::string& name) {
        return in_cohort(c, "getent ahostsv4 " + name).status == 0;
    }
    std::string dig_status(Sandbox::Cohort c, const std::string& name, const char* server = "198.18.0.2") {
        auto r = in_cohort(c, std::string("dig @") + server + " " + name + " +tries=1 +time=1");
        if (r.out.find("timed out") != std::string::npos) return "timeout";
        auto at = r.out.find("status: ");
        return at == std::string::npos ? "?" : r.out.substr(at + 8, r.out.find(',', at) - at - 8);
    }
    // Python's getaddrinfo (glibc's resolver under it): "ok" or the error's name.
    std::string python(Sandbox::Cohort c, const std::string& name) {
        auto r = in_cohort(c, "python3 -c \"import socket\ntry:\n socket.getaddrinfo('" + name +
                                  "', 80, socket.AF_INET)\n print('ok')\nexcept socket.gaierror as e:\n"
                                  " print({socket.EAI_NONAME: 'EAI_NONAME', socket.EAI_AGAIN: 'EAI_AGAIN'}.get(e.errno, e))\"");
        auto s = r.out;
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        return s;
    }
    std::string etc_;
    pid_t dnsmasq_ = -1;
};

TEST_F(DnsLab, NxdomainForOneNameOnlyAndNotForTheControl) {
    inject({"--dns", "nxdomain", "--dns-name", "shop.test"}, "no-shop");
    EXPECT_FALSE(resolves(kExp, "www.shop.test")) << "glibc resolved the faulted name";
    EXPECT_TRUE(resolves(kExp, "www.cache.test")) << "another name was hit";
    EXPECT_EQ(dig_status(kExp, "www.shop.test"), "NXDOMAIN");
    EXPECT_EQ(dig_status(kExp, "api.SHOP.test", "fd00:7a7d::2"), "NXDOMAIN") << "IPv6, another case";
    EXPECT_EQ(dig_status(kExp, "cache.test"), "NOERROR");
    EXPECT_EQ(python(kExp, "shop.test"), "EAI_NONAME");
    EXPECT_EQ(python(kExp, "cache.test"), "ok");
    // The control cohort, in the same namespace, resolves all of them.
    EXPECT_TRUE(resolves(kCtl, "www.shop.test"));
    EXPECT_EQ(dig_status(kCtl, "www.shop.test", "fd00:7a7d::2"), "NOERROR");
    EXPECT_EQ(python(kCtl, "shop.test"), "ok");
    auto l = list_json();
    ASSERT_EQ(l["injections"].size(), 1u);
    EXPECT_GE(l["injections"][0]["counters"]["dns"].get<uint64_t>(), 4u);
    EXPECT_EQ(l["injections"][0]["net"]["dns"], "nxdomain");
    auto table = tardy({"list"});
    EXPECT_NE(table.out.find("DNS nxdomain for shop.test"), std::string::npos) << table.out;
}

TEST_F(DnsLab, ServfailAndTimeoutAsClientsSeeThem) {
    inject({"--dns", "servfail"}, "sf");
    EXPECT_EQ(dig_status(kExp, "www.cache.test"), "SERVFAIL");
    EXPECT_EQ(python(kExp, "www.cache.test"), "EAI_AGAIN");
    EXPECT_EQ(python(kCtl, "www.cache.test"), "ok");
    tardy({"stop", "sf"});
    inject({"--dns", "timeout"}, "slow");
    EXPECT_EQ(dig_status(kExp, "www.cache.test"), "timeout");
    EXPECT_EQ(python(kExp, "www.cache.test"), "EAI_AGAIN");
    EXPECT_EQ(dig_status(kCtl, "www.cache.test"), "NOERROR");
    EXPECT_EQ(probe(kExp, "udp", false, 20, 2, 100).answered(), 20) << "other UDP was hit";
}

}  // namespace
