// SPDX-License-Identifier: Apache-2.0
// The statistical comparison of an experiment cohort with its control, as automated canary
// analysis does it: a Mann-Whitney U test (two-sided, normal approximation with the tie
// correction), the Hodges-Lehmann estimate of the shift (experiment minus control) with its
// confidence interval (Moses' method), and an effect size. Samples are weighted values, so a
// kernel histogram (bucket middles with their counts), 0/1 outcomes (a connect failed or
// not) and per-second readings are compared by the same code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tardy {

struct Weighted {
    double value = 0;
    uint64_t count = 0;  // how many samples have this value
};

struct Comparison {
    uint64_t n_experiment = 0, n_control = 0;
    double u = 0;            // U of the experiment: pairs (e, c) with e > c, plus half the ties
    double z = 0;            // standardised U (0 when the variance is 0)
    double p_value = 1;      // two-sided
    // Probability of superiority, U / (n_e * n_c): the chance a random experiment sample is
    // larger than a random control sample (ties count half). 0.5: no difference.
    double superiority = 0.5;
    double rank_biserial = 0;  // 2 * superiority - 1, in [-1, 1]
    double shift = 0;          // Hodges-Lehmann: the weighted median of pairwise e - c
    double shift_low = 0, shift_high = 0;  // its confidence interval
    double confidence = 0.95;
    bool enough = false;       // both sides have at least kMinSamples samples
    static constexpr uint64_t kMinSamples = 8;
};

// Compares two weighted samples. Zero-count entries are ignored; values need not be sorted or
// distinct. With fewer than kMinSamples on a side, `enough` is false and p_value 1, shift
// and interval 0. The pairwise differences are weighted (count_e * count_c), so the cost is
// the product of the numbers of distinct values, not of samples: a histogram's few hundred
// buckets are cheap. `confidence` in (0, 1); outside it (or NaN) 0.95 is used.
// Values that are NaN or infinite are ignored like zero counts (they count in neither n).
// The p-value takes the continuity correction (|U - n_e n_c / 2| less 0.5, never below 0) and
// the tie correction, as scipy.stats.mannwhitneyu(e, c, method='asymptotic') does; z keeps the
// sign of U - n_e n_c / 2. All values equal: the variance is 0, so z 0 and p 1. The interval
// runs from the k-th smallest to the k-th largest pairwise difference, k = floor(n_e n_c / 2 -
// z_{1-alpha/2} sqrt(n_e n_c (n_e + n_c + 1) / 12)), at least 1 (no tie correction in k). When
// not `enough`, u is n_e n_c / 2 and z, superiority and rank_biserial keep their defaults.
Comparison compare(const std::vector<Weighted>& experiment, const std::vector<Weighted>& control,
                   double confidence = 0.95);

// {"n_experiment", "n_control", "u", "z", "p_value", "superiority", "rank_biserial", "shift",
//  "shift_ci": [low, high], "confidence", "enough"}
nlohmann::json to_json(const Comparison& c);

// One line for people: "experiment higher than control (p=0.0003, shift +48.2 [+41.0, +55.1],
// P(e>c)=0.91)" or "no significant difference (p=0.42)" or "too few samples (3 vs 40)".
// `unit` follows numbers ("ms"); significance at 1 - confidence (p strictly below it); the
// direction is z's sign. p has two significant digits ("p<1e-300" when it underflows); shifts
// one decimal, or two significant digits below 0.1 ("+0.0031"); a zero shift is "0.0".
std::string describe(const Comparison& c, const std::string& unit = "");

}  // namespace tardy
