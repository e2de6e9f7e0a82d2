// SPDX-License-Identifier: Apache-2.0
// What the end-to-end benches share: their one option, `--rounds N` (more rounds make the
// median of the per-round ratios tighter: its spread shrinks with the square root of the
// rounds, for a figure read against an aim of a few percent on a noisy machine), and the
// quantiles they report.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace tardy::test {

// The rounds asked for (`prog [--rounds N]`, N from 3 to 1000), else `def`; 0 after a usage
// error, printed as one line on stderr (the caller exits 2).
inline int bench_rounds(int argc, char** argv, const char* prog, int def) {
    if (argc == 1) return def;
    if (argc == 3 && std::strcmp(argv[1], "--rounds") == 0) {
        char* end = nullptr;
        long n = std::strtol(argv[2], &end, 10);
        if (end && end != argv[2] && !*end && n >= 3 && n <= 1000) return static_cast<int>(n);
        std::fprintf(stderr, "%s: --rounds '%s': use a whole number from 3 to 1000, e.g. --rounds 45\n", prog, argv[2]);
        return 0;
    }
    std::fprintf(stderr, "%s: usage: %s [--rounds N] (default %d rounds)\n", prog, prog, def);
    return 0;
}

// The q-quantile of v (nearest rank), 0 for none.
inline double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[static_cast<size_t>(q * (v.size() - 1) + 0.5)];
}
inline double median(std::vector<double> v) { return quantile(std::move(v), 0.5); }

}  // namespace tardy::test
