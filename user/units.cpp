#include "units.hpp"

#include <array>
#include <cmath>
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

// Digits with at most one '.', nothing else (no sign, exponent, spaces or hex).
bool parse_decimal(std::string_view s, long double& out) {
    if (s.empty() || s.size() > 32) return false;
    long double whole = 0, frac = 0, scale = 1;
    bool dot = false, digit = false;
    for (char c : s) {
        if (c == '.') {
            if (dot) return false;
            dot = true;
        } else if (c >= '0' && c <= '9') {
            digit = true;
            if (dot) {
                scale /= 10;
                frac += (c - '0') * scale;
            } else {
                whole = whole * 10 + (c - '0');
            }
        } else {
            return false;
        }
    }
    if (!digit) return false;
    out = whole + frac;
    return true;
}

}  // namespace

Result<uint64_t> parse_duration_ns(std::string_view text, std::string_view flag) {
    std::string f(flag);
    std::string t(text);
    if (!text.empty() && text[0] == '-')
        return Error::user(f + " " + t + ": a duration cannot be negative; use e.g. 50ms");
    for (const auto& u : kUnits) {
        // "ms" must not match "m": pick the unit whose suffix ends the text and leaves a number.
        if (text.size() <= u.suffix.size() || !text.ends_with(u.suffix)) continue;
        std::string_view num = text.substr(0, text.size() - u.suffix.size());
        long double v;
        if (!parse_decimal(num, v)) continue;
        long double ns = v * static_cast<long double>(u.ns);
        if (ns > 1e18L)
            return Error::user(f + " " + t + ": duration too large; use at most a few hours");
        if (std::fmod(ns, 1.0L) != 0)
            return Error::user(f + " " + t + ": finer than a nanosecond; round it");
        return static_cast<uint64_t>(ns);
    }
    return Error::user(f + " '" + t +
                       "': not a duration; use a number with a unit: ns, us, ms, s, m or h (e.g. 250us, 1.5s)");
}

Result<uint32_t> parse_percent_ppm(std::string_view text, std::string_view flag) {
    std::string f(flag);
    std::string t(text);
    if (!text.empty() && text[0] == '-')
        return Error::user(f + " " + t + ": a percentage cannot be negative; use 0% to 100%");
    long double v;
    if (!text.ends_with('%') || !parse_decimal(text.substr(0, text.size() - 1), v))
        return Error::user(f + " '" + t + "': not a percentage; write it with a % sign, e.g. 5% or 0.01%");
    if (v > 100)
        return Error::user(f + " " + t + ": over 100%; use 0% to 100%");
    long double ppm = v * 10000.0L;
    if (std::fmod(ppm, 1.0L) != 0)
        return Error::user(f + " " + t + ": finer than 0.0001%; round it");
    return static_cast<uint32_t>(ppm);
}

std::string format_duration(uint64_t ns) {
    for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
        if (it->suffix == "h" || ns < it->ns) continue;
        char buf[48];
        if (ns % it->ns == 0) {
            std::snprintf(buf, sizeof buf, "%llu%s", static_cast<unsigned long long>(ns / it->ns),
                          std::string(it->suffix).c_str());
        } else {
            std::snprintf(buf, sizeof buf, "%.3Lg%s", static_cast<long double>(ns) / it->ns,
                          std::string(it->suffix).c_str());
        }
        return buf;
    }
    return "0s";
}

std::string format_ppm(uint32_t ppm) {
    char buf[32];
    if (ppm % 10000 == 0)
        std::snprintf(buf, sizeof buf, "%u%%", ppm / 10000);
    else
        std::snprintf(buf, sizeof buf, "%.4g%%", ppm / 10000.0);
    return buf;
}

}  // namespace tardy
