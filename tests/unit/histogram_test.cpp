// SPDX-License-Identifier: Apache-2.0
// model/cohort: the log-linear microsecond histogram user space reads from the kernel, and
// the quantiles, sums and cumulative counts made from it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/cohort.hpp"
#include "model/tardy_abi.hpp"

namespace tardy {
namespace {

Histogram of(std::initializer_list<uint64_t> us) {
    Histogram h;
    for (uint64_t v : us) h.buckets[Histogram::bucket_of(v)]++;
    return h;
}

double middle(uint32_t b) {
    Histogram h;
    h.buckets[b] = 1;
    return h.quantile_us(1.0);
}

TEST(Histogram, EveryBucketRoundTrips) {
    for (uint32_t b = 0; b < TARDY_HIST_BUCKETS; ++b) {
        uint64_t lo = Histogram::lower_us(b), w = Histogram::width_us(b);
        ASSERT_GE(w, 1u) << b;
        EXPECT_EQ(Histogram::bucket_of(lo), b) << "lowest value of bucket " << b;
        EXPECT_EQ(Histogram::bucket_of(lo + w - 1), b) << "highest value of bucket " << b;
        if (b + 1 < TARDY_HIST_BUCKETS)
            EXPECT_EQ(lo + w, Histogram::lower_us(b + 1)) << "bucket " << b << " does not end where the next begins";
        else
            EXPECT_EQ(lo + w, uint64_t{1} << 32) << "the last bucket ends at the cap";
    }
}

TEST(Histogram, SmallValuesAreExact) {
    for (uint64_t v = 0; v < TARDY_HIST_SUB; ++v) {
        uint32_t b = Histogram::bucket_of(v);
        EXPECT_EQ(Histogram::lower_us(b), v);
        EXPECT_EQ(Histogram::width_us(b), 1u);
        EXPECT_EQ(middle(b), double(v));
    }
}

TEST(Histogram, ValuesBeyondTheCapLandInTheLastBucket) {
    EXPECT_EQ(Histogram::bucket_of(0xffffffffull), TARDY_HIST_BUCKETS - 1);
    EXPECT_EQ(Histogram::bucket_of(uint64_t{1} << 40), TARDY_HIST_BUCKETS - 1);
    EXPECT_EQ(Histogram::bucket_of(~uint64_t{0}), TARDY_HIST_BUCKETS - 1);
}

TEST(Histogram, RandomValuesLandInTheirBucketWithinOnePointSixPercent) {
    std::mt19937_64 rng(20240611);
    for (int i = 0; i < 200000; ++i) {
        // Spread over every power of two up to the cap.
        int bits = static_cast<int>(rng() % 33);
        uint64_t v = bits ? rng() >> (64 - bits) : 0;
        uint32_t b = Histogram::bucket_of(v);
        ASSERT_LT(b, TARDY_HIST_BUCKETS);
        uint64_t lo = Histogram::lower_us(b), w = Histogram::width_us(b);
        ASSERT_LE(lo, v) << v;
        ASSERT_LT(v, lo + w) << v;
        if (v >= TARDY_HIST_SUB) {
            double mid = double(lo) + double(w) / 2;
            ASSERT_LE(std::fabs(mid - double(v)) / double(v), 0.008) << v;
        }
    }
    // And through the public API, on a few.
    for (uint64_t v : {32ull, 33ull, 63ull, 64ull, 1000ull, 123456ull, 4000000000ull}) {
        double mid = middle(Histogram::bucket_of(v));
        EXPECT_LE(std::fabs(mid - double(v)) / double(v), 0.008) << v;
    }
}

TEST(Histogram, EmptyHasNothing) {
    Histogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.sum_us(), 0.0);
    EXPECT_EQ(h.quantile_us(0.5), 0.0);
    EXPECT_EQ(h.count_at_most_us(1e12), 0u);
}

TEST(Histogram, QuantilesOfKnownSamplesAreNearestRank) {
    Histogram h;
    for (uint64_t v = 1; v <= 20; ++v) h.buckets[Histogram::bucket_of(v)]++;
    EXPECT_EQ(h.count(), 20u);
    EXPECT_EQ(h.quantile_us(0.5), 10.0);   // rank 10 of 20
    EXPECT_EQ(h.quantile_us(0.9), 18.0);   // rank 18
    EXPECT_EQ(h.quantile_us(0.99), 20.0);  // rank ceil(19.8) = 20
    EXPECT_EQ(h.quantile_us(1.0), 20.0);
    EXPECT_EQ(h.quantile_us(0.01), 1.0);  // rank at least 1
    EXPECT_EQ(h.sum_us(), 210.0);

    // 1000 samples near 1 ms and 10 near 100 ms: p99 is still 1 ms, p99.9 is 100 ms.
    Histogram t;
    t.buckets[Histogram::bucket_of(1000)] = 1000;
    t.buckets[Histogram::bucket_of(100000)] = 10;
    EXPECT_NEAR(t.quantile_us(0.5), 1000, 16);
    EXPECT_NEAR(t.quantile_us(0.99), 1000, 16);
    EXPECT_NEAR(t.quantile_us(0.999), 100000, 1600);
    EXPECT_NEAR(t.sum_us(), 1000 * middle(Histogram::bucket_of(1000)) + 10 * middle(Histogram::bucket_of(100000)),
                1e-6);
}

TEST(Histogram, CountAtMostTakesWholeBucketsOnly) {
    Histogram h = of({10, 31, 1000, 70'000'000});
    EXPECT_EQ(h.count_at_most_us(9), 0u);
    EXPECT_EQ(h.count_at_most_us(10), 1u);
    EXPECT_EQ(h.count_at_most_us(30), 1u);
    EXPECT_EQ(h.count_at_most_us(31), 2u);
    // 1000 is in [1000, 1008): counted from 1008 on, when all of its bucket is at or below.
    uint32_t b = Histogram::bucket_of(1000);
    ASSERT_EQ(Histogram::lower_us(b), 1000u);
    ASSERT_EQ(Histogram::width_us(b), 8u);
    EXPECT_EQ(h.count_at_most_us(1007), 2u);
    EXPECT_EQ(h.count_at_most_us(1008), 3u);
    EXPECT_EQ(h.count_at_most_us(60e6), 3u);
    EXPECT_EQ(h.count_at_most_us(1e12), 4u);
}

TEST(Histogram, SubtractAnEarlierReading) {
    Histogram earlier = of({5, 5, 1000, 2000});
    Histogram later = earlier;
    later.add(of({5, 1000, 1000, 50000}));
    Histogram d = later;
    d.subtract(earlier);
    EXPECT_EQ(d.count(), 4u);
    EXPECT_EQ(d.buckets.at(Histogram::bucket_of(5)), 1u);
    EXPECT_EQ(d.buckets.at(Histogram::bucket_of(1000)), 2u);
    EXPECT_EQ(d.buckets.at(Histogram::bucket_of(50000)), 1u);
    EXPECT_EQ(d.buckets.count(Histogram::bucket_of(2000)), 0u) << "a bucket that did not grow is gone";

    // A reading that went backwards (a counter reset) never goes below zero.
    Histogram back = of({5});
    back.subtract(of({5, 5, 7}));
    EXPECT_EQ(back.count(), 0u);
    EXPECT_TRUE(back.buckets.empty());
}

TEST(Histogram, CohortMetricsSubtractsEveryField) {
    CohortMetrics a, b;
    a.connects = 10, a.failed_refused = 3, a.bytes_in = 1000, a.tardy_stalled = 2;
    a.connect_us = of({100, 200});
    b = a;
    b.connects = 15, b.failed_refused = 4, b.bytes_in = 900;  // bytes_in went backwards
    b.connect_us.add(of({300}));
    b.subtract(a);
    EXPECT_EQ(b.connects, 5u);
    EXPECT_EQ(b.failed_refused, 1u);
    EXPECT_EQ(b.bytes_in, 0u);
    EXPECT_EQ(b.tardy_stalled, 0u);
    EXPECT_EQ(b.connect_us.count(), 1u);
    EXPECT_EQ(b.failed(), 1u);
}

}  // namespace
}  // namespace tardy
