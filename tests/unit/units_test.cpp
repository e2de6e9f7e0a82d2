// SPDX-License-Identifier: Apache-2.0
// user/units: the durations and percentages users type, and how they are printed back.
#include "model/units.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace tardy {
namespace {

using test::FailsWithUserError;

using test::kH;
using test::kM;
using test::kMs;
using test::kS;
using test::kUs;

// ---- parse_duration_ns ---------------------------------------------------------------------

TEST(ParseDuration, AcceptsEveryUnit) {
    struct {
        const char* text;
        uint64_t ns;
    } cases[] = {
        {"100ns", 100},         {"250us", 250 * kUs}, {"20ms", 20 * kMs}, {"1.5s", 1500 * kMs},
        {"5m", 5 * kM},         {"1h", kH},           {"0.1s", 100 * kMs}, {"2.5us", 2500},
        {"0.3ms", 300 * kUs},   {".5s", 500 * kMs},   {"5.s", 5 * kS},     {"007ms", 7 * kMs},
        {"1.000000001s", kS + 1}, {"0ns", 0},
    };
    for (const auto& c : cases) {
        auto r = parse_duration_ns(c.text, "--delay");
        ASSERT_TRUE(r) << c.text << ": " << r.error().message;
        EXPECT_EQ(*r, c.ns) << c.text;
    }
}

TEST(ParseDuration, SuffixMsIsNotMinutesPlusSeconds) {
    auto ms = parse_duration_ns("5ms", "--delay");
    auto m = parse_duration_ns("5m", "--delay");
    ASSERT_TRUE(ms);
    ASSERT_TRUE(m);
    EXPECT_EQ(*ms, 5 * kMs);
    EXPECT_EQ(*m, 5 * kM);
}

// Every value written with at most 9 decimals in seconds is a whole number of nanoseconds and
// must be accepted exactly. Binary floating point gets e.g. 0.001s wrong.
TEST(ParseDuration, ExactDecimalsAreAcceptedExactly) {
    struct {
        const char* text;
        uint64_t ns;
    } cases[] = {
        {"0.001s", 1 * kMs},          {"0.002s", 2 * kMs},      {"1.234567891s", 1'234'567'891},
        {"0.000000001s", 1},          {"0.001ms", 1 * kUs},     {"0.006s", 6 * kMs},
        {"4.999999999s", 4'999'999'999},
    };
    for (const auto& c : cases) {
        auto r = parse_duration_ns(c.text, "--delay");
        EXPECT_TRUE(r) << c.text << ": " << (r ? "" : r.error().message);
        if (r) {
            EXPECT_EQ(*r, c.ns) << c.text;
        }
    }
    int refused = 0;
    std::string first;
    for (unsigned ms = 0; ms <= 10'000; ++ms) {
        char b[32];
        std::snprintf(b, sizeof b, "%u.%03us", ms / 1000, ms % 1000);
        auto r = parse_duration_ns(b, "--delay");
        if (!r || *r != ms * kMs) {
            if (!refused++) first = b;
        }
    }
    EXPECT_EQ(refused, 0) << "of 0.000s..10.000s, " << refused << " are not parsed exactly; first: " << first;
}

TEST(ParseDuration, RefusesBareNumbers) {
    for (const char* t : {"5", "0", "1.5", "100"})
        EXPECT_TRUE(FailsWithUserError(parse_duration_ns(t, "--delay"), {"--delay", "unit"})) << t;
}

TEST(ParseDuration, RefusesNegative) {
    EXPECT_TRUE(FailsWithUserError(parse_duration_ns("-5ms", "--delay"), {"--delay", "-5ms", "negative"}));
    EXPECT_TRUE(FailsWithUserError(parse_duration_ns("-0s", "--for"), {"--for", "negative"}));
}

TEST(ParseDuration, RefusesMalformed) {
    for (const char* t : {"", "ms", "s", "1.2.3s", " 5ms", "5ms ", "5 ms", "1e3ms", "0x10ms", "0x10", "+5ms", "5msx",
                          "5sec", "5min", "5M", "5MS", ".s", "5..0s", "abc", "5ms5", "\t5ms"})
        EXPECT_TRUE(FailsWithUserError(parse_duration_ns(t, "--jitter"), {"--jitter", "not a duration"}))
            << "'" << t << "'";
}

TEST(ParseDuration, RefusesOverflow) {
    for (const char* t : {"99999999999999h", "18446744073709551616ns", "99999999999999999999999999999999s",
                          "277778h"})
        EXPECT_TRUE(FailsWithUserError(parse_duration_ns(t, "--for"), {"--for", "too long"})) << t;
    // Very long digit strings are refused, not read as garbage.
    EXPECT_TRUE(FailsWithUserError(parse_duration_ns(std::string(200, '9') + "h", "--for"), {"--for"}));
}

TEST(ParseDuration, RefusesSubNanosecond) {
    for (const char* t : {"0.5ns", "1.5ns", "0.0001us", "0.0000000001s"})
        EXPECT_TRUE(FailsWithUserError(parse_duration_ns(t, "--delay"), {"--delay", "nanosecond"})) << t;
}

TEST(ParseDuration, ErrorNamesTheFlagItWasGiven) {
    for (const char* flag : {"--delay", "--jitter", "--for"}) {
        auto r = parse_duration_ns("soon", flag);
        EXPECT_TRUE(FailsWithUserError(r, {flag, "soon"}));
    }
}

// Errors are printed as "tardy: <message>\n"; a newline typed into a value must not split it.
TEST(ParseDuration, ErrorIsOneLineEvenWhenTheInputHasANewline) {
    EXPECT_TRUE(FailsWithUserError(parse_duration_ns("5\nms", "--delay"), {"--delay"}));
}

// ---- parse_percent_ppm ---------------------------------------------------------------------

TEST(ParsePercent, Accepts) {
    struct {
        const char* text;
        uint32_t ppm;
    } cases[] = {{"5%", 50'000},   {"0.01%", 100},     {"100%", 1'000'000}, {"0%", 0},
                 {"0.1%", 1'000},  {"12.3456%", 123'456}, {".5%", 5'000},    {"100.0000%", 1'000'000},
                 {"0.0007%", 7},   {"33.3333%", 333'333}};
    for (const auto& c : cases) {
        auto r = parse_percent_ppm(c.text, "--loss");
        ASSERT_TRUE(r) << c.text << ": " << r.error().message;
        EXPECT_EQ(*r, c.ppm) << c.text;
    }
}

// The resolution is one part per million, 0.0001%: every such value must be accepted exactly.
TEST(ParsePercent, EveryPartPerMillionIsAccepted) {
    struct {
        const char* text;
        uint32_t ppm;
    } cases[] = {{"0.0001%", 1}, {"0.0002%", 2}, {"99.9999%", 999'999}, {"33.33%", 333'300}, {"0.0006%", 6}};
    for (const auto& c : cases) {
        auto r = parse_percent_ppm(c.text, "--loss");
        EXPECT_TRUE(r) << c.text << ": " << (r ? "" : r.error().message);
        if (r) {
            EXPECT_EQ(*r, c.ppm) << c.text;
        }
    }
    // What format_ppm prints must read back: it prints 1 ppm as "0.0001%" and 333300 as "33.33%".
    for (uint32_t p : {1u, 333'300u}) {
        auto r = parse_percent_ppm(format_ppm(p), "--loss");
        EXPECT_TRUE(r && *r == p) << p << " -> " << format_ppm(p) << " -> "
                                  << (r ? std::to_string(*r) : r.error().message);
    }
    int refused = 0;
    std::string first;
    for (uint32_t p = 0; p <= 1'000'000; p += 7) {  // a stride keeps this fast
        char b[32];
        std::snprintf(b, sizeof b, "%u.%04u%%", p / 10000, p % 10000);
        auto r = parse_percent_ppm(b, "--loss");
        if (!r || *r != p) {
            if (!refused++) first = b;
        }
    }
    EXPECT_EQ(refused, 0) << refused << " of 142858 values written with 4 decimals are refused or wrong; first: "
                          << first;
}

TEST(ParsePercent, RefusesOver100) {
    for (const char* t : {"100.0001%", "101%", "1000%", "120%"})
        EXPECT_TRUE(FailsWithUserError(parse_percent_ppm(t, "--loss"), {"--loss", "100%"})) << t;
}

TEST(ParsePercent, RefusesNegative) {
    EXPECT_TRUE(FailsWithUserError(parse_percent_ppm("-1%", "--loss"), {"--loss", "negative"}));
}

TEST(ParsePercent, RefusesMalformed) {
    for (const char* t : {"5", "%", "", "5 %", " 5%", "5%%", "+5%", "1e2%", "0x5%", "5.5.5%", "five%", "%5"})
        EXPECT_TRUE(FailsWithUserError(parse_percent_ppm(t, "--loss"), {"--loss", "%"})) << "'" << t << "'";
}

TEST(ParsePercent, RefusesFinerThanOnePpm) {
    for (const char* t : {"0.00001%", "0.00005%", "1.00001%"})
        EXPECT_TRUE(FailsWithUserError(parse_percent_ppm(t, "--loss"), {"--loss", "0.0001%"})) << t;
}

// ---- format_duration / format_ppm ----------------------------------------------------------

TEST(FormatDuration, PicksTheLargestExactUnit) {
    EXPECT_EQ(format_duration(0), "0s");
    EXPECT_EQ(format_duration(1), "1ns");
    EXPECT_EQ(format_duration(999), "999ns");
    EXPECT_EQ(format_duration(250 * kUs), "250us");
    EXPECT_EQ(format_duration(50 * kMs), "50ms");
    EXPECT_EQ(format_duration(1500 * kMs), "1.5s");
    EXPECT_EQ(format_duration(5 * kM), "5m");
    EXPECT_EQ(format_duration(2500), "2.5us");
}

TEST(FormatDuration, RoundTripsThroughParse) {
    std::vector<uint64_t> values = {1,       7,       999,          kUs,      250 * kUs, 20 * kMs, 1500 * kMs,
                                    5 * kS,  59 * kS, 5 * kM,       kH,       90 * kM,   100 * kH, 2500,
                                    300 * kUs, 1'500, 12'300 * kS};
    for (uint64_t v : values) {
        std::string f = format_duration(v);
        auto r = parse_duration_ns(f, "--for");
        ASSERT_TRUE(r) << v << " -> '" << f << "': " << r.error().message;
        EXPECT_EQ(*r, v) << v << " -> '" << f << "'";
    }
    // And the other way: what users type comes back as they typed it.
    for (const char* t : {"250us", "1.5s", "5m", "100ns", "20ms", "2.5us", "45s"}) {
        auto r = parse_duration_ns(t, "--delay");
        ASSERT_TRUE(r) << t;
        EXPECT_EQ(format_duration(*r), t);
    }
}

// The printed form is read by people in `tardy list` and in messages: no exponent notation.
TEST(FormatDuration, NeverPrintsExponents) {
    for (uint64_t v : std::vector<uint64_t>{999'999'999, 999'999, 999'600, 59'999'999'999, 1000 * kM + kS, 999'500'000}) {
        std::string f = format_duration(v);
        EXPECT_EQ(f.find('e'), std::string::npos) << v << " -> " << f;
    }
}

TEST(FormatPpm, PrintsPercentages) {
    EXPECT_EQ(format_ppm(0), "0%");
    EXPECT_EQ(format_ppm(50'000), "5%");
    EXPECT_EQ(format_ppm(1'000'000), "100%");
    EXPECT_EQ(format_ppm(100), "0.01%");
    EXPECT_EQ(format_ppm(1'000), "0.1%");
    EXPECT_EQ(format_ppm(11'000), "1.1%");
    EXPECT_EQ(format_ppm(7), "0.0007%");
    EXPECT_EQ(format_ppm(1), "0.0001%");
}

TEST(FormatPpm, RoundTripsThroughParse) {
    for (uint32_t p : {0u, 7u, 100u, 1'000u, 5'000u, 11'000u, 50'000u, 250'000u, 333'000u, 999'000u, 1'000'000u}) {
        std::string f = format_ppm(p);
        auto r = parse_percent_ppm(f, "--loss");
        ASSERT_TRUE(r) << p << " -> '" << f << "': " << r.error().message;
        EXPECT_EQ(*r, p) << p << " -> '" << f << "'";
    }
    for (const char* t : {"5%", "0.01%", "100%", "0%", "12.5%", "0.5%"}) {
        auto r = parse_percent_ppm(t, "--loss");
        ASSERT_TRUE(r) << t;
        EXPECT_EQ(format_ppm(*r), t);
    }
}

}  // namespace
}  // namespace tardy
