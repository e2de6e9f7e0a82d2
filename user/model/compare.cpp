// SPDX-License-Identifier: Apache-2.0
// The Mann-Whitney U test, the Hodges-Lehmann shift with Moses' interval, and the effect size.
#include "model/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>

namespace tardy {
namespace {

// Counts are summed and multiplied exactly: n_e * n_c can pass 2^64 only with absurd counts,
// but the pairwise weights are kept in 128 bits so that nothing wraps anyway. Long double (the
// x87 80-bit type on x86_64, 64-bit mantissa) holds U, 2U and n_e * n_c exactly up to 2^64.
using Wide = unsigned __int128;
using Real = long double;

// Drops zero counts and values that are not finite, sorts, and merges equal values: the rest of
// the code sees strictly increasing values with positive counts.
std::vector<Weighted> tidy(const std::vector<Weighted>& in, uint64_t& n) {
    std::vector<Weighted> v;
    v.reserve(in.size());
    for (const auto& w : in)
        if (w.count && std::isfinite(w.value)) v.push_back(w);
    std::sort(v.begin(), v.end(), [](const Weighted& a, const Weighted& b) { return a.value < b.value; });
    std::vector<Weighted> out;
    n = 0;
    for (const auto& w : v) {
        if (!out.empty() && out.back().value == w.value)
            out.back().count += w.count;
        else
            out.push_back(w);
        n += w.count;
    }
    return out;
}

// U of the experiment: for each of its values, the control samples below it plus half those
// equal to it, times its count. One merge over the two sorted lists.
Real mann_whitney_u(const std::vector<Weighted>& e, const std::vector<Weighted>& c) {
    Real u = 0;
    uint64_t below = 0;
    size_t j = 0;
    for (const auto& x : e) {
        while (j < c.size() && c[j].value < x.value) below += c[j++].count;
        Real equal = j < c.size() && c[j].value == x.value ? Real(c[j].count) : 0;
        u += Real(x.count) * (Real(below) + equal / 2);
    }
    return u;
}

// The tie term of the variance, sum over the distinct values of the pooled sample of t^3 - t
// (t: how many samples, of both sides, share the value), divided by N (N - 1).
Real tie_term(const std::vector<Weighted>& e, const std::vector<Weighted>& c, Real n) {
    Real sum = 0;
    size_t i = 0, j = 0;
    while (i < e.size() || j < c.size()) {
        Real t;
        if (j == c.size() || (i < e.size() && e[i].value < c[j].value)) {
            t = Real(e[i++].count);
        } else if (i == e.size() || c[j].value < e[i].value) {
            t = Real(c[j++].count);
        } else {
            t = Real(e[i++].count) + Real(c[j++].count);
        }
        sum += (t / n) * ((t - 1) / (n - 1)) * (t + 1);
    }
    return sum;
}

// The standard normal quantile: Acklam's rational approximation (relative error 1.2e-9), then
// one Halley step on std::erfc, which brings it to about double precision. p in (0, 1).
double normal_quantile(double p) {
    static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                   1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                   6.680131188771972e+01,  -1.328068155288572e+01};
    static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                   -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                   3.754408661907416e+00};
    constexpr double kLow = 0.02425;
    auto tail = [&](double q) {  // q = sqrt(-2 log(tail probability)); the lower tail's x
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    };
    double x;
    if (p < kLow) {
        x = tail(std::sqrt(-2 * std::log(p)));
    } else if (p > 1 - kLow) {
        x = -tail(std::sqrt(-2 * std::log1p(-p)));
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    double err = 0.5 * std::erfc(-x / std::numbers::sqrt2) - p;
    double u = err * std::sqrt(2 * std::numbers::pi) * std::exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

struct Difference {
    double value;
    Wide weight;
};

// The rank-th smallest (1-based) of the weighted differences, sorted by value; `cum` runs along.
double at_rank(const std::vector<Difference>& d, Wide rank) {
    Wide cum = 0;
    for (const auto& x : d) {
        cum += x.weight;
        if (cum >= rank) return x.value;
    }
    return d.back().value;
}

}  // namespace

Comparison compare(const std::vector<Weighted>& experiment, const std::vector<Weighted>& control,
                   double confidence) {
    Comparison r;
    if (!(confidence > 0 && confidence < 1)) confidence = 0.95;  // outside the contract (or NaN)
    r.confidence = confidence;
    auto e = tidy(experiment, r.n_experiment);
    auto c = tidy(control, r.n_control);
    const Real ne = Real(r.n_experiment), nc = Real(r.n_control), pairs = ne * nc, n = ne + nc;
    // Below kMinSamples the defaults stand, all saying "no difference": U at its expectation
    // n_e n_c / 2, z 0, p 1, superiority 0.5, shift and interval 0.
    r.u = double(pairs / 2);
    r.enough = r.n_experiment >= Comparison::kMinSamples && r.n_control >= Comparison::kMinSamples;
    if (!r.enough) return r;

    // The test. Mean n_e n_c / 2; variance n_e n_c / 12 * (N + 1 - sum(t^3 - t) / (N (N - 1))).
    // The continuity correction takes 0.5 off |U - mean| (never past 0), as scipy's
    // mannwhitneyu(..., method='asymptotic', use_continuity=True) does; z keeps the sign of
    // U - mean, positive when the experiment is higher.
    const Real u = mann_whitney_u(e, c);
    r.u = double(u);
    r.superiority = double(u / pairs);
    r.rank_biserial = 2 * r.superiority - 1;
    const Real var = pairs / 12 * ((n + 1) - tie_term(e, c, n));
    // All samples equal: the variance is 0 in exact arithmetic. Otherwise the bracket is at
    // least about 3 / N of N + 1, far above long double's rounding.
    if (var > pairs / 12 * (n + 1) * 1e-15L) {
        Real dev = std::max(std::fabs(u - pairs / 2) - Real(0.5), Real(0));
        Real z = dev / std::sqrt(var);
        r.z = double(u < pairs / 2 ? -z : z);
        r.p_value = std::min(1.0, std::erfc(std::fabs(r.z) / std::numbers::sqrt2));
    }

    // Hodges-Lehmann and Moses: the weighted pairwise differences e - c, sorted once.
    std::vector<Difference> d;
    d.reserve(e.size() * c.size());
    for (const auto& x : e)
        for (const auto& y : c) d.push_back({x.value - y.value, Wide(x.count) * y.count});
    std::sort(d.begin(), d.end(), [](const Difference& a, const Difference& b) { return a.value < b.value; });
    const Wide total = Wide(r.n_experiment) * r.n_control;
    // The median of the expanded differences: the middle one, or the mean of the two middle.
    if (total % 2)
        r.shift = at_rank(d, total / 2 + 1);
    else
        r.shift = (at_rank(d, total / 2) + at_rank(d, total / 2 + 1)) / 2;
    // Moses: k = floor(n_e n_c / 2 - z_{1-alpha/2} sqrt(n_e n_c (N + 1) / 12)), at least 1 (no
    // tie correction here); the interval runs from the k-th smallest to the k-th largest.
    const double zq = -normal_quantile((1 - confidence) / 2);
    Real kr = std::floor(pairs / 2 - Real(zq) * std::sqrt(pairs * (n + 1) / 12));
    Wide k = kr < 1 ? 1 : Wide(kr);
    if (k > total) k = total;
    r.shift_low = at_rank(d, k);
    r.shift_high = at_rank(d, total - k + 1);
    return r;
}

nlohmann::json to_json(const Comparison& c) {
    return {{"n_experiment", c.n_experiment},
            {"n_control", c.n_control},
            {"u", c.u},
            {"z", c.z},
            {"p_value", c.p_value},
            {"superiority", c.superiority},
            {"rank_biserial", c.rank_biserial},
            {"shift", c.shift},
            {"shift_ci", {c.shift_low, c.shift_high}},
            {"confidence", c.confidence},
            {"enough", c.enough}};
}

namespace {

// A signed number for people: one decimal ("+48.2"), or two significant digits below 0.1
// ("+0.0031", "-2.5e-07"); zero has no sign.
std::string signed_number(double x, const std::string& unit) {
    char buf[64];
    if (x == 0)
        std::snprintf(buf, sizeof buf, "0.0");
    else if (std::fabs(x) >= 0.1)
        std::snprintf(buf, sizeof buf, "%+.1f", x);
    else
        std::snprintf(buf, sizeof buf, "%+.2g", x);
    return buf + unit;
}

// Two significant digits ("0.42", "0.0003", "1.2e-45"); below what a double holds, "<1e-300".
std::string p_text(double p) {
    if (p < 1e-300) return "p<1e-300";
    char buf[64];
    std::snprintf(buf, sizeof buf, "p=%.2g", p);
    return buf;
}

}  // namespace

std::string describe(const Comparison& c, const std::string& unit) {
    if (!c.enough)
        return "too few samples (" + std::to_string(c.n_experiment) + " vs " + std::to_string(c.n_control) + ")";
    if (!(c.p_value < 1 - c.confidence)) return "no significant difference (" + p_text(c.p_value) + ")";
    char sup[32];
    std::snprintf(sup, sizeof sup, "%.2f", c.superiority);
    return std::string("experiment ") + (c.z > 0 ? "higher" : "lower") + " than control (" + p_text(c.p_value) +
           ", shift " + signed_number(c.shift, unit) + " [" + signed_number(c.shift_low, unit) + ", " +
           signed_number(c.shift_high, unit) + "], P(e>c)=" + sup + ")";
}

}  // namespace tardy
