// SPDX-License-Identifier: Apache-2.0
// user/model/net_shape: netem's shapes from `tardy inject` flags, their distribution tables
// against iproute2's, and what list and the agent's requests carry of them.
#include "model/net_shape.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "model/spec.hpp"
#include "model/tardy_abi.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

using test::FailsWithUserError;

InjectArgs shaped(std::initializer_list<std::pair<std::string ShapeArgs::*, const char*>> set, const char* loss = "",
                  const char* delay = "", const char* jitter = "") {
    InjectArgs a;
    a.cgroup = "shop.slice";
    a.loss = loss;
    a.delay = delay;
    a.jitter = jitter;
    for (auto [field, v] : set) a.shape.*field = v;
    return a;
}

uint64_t rate(const char* text) {
    auto r = parse_rate(text, "--rate");
    EXPECT_TRUE(r) << text;
    return r ? *r : 0;
}

TEST(ParseRate, TcsUnits) {
    EXPECT_EQ(rate("10mbit"), 1'250'000u);
    EXPECT_EQ(rate("10Mbit"), 1'250'000u);
    EXPECT_EQ(rate("1.5gbit"), 187'500'000u);
    EXPECT_EQ(rate("500kbit"), 62'500u);
    EXPECT_EQ(rate("2mbps"), 2'000'000u);  // bytes, as tc reads it
    EXPECT_EQ(rate("1mibit"), 131'072u);
    EXPECT_EQ(rate("64kbit"), 8'000u);
    EXPECT_EQ(format_rate(1'250'000), "10mbit");
    EXPECT_EQ(format_rate(187'500'000), "1.5gbit");
    EXPECT_EQ(format_rate(62'500), "500kbit");
}

TEST(ParseRate, RefusesWhatIsNotARate) {
    for (const char* bad : {"10", "mbit", "10 mbit", "-10mbit", "1e3mbit", "0x10mbit", "10mbit/s", "1..2mbit", "",
                            "10kbitt", "nanmbit"})
        EXPECT_TRUE(FailsWithUserError(parse_rate(bad, "--rate"), {"--rate", "10mbit"})) << bad;
    EXPECT_TRUE(FailsWithUserError(parse_rate("1kbit", "--rate"), {"64kbit to 100gbit"}));
    EXPECT_TRUE(FailsWithUserError(parse_rate("200gbit", "--rate"), {"64kbit to 100gbit"}));
}

// iproute2 ships netem's tables; ours are computed the same way and must agree with them
// (within a unit or two of 8192 per jitter: iproute2 reads its normal off a 0.00005 grid).
TEST(DistTable, MatchesIproute2sFiles) {
    const char* dirs[] = {"/usr/lib/x86_64-linux-gnu/tc", "/usr/lib/tc", "/usr/lib64/tc"};
    int compared = 0;
    for (uint32_t d : {TARDY_DIST_NORMAL, TARDY_DIST_PARETO, TARDY_DIST_PARETONORMAL}) {
        std::ifstream in;
        for (const char* dir : dirs) {
            in.open(std::string(dir) + "/" + dist_name(d) + ".dist");
            if (in) break;
            in.clear();
        }
        if (!in) continue;
        std::vector<int> theirs;
        for (std::string line; std::getline(in, line);) {
            if (line.empty() || line[0] == '#') continue;
            std::istringstream words(line);
            for (int v; words >> v;) theirs.push_back(v);
        }
        auto ours = dist_table(d);
        ASSERT_EQ(theirs.size(), ours.size()) << dist_name(d);
        int worst = 0;
        for (size_t i = 0; i < ours.size(); i++) worst = std::max(worst, std::abs(ours[i] - theirs[i]));
        EXPECT_LE(worst, 2) << dist_name(d);
        compared++;
    }
    if (compared == 0) GTEST_SKIP() << "iproute2's netem tables are not installed";
}

TEST(DistTable, NormalHasUnitSpread) {
    auto t = dist_table(TARDY_DIST_NORMAL);
    double sum = 0, sq = 0;
    for (int16_t v : t) sum += v, sq += static_cast<double>(v) * v;
    double mean = sum / t.size(), sd = std::sqrt(sq / t.size() - mean * mean);
    EXPECT_NEAR(mean / TARDY_DIST_SCALE, 0, 0.01);
    EXPECT_NEAR(sd / TARDY_DIST_SCALE, 1, 0.02);
}

TEST(ApplyShape, LossBurstBecomesAGilbertElliottModel) {
    auto r = build_inject_request(shaped({{&ShapeArgs::loss_burst, "4"}}, "5%"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.loss_ppm, 50'000u);
    EXPECT_EQ(r->net.ge_r_ppm, 250'000u);
    EXPECT_EQ(r->net.ge_p_ppm, 13'158u);  // 0.05 * 0.25 / 0.95
    EXPECT_EQ(r->net.ge_bad_loss_ppm, TARDY_PPM);
    EXPECT_EQ(r->net.ge_good_loss_ppm, 0u);
    EXPECT_EQ(describe(r->net), "loss 5% in bursts of 4");
}

TEST(ApplyShape, GemodelTakesNetemsParametersAndDefaults) {
    auto r = build_inject_request(shaped({{&ShapeArgs::loss_gemodel, "1%"}}));
    ASSERT_TRUE(r) << r.error().message;
    // Bernoulli, as netem: r = 1 - p, 1-h = 100%, 1-k = 0%: the mean loss is p.
    EXPECT_EQ(r->net.ge_p_ppm, 10'000u);
    EXPECT_EQ(r->net.ge_r_ppm, 990'000u);
    EXPECT_EQ(r->net.loss_ppm, 10'000u);
    r = build_inject_request(shaped({{&ShapeArgs::loss_gemodel, "2%,20%,80%,1%"}}));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.ge_bad_loss_ppm, 800'000u);
    EXPECT_EQ(r->net.ge_good_loss_ppm, 10'000u);
    EXPECT_NEAR(r->net.loss_ppm, 81'818, 1);  // 2/22 * 80% + 20/22 * 1%
    EXPECT_EQ(describe(r->net), "loss 8.1818% (gemodel 2%,20%,80%,1%)");
}

TEST(ApplyShape, EveryShapeReachesTheRequestAndItsDescription) {
    auto r = build_inject_request(shaped({{&ShapeArgs::distribution, "normal"},
                                          {&ShapeArgs::correlation, "25%"},
                                          {&ShapeArgs::duplicate, "1%"},
                                          {&ShapeArgs::reorder, "10%"},
                                          {&ShapeArgs::rate, "10mbit"}},
                                         "", "100ms", "20ms"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.dist, TARDY_DIST_NORMAL);
    EXPECT_EQ(r->net.corr_ppm, 250'000u);
    EXPECT_EQ(r->net.duplicate_ppm, 10'000u);
    EXPECT_EQ(r->net.reorder_ppm, 100'000u);
    EXPECT_EQ(r->net.rate_bytes_per_s, 1'250'000u);
    EXPECT_TRUE(r->net.paces());
    EXPECT_EQ(describe(r->net),
              "delay 100ms±20ms normal, duplicate 1%, reorder 10%, rate 10mbit, correlation 25%");
    // Through JSON (the agent's request and `list --json`) and back.
    nlohmann::json j = r->net;
    EXPECT_EQ(j["distribution"], "normal");
    NetFaults back = j.get<NetFaults>();
    EXPECT_EQ(describe(back), describe(r->net));
    // A rate or a duplicate alone is a fault.
    EXPECT_TRUE(build_inject_request(shaped({{&ShapeArgs::rate, "1mbit"}})));
    r = build_inject_request(shaped({{&ShapeArgs::duplicate, "5%"}}));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->net.paces());
    // --corrupt alone is a fault, correlated if asked, described and carried through JSON.
    r = build_inject_request(shaped({{&ShapeArgs::corrupt, "2.5%"}, {&ShapeArgs::correlation, "10%"}}));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.corrupt_ppm, 25'000u);
    EXPECT_FALSE(r->net.paces());
    EXPECT_EQ(describe(r->net), "corrupt 2.5%, correlation 10%");
    nlohmann::json cj = r->net;
    EXPECT_EQ(cj.get<NetFaults>().corrupt_ppm, 25'000u);
    // netem's gap spaces the reordered packets.
    r = build_inject_request(shaped({{&ShapeArgs::reorder, "100%"}, {&ShapeArgs::reorder_gap, "5"}}, "", "10ms"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.reorder_gap, 5u);
    EXPECT_EQ(describe(r->net), "delay 10ms, reorder 100% gap 5");
    nlohmann::json gj = r->net;
    EXPECT_EQ(gj.get<NetFaults>().reorder_gap, 5u);
}

TEST(ApplyShape, RefusesWhatCannotApplyInOneLine) {
    struct Case {
        InjectArgs args;
        std::vector<std::string_view> must;
    };
    std::vector<Case> cases = {
        {shaped({{&ShapeArgs::loss_burst, "4"}}), {"--loss-burst", "--loss 5% --loss-burst 4"}},
        {shaped({{&ShapeArgs::loss_burst, "0.5"}}, "5%"), {"--loss-burst", "from 1"}},
        {shaped({{&ShapeArgs::loss_burst, "x"}}, "5%"), {"--loss-burst 'x'"}},
        {shaped({{&ShapeArgs::loss_burst, "1"}}, "60%"), {"bursts of 1", "cannot be"}},
        {shaped({{&ShapeArgs::loss_burst, "4"}}, "100%"), {"cannot be"}},
        {shaped({{&ShapeArgs::loss_gemodel, "1%"}}, "5%"), {"--loss-gemodel", "instead of --loss"}},
        {shaped({{&ShapeArgs::loss_gemodel, "0%"}}), {"P 0%"}},
        {shaped({{&ShapeArgs::loss_gemodel, "1%,0%"}}), {"R 0%"}},
        {shaped({{&ShapeArgs::loss_gemodel, "1%,2%,3%,4%,5%"}}), {"P[,R[,1-H[,1-K]]]"}},
        {shaped({{&ShapeArgs::loss_gemodel, "1%,x"}}), {"--loss-gemodel R"}},
        {shaped({{&ShapeArgs::distribution, "normal"}}, "", "50ms"), {"--distribution", "--jitter"}},
        {shaped({{&ShapeArgs::distribution, "gauss"}}, "", "50ms", "5ms"), {"--distribution 'gauss'", "paretonormal"}},
        {shaped({{&ShapeArgs::distribution, "pareto"}}, "", "4s", "1s"), {"4 x --jitter", "5s"}},
        {shaped({{&ShapeArgs::reorder, "25%"}}, "5%"), {"--reorder", "--delay"}},
        {shaped({{&ShapeArgs::reorder, "0%"}}, "", "10ms"), {"--reorder 0%"}},
        {shaped({{&ShapeArgs::duplicate, "150%"}}), {"--duplicate"}},
        {shaped({{&ShapeArgs::corrupt, "150%"}}), {"--corrupt"}},
        {shaped({{&ShapeArgs::reorder_gap, "5"}}, "", "10ms"), {"--reorder-gap", "give --reorder"}},
        {shaped({{&ShapeArgs::reorder, "5%"}, {&ShapeArgs::reorder_gap, "0"}}, "", "10ms"), {"--reorder-gap '0'"}},
        {shaped({{&ShapeArgs::reorder, "5%"}, {&ShapeArgs::reorder_gap, "2.5"}}, "", "10ms"), {"--reorder-gap '2.5'"}},
        {shaped({{&ShapeArgs::corrupt, "bad"}}), {"--corrupt"}},
        {shaped({{&ShapeArgs::correlation, "25%"}}, "", "10ms"), {"--correlation", "--jitter"}},
        {shaped({{&ShapeArgs::correlation, "25%"}, {&ShapeArgs::loss_burst, "3"}}, "5%"), {"burst loss has its own"}},
        {shaped({{&ShapeArgs::rate, "fast"}}), {"--rate 'fast'"}},
    };
    InjectArgs ingress = shaped({{&ShapeArgs::rate, "10mbit"}}, "5%");
    ingress.direction = "ingress";
    cases.push_back({ingress, {"--rate", "--direction egress"}});
    InjectArgs both = shaped({{&ShapeArgs::duplicate, "1%"}}, "5%");
    both.direction = "both";
    cases.push_back({both, {"--duplicate", "--direction egress"}});
    InjectArgs corrupt_in = shaped({{&ShapeArgs::corrupt, "1%"}});
    corrupt_in.direction = "ingress";
    cases.push_back({corrupt_in, {"--corrupt", "--direction egress"}});
    for (const auto& c : cases) {
        auto r = build_inject_request(c.args);
        ASSERT_FALSE(r) << "accepted: " << c.must.front();
        EXPECT_EQ(r.error().kind, ErrorKind::User) << r.error().message;
        for (auto m : c.must) EXPECT_NE(r.error().message.find(m), std::string::npos) << m << " in: " << r.error().message;
        EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
    }
    // Burst loss on ingress is loss: accepted.
    InjectArgs in = shaped({{&ShapeArgs::loss_burst, "3"}}, "5%");
    in.direction = "ingress";
    EXPECT_TRUE(build_inject_request(in));
}

}  // namespace
}  // namespace tardy

namespace tardy {
namespace {

TEST(DnsFault, FlagsBecomeTheRuleAndOneLineErrors) {
    auto r = build_inject_request(shaped({{&ShapeArgs::dns, "nxdomain:50%"}, {&ShapeArgs::dns_name, ".Shop.Test."}}));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.dns_rcode, 3u);
    EXPECT_EQ(r->net.dns_ppm, 500'000u);
    EXPECT_EQ(r->net.dns_name, "Shop.Test");
    EXPECT_EQ(describe(r->net), "DNS nxdomain 50% for Shop.Test");
    EXPECT_TRUE(r->net.any());
    EXPECT_FALSE(r->net.paces());
    r = build_inject_request(shaped({{&ShapeArgs::dns, "timeout"}}));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->net.dns_rcode, static_cast<uint32_t>(TARDY_DNS_TIMEOUT));
    EXPECT_EQ(r->net.dns_ppm, TARDY_PPM);
    EXPECT_EQ(build_inject_request(shaped({{&ShapeArgs::dns, "servfail"}}))->net.dns_rcode, 2u);
    EXPECT_EQ(build_inject_request(shaped({{&ShapeArgs::dns, "refused"}}))->net.dns_rcode, 5u);
    for (auto [dns, name, must] : std::initializer_list<std::tuple<const char*, const char*, const char*>>{
             {"nope", "", "--dns 'nope'"},
             {"nxdomain:0%", "", "--dns 0%"},
             {"nxdomain:x", "", "--dns"},
             {"", "example.com", "give --dns with it"},
             {"nxdomain", "a..b", "1 to 63"},
             {"nxdomain", "bad name.com", "letters, digits"},
             {"nxdomain", ".", "give a domain"}}) {
        auto bad = build_inject_request(shaped({{&ShapeArgs::dns, dns}, {&ShapeArgs::dns_name, name}}));
        ASSERT_FALSE(bad) << dns << " " << name;
        EXPECT_NE(bad.error().message.find(must), std::string::npos) << bad.error().message;
    }
    InjectArgs in = shaped({{&ShapeArgs::dns, "nxdomain"}}, "5%");
    in.direction = "both";
    EXPECT_FALSE(build_inject_request(in));
}

TEST(ResetFault, FlagBecomesTheRuleAndOneLineErrors) {
    auto r = build_inject_request(shaped({{&ShapeArgs::reset, "10%"}}));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->net.reset_ppm, 100'000u);
    EXPECT_EQ(describe(r->net), "reset 10% of TCP connections");
    EXPECT_TRUE(r->net.any());
    EXPECT_FALSE(r->net.paces());
    for (auto [pct, must] : std::initializer_list<std::pair<const char*, const char*>>{
             {"0%", "--reset 0%"}, {"x", "--reset"}, {"101%", "--reset"}, {"10", "--reset"}}) {
        auto bad = build_inject_request(shaped({{&ShapeArgs::reset, pct}}));
        ASSERT_FALSE(bad) << pct;
        EXPECT_NE(bad.error().message.find(must), std::string::npos) << bad.error().message;
    }
    InjectArgs in = shaped({{&ShapeArgs::reset, "10%"}}, "5%");
    in.direction = "both";
    auto both = build_inject_request(in);
    ASSERT_FALSE(both);
    EXPECT_NE(both.error().message.find("--reset applies to the packets the target sends"), std::string::npos)
        << both.error().message;
    InjectArgs setup = shaped({{&ShapeArgs::reset, "10%"}});
    setup.setup_only = true;
    auto s = build_inject_request(setup);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("two injections"), std::string::npos) << s.error().message;
}

TEST(DnsFault, WireNameIsLowerCaseLabels) {
    auto w = dns_wire_name("WWW.Example.com.");
    ASSERT_TRUE(w);
    EXPECT_EQ(*w, std::string("\3www\7example\3com\0", 17));
    EXPECT_FALSE(dns_wire_name(std::string(130, 'a')));
    std::string long_ok;
    for (int i = 0; i < 4; i++) long_ok += std::string(30, 'a') + ".";
    EXPECT_TRUE(dns_wire_name(long_ok.substr(0, long_ok.size() - 1)));  // 124 characters: 126 in wire form
}

}  // namespace
}  // namespace tardy
