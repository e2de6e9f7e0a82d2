// SPDX-License-Identifier: Apache-2.0
// Fuzz targets for the units users type (durations, percentages), checked against an exact
// decimal reference.
#include "fuzz.hpp"

namespace tardy::fuzz {
namespace {

// ---- exact reference for the unit parsers ---------------------------------------------------

// A decimal as digits (whole then fraction, no dot) and the number of fraction digits.
struct Decimal {
    std::string digits;
    size_t frac = 0;
};

bool decimal(std::string_view s, Decimal* d) {
    if (s.empty() || s.size() > 400) return false;  // as units.cpp: the longest accepted
    bool dot = false, digit = false;
    d->digits.clear();
    d->frac = 0;
    for (char c : s) {
        if (c == '.') {
            if (dot) return false;
            dot = true;
        } else if (c >= '0' && c <= '9') {
            digit = true;
            d->digits += c;
            if (dot) d->frac++;
        } else {
            return false;
        }
    }
    return digit;
}

enum class Verdict { Ok, Syntax, Negative, TooLarge, TooFine };

// digits * mul / 10^frac exactly: sets *value when it is a whole number <= limit.
Verdict scale_exact(const Decimal& d, uint64_t mul, uint64_t limit, uint64_t* value) {
    // Schoolbook multiplication in base 10, least significant digit first.
    std::vector<uint8_t> prod;
    unsigned __int128 carry = 0;
    for (size_t i = d.digits.size(); i-- > 0;) {
        carry += static_cast<unsigned __int128>(d.digits[i] - '0') * mul;
        prod.push_back(static_cast<uint8_t>(carry % 10));
        carry /= 10;
    }
    while (carry) {
        prod.push_back(static_cast<uint8_t>(carry % 10));
        carry /= 10;
    }
    bool whole = std::all_of(prod.begin(), prod.begin() + std::min(d.frac, prod.size()), [](uint8_t x) { return x == 0; });
    // Integer part, saturating.
    unsigned __int128 ip = 0;
    bool big = false;
    for (size_t i = prod.size(); i-- > d.frac;) {
        ip = ip * 10 + prod[i];
        if (ip > static_cast<unsigned __int128>(limit) * 10) big = true;
        if (big) break;
    }
    if (big || ip > limit || (ip == limit && !whole)) return Verdict::TooLarge;
    if (!whole) return Verdict::TooFine;
    *value = static_cast<uint64_t>(ip);
    return Verdict::Ok;
}

struct UnitDef {
    std::string_view suffix;
    uint64_t ns;
};
constexpr UnitDef kUnits[] = {{"ns", 1}, {"us", 1'000}, {"ms", 1'000'000}, {"s", 1'000'000'000},
                              {"m", 60'000'000'000ULL}, {"h", 3'600'000'000'000ULL}};

// The parser's limit: 1000 hours.
constexpr uint64_t kMaxDurationNs = 1000ULL * 3'600'000'000'000ULL;

Verdict ref_duration(std::string_view t, uint64_t* ns) {
    if (!t.empty() && t[0] == '-') return Verdict::Negative;
    for (const auto& u : kUnits) {
        if (t.size() <= u.suffix.size() || !t.ends_with(u.suffix)) continue;
        Decimal d;
        if (!decimal(t.substr(0, t.size() - u.suffix.size()), &d)) continue;
        return scale_exact(d, u.ns, kMaxDurationNs, ns);
    }
    return Verdict::Syntax;
}

Verdict ref_percent(std::string_view t, uint32_t* ppm) {
    if (!t.empty() && t[0] == '-') return Verdict::Negative;
    Decimal d;
    if (!t.ends_with('%') || !decimal(t.substr(0, t.size() - 1), &d)) return Verdict::Syntax;
    uint64_t v = 0;
    // scale_exact says "too large" before "too fine", as the parser says "over 100%" first.
    Verdict r = scale_exact(d, 10'000, 1'000'000, &v);
    if (r != Verdict::Ok) return r;
    *ppm = static_cast<uint32_t>(v);
    return Verdict::Ok;
}

// The parsers say "FLAG 'TEXT': not a ..." for syntax and "FLAG TEXT: why" otherwise; the
// verdict is read from the part after the echoed input (which may itself say anything).
Verdict classify_error(const Error& e, std::string_view flag, std::string_view raw, std::string_view over) {
    // The parsers echo the input with control characters shown as '?' (one-line messages).
    std::string input(raw);
    for (char& c : input)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    std::string quoted = std::string(flag) + " '" + std::string(input) + "':";
    std::string plain = std::string(flag) + " " + std::string(input) + ":";
    if (e.message.starts_with(quoted)) return Verdict::Syntax;
    if (!e.message.starts_with(plain)) return Verdict::Syntax;  // checked separately: names the flag
    std::string_view why = std::string_view(e.message).substr(plain.size());
    if (has(why, "negative")) return Verdict::Negative;
    if (has(why, over)) return Verdict::TooLarge;
    if (has(why, "finer than")) return Verdict::TooFine;
    return Verdict::Syntax;
}

const char* name(Verdict v) {
    switch (v) {
    case Verdict::Ok: return "ok";
    case Verdict::Syntax: return "syntax";
    case Verdict::Negative: return "negative";
    case Verdict::TooLarge: return "too large";
    case Verdict::TooFine: return "too fine";
    }
    return "?";
}

}  // namespace

void fuzz_duration(std::string_view in) {
    auto r = parse_duration_ns(in, "--delay");
    uint64_t want = 0;
    Verdict ref = ref_duration(in, &want);
    Verdict got = r ? Verdict::Ok : classify_error(r.error(), "--delay", in, "too long");
    if (!r) check_error(r.error(), in, "--delay");
    // Syntax is decided without arithmetic: it must always agree.
    CHECK((got == Verdict::Syntax) == (ref == Verdict::Syntax),
          std::string("duration syntax: parser says ") + name(got) + ", reference " + name(ref), in);
    CHECK((got == Verdict::Negative) == (ref == Verdict::Negative), "duration sign", in);
    if (r) CHECK(*r <= kMaxDurationNs, "accepted duration over the limit", in);
    if (!lenient()) {
        CHECK(got == ref, std::string("duration: parser says ") + name(got) + ", exact arithmetic " + name(ref), in);
        if (r) CHECK(*r == want, "duration value " + std::to_string(*r) + " != exact " + std::to_string(want), in);
    }
    if (!r) return;
    // Printing: exact forms read back exactly; rounded forms read back close.
    std::string f = format_duration(*r);
    if (!lenient()) CHECK(!has(f, "e"), "format_duration(" + std::to_string(*r) + ") = " + f, in);
    if (has(f, "e")) return;
    auto back = parse_duration_ns(f, "--for");
    if (!has(f, ".")) {
        CHECK(back, "format_duration(" + std::to_string(*r) + ") = " + f + " does not parse", in);
        // Whole numbers are exact unless rounded by %.3g (then to 3 significant digits).
        if (*back != *r) {
            size_t digits = f.find_first_not_of("0123456789");
            long double rel = (static_cast<long double>(*back) - *r) / *r;
            CHECK(digits <= 3 && rel < 0.006L && rel > -0.006L,
                  "format_duration(" + std::to_string(*r) + ") = " + f + " reads back as " + std::to_string(*back), in);
        }
    } else if (back || !lenient()) {
        CHECK(back, "format_duration(" + std::to_string(*r) + ") = " + f + " does not parse", in);
        long double rel = (static_cast<long double>(*back) - *r) / *r;
        CHECK(rel < 0.006L && rel > -0.006L, "format_duration(" + std::to_string(*r) + ") = " + f + " is off", in);
    }
}

void fuzz_percent(std::string_view in) {
    auto r = parse_percent_ppm(in, "--loss");
    uint32_t want = 0;
    Verdict ref = ref_percent(in, &want);
    Verdict got = r ? Verdict::Ok : classify_error(r.error(), "--loss", in, "over 100%");
    if (!r) check_error(r.error(), in, "--loss");
    CHECK((got == Verdict::Syntax) == (ref == Verdict::Syntax),
          std::string("percent syntax: parser says ") + name(got) + ", reference " + name(ref), in);
    CHECK((got == Verdict::Negative) == (ref == Verdict::Negative), "percent sign", in);
    if (r) CHECK(*r <= 1'000'000u, "accepted percentage over 100%", in);
    if (!lenient()) {
        CHECK(got == ref, std::string("percent: parser says ") + name(got) + ", exact arithmetic " + name(ref), in);
        if (r) CHECK(*r == want, "ppm " + std::to_string(*r) + " != exact " + std::to_string(want), in);
    }
    if (!r) return;
    std::string f = format_ppm(*r);
    auto back = parse_percent_ppm(f, "--loss");
    if (back || !lenient()) {
        CHECK(back, "format_ppm(" + std::to_string(*r) + ") = " + f + " does not parse", in);
        long long diff = static_cast<long long>(*back) - *r;
        // %.4g keeps 4 significant digits: within 0.05% of the value (and of 1 ppm).
        CHECK(std::llabs(diff) <= std::max<long long>(1, *r / 2000 + 1),
              "format_ppm(" + std::to_string(*r) + ") = " + f + " reads back as " + std::to_string(*back), in);
    }
}

}  // namespace tardy::fuzz
