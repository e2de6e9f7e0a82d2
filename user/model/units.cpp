// SPDX-License-Identifier: Apache-2.0
#include "model/units.hpp"

#include <array>
#include <cstdio>
#include <utility>

namespace tardy {
namespace {

struct Unit {
    std::string_view suffix;
    uint64_t ns;
};
// Longest suffix first so "ms" is not read as "m" + "s".
constexpr std::array<Unit, 6> kUnits{{{"ns", 1},
                                      {"us", 1'000},
                                      {"ms", 1'000'000},
                                      {"s", 1'000'000'000},
                                      {"m", 60'000'000'000ULL},
                                      {"h", 3'600'000'000'000ULL}}};

// Digits with at most one '.', nothing else (no sign, exponent, spaces or hex), read
// exactly: whole, and the fraction's first 18 digits as an integer over 10^frac_digits.
// *lost is set when a non-zero digit lies beyond those 18 (no unit resolves it).
bool parse_decimal(std::string_view s, uint64_t& whole, uint64_t& frac, int& frac_digits, bool& lost) {
    if (s.empty() || s.size() > 400) return false;
    whole = frac = 0;
    frac_digits = 0;
    lost = false;
    bool dot = false, digit = false;
    for (char c : s) {
        if (c == '.') {
            if (dot) return false;
            dot = true;
        } else if (c >= '0' && c <= '9') {
            digit = true;
            if (dot) {
                if (frac_digits >= 18) {
                    lost |= c != '0';
                    continue;
                }
                frac = frac * 10 + static_cast<uint64_t>(c - '0');
                frac_digits++;
            } else {
                // Saturate: a huge number is still a number, refused later as too large.
                whole = whole > 1'000'000'000'000'000ULL ? 10'000'000'000'000'000'000ULL
                                                          : whole * 10 + static_cast<uint64_t>(c - '0');
            }
        } else {
            return false;
        }
    }
    return digit;
}

uint64_t pow10(int n) {
    uint64_t p = 1;
    while (n-- > 0) p *= 10;
    return p;
}

constexpr uint64_t kMaxDurationNs = 1000ULL * 3'600'000'000'000ULL;  // 1000h

}  // namespace

std::string shown(std::string_view v) {
    std::string out;
    for (char c : v) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    return out;
}

Result<uint64_t> parse_duration_ns(std::string_view text, std::string_view flag) {
    std::string f(flag);
    std::string t = shown(text);
    if (!text.empty() && text[0] == '-')
        return Error::user(f + " " + t + ": a duration cannot be negative; use e.g. 50ms");
    for (const auto& u : kUnits) {
        // "ms" must not match "m": pick the unit whose suffix ends the text and leaves a number.
        if (text.size() <= u.suffix.size() || !text.ends_with(u.suffix)) continue;
        uint64_t whole, frac;
        int digits;
        bool lost;
        if (!parse_decimal(text.substr(0, text.size() - u.suffix.size()), whole, frac, digits, lost)) continue;
        using u128 = unsigned __int128;
        u128 scale = pow10(digits);
        u128 frac_ns = static_cast<u128>(frac) * u.ns;
        u128 ns = static_cast<u128>(whole) * u.ns + frac_ns / scale;
        bool inexact = lost || frac_ns % scale != 0;
        // "Too long" before "too fine": 99999h.5ns is wrong for the first reason.
        if (ns > static_cast<u128>(kMaxDurationNs) || (ns == static_cast<u128>(kMaxDurationNs) && inexact))
            return Error::user(f + " " + t + ": too long; use at most 1000h");
        if (inexact) return Error::user(f + " " + t + ": finer than a nanosecond; round it");
        return static_cast<uint64_t>(ns);
    }
    return Error::user(f + " '" + t +
                       "': not a duration; use a number with a unit: ns, us, ms, s, m or h (e.g. 250us, 1.5s)");
}

Result<uint32_t> parse_percent_ppm(std::string_view text, std::string_view flag) {
    std::string f(flag);
    std::string t = shown(text);
    if (!text.empty() && text[0] == '-')
        return Error::user(f + " " + t + ": a percentage cannot be negative; use 0% to 100%");
    uint64_t whole, frac;
    int digits;
    bool lost;
    if (!text.ends_with('%') || !parse_decimal(text.substr(0, text.size() - 1), whole, frac, digits, lost))
        return Error::user(f + " '" + t + "': not a percentage; write it with a % sign, e.g. 5% or 0.01%");
    // ppm = (whole + frac / 10^digits) * 10^4
    using u128 = unsigned __int128;
    u128 scale = pow10(digits), frac_ppm = static_cast<u128>(frac) * 10000;
    u128 ppm = static_cast<u128>(whole) * 10000 + frac_ppm / scale;
    bool inexact = lost || frac_ppm % scale != 0;
    // "Over 100%" before "too fine": 100.00001% is wrong for the first reason.
    if (ppm > 1'000'000 || (ppm == 1'000'000 && inexact))
        return Error::user(f + " " + t + ": over 100%; use 0% to 100%");
    if (inexact) return Error::user(f + " " + t + ": finer than 0.0001%; round it");
    return static_cast<uint32_t>(ppm);
}

// An exact decimal: whole units and the remainder's digits without trailing zeros.
static std::string exact(uint64_t v, uint64_t unit, std::string_view suffix) {
    std::string s = std::to_string(v / unit);
    if (uint64_t rem = v % unit) {
        std::string r = std::to_string(rem);
        r = std::string(std::to_string(unit).size() - 1 - r.size(), '0') + r;
        while (r.back() == '0') r.pop_back();
        s += "." + r;
    }
    return s + std::string(suffix);
}

std::string format_duration(uint64_t ns) {
    for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
        if (it->suffix == "h" || ns < it->ns) continue;
        if (it->suffix == "m" && ns % it->ns != 0) continue;  // "1.5m" is not a decimal of 60
        return exact(ns, it->ns, it->suffix);
    }
    return "0s";
}

std::string format_ppm(uint32_t ppm) { return exact(ppm, 10000, "%"); }

}  // namespace tardy
