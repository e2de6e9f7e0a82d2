// SPDX-License-Identifier: Apache-2.0
// The comparison of two weighted samples: Mann-Whitney U and its p-value, the Hodges-Lehmann
// shift with Moses' interval, the effect size, weighting, edge cases, JSON and text.
//
// Reference values were computed once with scipy 1.10.1 (Debian python3-scipy):
// scipy.stats.mannwhitneyu(e, c, alternative='two-sided', method='asymptotic',
// use_continuity=True) for U and p (on the expanded samples), z = sign(U - n_e n_c / 2) *
// norm.isf(p / 2), and by brute force over all pairs in Python: the shift as numpy.median of
// the pairwise e - c, the Moses interval as the k-th smallest and k-th largest of them with
// k = max(1, floor(n_e n_c / 2 - norm.ppf(1 - alpha / 2) * sqrt(n_e n_c (n_e + n_c + 1) / 12))).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "model/compare.hpp"

namespace tardy {
namespace {

using json = nlohmann::json;

std::vector<Weighted> ones(const std::vector<double>& v) {
    std::vector<Weighted> w;
    for (double x : v) w.push_back({x, 1});
    return w;
}

std::vector<Weighted> expand(const std::vector<Weighted>& w) {
    std::vector<Weighted> out;
    for (const auto& x : w)
        for (uint64_t i = 0; i < x.count; i++) out.push_back({x.value, 1});
    return out;
}

// 100 + (i * 37 mod 23) and offset + (i * 41 mod 23), i = 0..39: integers with many ties.
std::vector<Weighted> cycle(double offset, int mult) {
    std::vector<Weighted> w;
    for (int i = 0; i < 40; i++) w.push_back({offset + (i * mult % 23), 1});
    return w;
}

void expect_rel(double got, double want, double rel) { EXPECT_NEAR(got, want, std::fabs(want) * rel) << want; }

TEST(CompareTest, SmallSamplesWithTiesMatchScipy) {
    auto e = ones({1, 2, 2, 3, 3, 3, 4, 5, 5, 9}), c = ones({0, 1, 1, 2, 3, 3, 4, 4, 6});
    Comparison r = compare(e, c);
    EXPECT_TRUE(r.enough);
    EXPECT_EQ(r.n_experiment, 10u);
    EXPECT_EQ(r.n_control, 9u);
    EXPECT_DOUBLE_EQ(r.u, 56.0);
    expect_rel(r.p_value, 0.38429708474583235, 1e-12);
    expect_rel(r.z, 0.8700060741774688, 1e-12);
    EXPECT_DOUBLE_EQ(r.superiority, 0.6222222222222222);
    EXPECT_DOUBLE_EQ(r.rank_biserial, 2 * 0.6222222222222222 - 1);
    EXPECT_EQ(r.shift, 1.0);
    EXPECT_EQ(r.shift_low, -1.0);  // k = 20
    EXPECT_EQ(r.shift_high, 3.0);
    EXPECT_EQ(r.confidence, 0.95);
}

TEST(CompareTest, AClearShiftIsFoundAndBracketed) {
    // Apart: every experiment sample is above every control sample.
    Comparison r = compare(cycle(150, 41), cycle(100, 37));
    EXPECT_DOUBLE_EQ(r.u, 1600.0);
    expect_rel(r.p_value, 1.4179807940294697e-14, 1e-9);
    EXPECT_DOUBLE_EQ(r.superiority, 1.0);
    EXPECT_DOUBLE_EQ(r.rank_biserial, 1.0);
    EXPECT_EQ(r.shift, 50.0);
    EXPECT_EQ(r.shift_low, 47.0);  // k = 596
    EXPECT_EQ(r.shift_high, 54.0);
    // A narrower confidence gives a narrower interval (k = 629).
    Comparison r90 = compare(cycle(150, 41), cycle(100, 37), 0.90);
    EXPECT_EQ(r90.confidence, 0.90);
    EXPECT_EQ(r90.shift_low, 48.0);
    EXPECT_EQ(r90.shift_high, 53.0);
    EXPECT_EQ(r90.p_value, r.p_value);

    // Overlapping, shifted by about 8; the experiment is the second argument's mirror image.
    Comparison o = compare(cycle(108, 41), cycle(100, 37));
    EXPECT_DOUBLE_EQ(o.u, 1274.0);
    expect_rel(o.p_value, 5.131717749694695e-06, 1e-9);
    expect_rel(o.z, 4.55932959506488, 1e-9);
    EXPECT_DOUBLE_EQ(o.superiority, 0.79625);
    EXPECT_EQ(o.shift, 8.0);
    EXPECT_EQ(o.shift_low, 5.0);
    EXPECT_EQ(o.shift_high, 12.0);
    // Swapping the sides mirrors everything.
    Comparison s = compare(cycle(100, 37), cycle(108, 41));
    EXPECT_DOUBLE_EQ(s.u, 1600.0 - 1274.0);
    EXPECT_DOUBLE_EQ(s.z, -o.z);
    EXPECT_DOUBLE_EQ(s.p_value, o.p_value);
    EXPECT_DOUBLE_EQ(s.rank_biserial, -o.rank_biserial);
    EXPECT_EQ(s.shift, -8.0);
    EXPECT_EQ(s.shift_low, -12.0);
    EXPECT_EQ(s.shift_high, -5.0);
}

TEST(CompareTest, IdenticalSamplesShowNoDifference) {
    Comparison r = compare(cycle(100, 37), cycle(100, 37));
    EXPECT_DOUBLE_EQ(r.u, 800.0);
    EXPECT_EQ(r.z, 0.0);
    EXPECT_EQ(r.p_value, 1.0);
    EXPECT_EQ(r.superiority, 0.5);
    EXPECT_EQ(r.rank_biserial, 0.0);
    EXPECT_EQ(r.shift, 0.0);
    EXPECT_EQ(r.shift_low, -3.0);
    EXPECT_EQ(r.shift_high, 3.0);
    // All samples equal: no variance, no difference, no NaN.
    Comparison flat = compare({{5, 100}}, {{5, 30}});
    EXPECT_TRUE(flat.enough);
    EXPECT_EQ(flat.z, 0.0);
    EXPECT_EQ(flat.p_value, 1.0);
    EXPECT_EQ(flat.superiority, 0.5);
    EXPECT_EQ(flat.shift, 0.0);
    EXPECT_EQ(flat.shift_low, 0.0);
    EXPECT_EQ(flat.shift_high, 0.0);
}

TEST(CompareTest, TwoProportions) {
    // 30% failures against 10%.
    Comparison r = compare({{1, 30}, {0, 70}}, {{1, 10}, {0, 90}});
    EXPECT_DOUBLE_EQ(r.u, 6000.0);
    expect_rel(r.p_value, 0.000423609656371804, 1e-10);
    expect_rel(r.z, 3.524920652919013, 1e-10);
    EXPECT_DOUBLE_EQ(r.superiority, 0.6);
    EXPECT_EQ(r.shift, 0.0);
    EXPECT_EQ(r.shift_low, 0.0);  // k = 4197
    EXPECT_EQ(r.shift_high, 0.0);
}

TEST(CompareTest, WeightedSamplesEqualTheirExpansion) {
    std::vector<Weighted> e{{3.5, 4}, {1.0, 2}, {7.25, 3}, {3.5, 1}, {2.0, 5}};
    std::vector<Weighted> c{{1.0, 6}, {2.0, 2}, {4.0, 3}, {0.5, 1}};
    Comparison w = compare(e, c), x = compare(expand(e), expand(c));
    EXPECT_EQ(w.n_experiment, 15u);
    EXPECT_EQ(w.n_control, 12u);
    EXPECT_DOUBLE_EQ(w.u, 129.0);
    expect_rel(w.p_value, 0.05376654667225823, 1e-12);
    expect_rel(w.z, 1.9287126360431281, 1e-12);
    EXPECT_DOUBLE_EQ(w.superiority, 0.7166666666666667);
    EXPECT_EQ(w.shift, 1.0);
    EXPECT_EQ(w.shift_low, 0.0);  // k = 49
    EXPECT_EQ(w.shift_high, 2.5);
    EXPECT_EQ(to_json(w).dump(), to_json(x).dump());
}

// Histogram-like: 300 buckets 16 apart, about 9e5 samples a side, the experiment one bucket up.
void histograms(std::vector<Weighted>& e, std::vector<Weighted>& c, uint64_t scale) {
    for (int j = 0; j < 300; j++) {
        double v = 1000 + 16 * j + 8;
        c.push_back({v, scale * (50 + 40 * std::max(0, 150 - std::abs(j - 120)) + (j * 7919) % 101)});
        e.push_back({v, scale * (50 + 40 * std::max(0, 150 - std::abs(j - 121)) + (j * 104729) % 97)});
    }
}

TEST(CompareTest, HistogramsAreNotExpanded) {
    std::vector<Weighted> e, c;
    histograms(e, c, 1);
    auto start = std::chrono::steady_clock::now();
    Comparison r = compare(e, c);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_EQ(r.n_experiment, 913067u);
    EXPECT_EQ(r.n_control, 912592u);
    EXPECT_DOUBLE_EQ(r.u, 419707152282.5);
    expect_rel(r.p_value, 5.3371062254113954e-18, 1e-6);  // scipy's U in double: looser
    EXPECT_DOUBLE_EQ(r.superiority, 0.5036943345058814);
    EXPECT_EQ(r.shift, 16.0);
    EXPECT_EQ(r.shift_low, 16.0);  // k = 415930977886
    EXPECT_EQ(r.shift_high, 16.0);
    EXPECT_EQ(describe(r, "us"), "experiment higher than control (p=5.3e-18, shift +16.0us [+16.0us, +16.0us], P(e>c)=0.50)");

    // A thousand times the counts (about 9e8 a side, 8e17 pairs): the same effect, surer.
    std::vector<Weighted> e3, c3;
    histograms(e3, c3, 1000);
    Comparison big = compare(e3, c3);
    EXPECT_EQ(big.n_experiment, 913067000u);
    EXPECT_DOUBLE_EQ(big.u, 419707152282.5e6);
    EXPECT_DOUBLE_EQ(big.superiority, r.superiority);
    EXPECT_EQ(big.shift, 16.0);
    EXPECT_EQ(big.shift_low, 16.0);
    EXPECT_EQ(big.shift_high, 16.0);
    EXPECT_GT(big.z, r.z);
    EXPECT_LT(big.p_value, 1e-300);
    EXPECT_TRUE(std::isfinite(big.z));
}

TEST(CompareTest, TooFewSamples) {
    auto seven = ones({1, 2, 3, 4, 5, 6, 7});
    Comparison r = compare(seven, cycle(100, 37));
    EXPECT_FALSE(r.enough);
    EXPECT_EQ(r.n_experiment, 7u);
    EXPECT_EQ(r.n_control, 40u);
    EXPECT_EQ(r.p_value, 1.0);
    EXPECT_EQ(r.z, 0.0);
    EXPECT_EQ(r.superiority, 0.5);
    EXPECT_EQ(r.shift, 0.0);
    EXPECT_EQ(r.shift_low, 0.0);
    EXPECT_EQ(r.shift_high, 0.0);
    EXPECT_EQ(describe(r), "too few samples (7 vs 40)");
    // Counts add up: one value seen eight times is enough.
    EXPECT_TRUE(compare({{1, 3}, {1, 5}}, {{2, 8}}).enough);
    EXPECT_FALSE(compare({{1, 8}}, {{2, 7}}).enough);
}

TEST(CompareTest, ZeroCountsAndNonFiniteValuesAreIgnored) {
    std::vector<Weighted> e{{3.5, 4}, {1.0, 2}, {7.25, 3}, {3.5, 1}, {2.0, 5}};
    std::vector<Weighted> c{{1.0, 6}, {2.0, 2}, {4.0, 3}, {0.5, 1}};
    const double inf = std::numeric_limits<double>::infinity();
    auto e2 = e, c2 = c;
    e2.push_back({1000, 0});
    e2.push_back({std::nan(""), 5});
    c2.insert(c2.begin(), {-inf, 3});
    c2.push_back({inf, 2});
    c2.push_back({-50, 0});
    Comparison a = compare(e, c), b = compare(e2, c2);
    EXPECT_EQ(b.n_experiment, 15u);
    EXPECT_EQ(b.n_control, 12u);
    EXPECT_EQ(to_json(a).dump(), to_json(b).dump());
}

TEST(CompareTest, EmptyInputs) {
    for (const auto& r : {compare({}, {}), compare({}, cycle(1, 37)), compare({{1, 0}, {2, 0}}, {{std::nan(""), 9}})}) {
        EXPECT_FALSE(r.enough);
        EXPECT_EQ(r.p_value, 1.0);
        EXPECT_EQ(r.shift, 0.0);
        EXPECT_FALSE(std::isnan(r.superiority));
    }
    EXPECT_EQ(compare({}, {}).n_experiment, 0u);
    EXPECT_EQ(describe(compare({}, {})), "too few samples (0 vs 0)");
    // Outside (0, 1), the confidence falls back to 0.95.
    EXPECT_EQ(compare(cycle(100, 37), cycle(108, 41), 1.5).confidence, 0.95);
    EXPECT_EQ(compare(cycle(100, 37), cycle(108, 41), std::nan("")).confidence, 0.95);
}

TEST(CompareTest, Json) {
    Comparison r = compare(cycle(108, 41), cycle(100, 37));
    json j = to_json(r);
    for (auto k : {"n_experiment", "n_control", "u", "z", "p_value", "superiority", "rank_biserial", "shift",
                   "shift_ci", "confidence", "enough"})
        EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_EQ(j.size(), 11u);
    EXPECT_EQ(j["n_experiment"], 40u);
    EXPECT_EQ(j["u"], 1274.0);
    EXPECT_EQ(j["shift"], 8.0);
    EXPECT_EQ(j["shift_ci"], json::array({5.0, 12.0}));
    EXPECT_EQ(j["confidence"], 0.95);
    EXPECT_EQ(j["enough"], true);
    EXPECT_EQ(j["p_value"].get<double>(), r.p_value);
    EXPECT_EQ(to_json(compare({}, {}))["enough"], false);
}

TEST(CompareTest, Describe) {
    EXPECT_EQ(describe(compare(cycle(108, 41), cycle(100, 37)), "ms"),
              "experiment higher than control (p=5.1e-06, shift +8.0ms [+5.0ms, +12.0ms], P(e>c)=0.80)");
    EXPECT_EQ(describe(compare(cycle(100, 37), cycle(108, 41))),
              "experiment lower than control (p=5.1e-06, shift -8.0 [-12.0, -5.0], P(e>c)=0.20)");
    EXPECT_EQ(describe(compare(ones({1, 2, 2, 3, 3, 3, 4, 5, 5, 9}), ones({0, 1, 1, 2, 3, 3, 4, 4, 6}))),
              "no significant difference (p=0.38)");
    // Significance is at 1 - confidence: p = 0.054 passes at 90%, not at 95%.
    std::vector<Weighted> e{{3.5, 4}, {1.0, 2}, {7.25, 3}, {3.5, 1}, {2.0, 5}};
    std::vector<Weighted> c{{1.0, 6}, {2.0, 2}, {4.0, 3}, {0.5, 1}};
    EXPECT_EQ(describe(compare(e, c)), "no significant difference (p=0.054)");
    EXPECT_EQ(describe(compare(e, c, 0.90)).rfind("experiment higher than control (p=0.054, shift +1.0 [", 0), 0u);
    // Small shifts keep two significant digits; zero has no sign.
    Comparison small = compare(cycle(108, 41), cycle(100, 37));
    small.shift = 0.0031, small.shift_low = 0, small.shift_high = -2.5e-7;
    EXPECT_EQ(describe(small), "experiment higher than control (p=5.1e-06, shift +0.0031 [0.0, -2.5e-07], P(e>c)=0.80)");
}

}  // namespace
}  // namespace tardy
