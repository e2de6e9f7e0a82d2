// SPDX-License-Identifier: Apache-2.0
#include "model/net_shape.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "model/spec.hpp"
#include "model/tardy_abi.hpp"
#include "model/units.hpp"

namespace tardy {
namespace {

constexpr std::array<const char*, TARDY_DISTS> kDistNames = {"uniform", "normal", "pareto", "paretonormal"};

// What the user typed, at most 64 characters of it, for a one-line message.
std::string shown64(std::string_view v) { return shown(v.substr(0, 64)); }

// Digits with at most one '.', nothing else: a plain positive decimal.
bool plain_decimal(std::string_view s, double& out) {
    if (s.empty() || s.size() > 32 || s.find_first_not_of("0123456789.") != std::string_view::npos ||
        std::count(s.begin(), s.end(), '.') > 1 || s == ".")
        return false;
    out = std::strtod(std::string(s).c_str(), nullptr);
    return std::isfinite(out);
}

Result<uint32_t> percent(const std::string& text, const char* flag) {
    auto p = parse_percent_ppm(text, flag);
    if (!p) return p.error();
    if (*p == 0) return Error::user(std::string(flag) + " 0%: nothing to inject; give a positive percentage or leave it out");
    return *p;
}

// The standard normal quantile: the x with P(X < x) = q, by bisection on erfc, exact to
// double precision: it stops when the midpoint is one of the ends (about 60 halvings of
// [-12, 12]; it ran 200, which cost an agent start 1.4 s under software emulation).
double normal_quantile(double q) {
    double lo = -12, hi = 12;
    for (;;) {
        double mid = (lo + hi) / 2;
        if (mid <= lo || mid >= hi) break;
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q ? lo : hi) = mid;
    }
    return (lo + hi) / 2;
}

// The normal table's quantiles in units of TARDY_DIST_SCALE, computed once for the three
// tables that use them.
const std::vector<long>& normal_points() {
    static const std::vector<long> points = [] {
        std::vector<long> v(TARDY_DIST_SIZE);
        for (int k = 0; k < TARDY_DIST_SIZE; k++)
            v[k] = std::lrint(normal_quantile((4.0 * k + 0.5) / 16384.0) * TARDY_DIST_SCALE);
        return v;
    }();
    return points;
}

int16_t clamp16(long v) { return static_cast<int16_t>(std::clamp<long>(v, -32768, 32767)); }

}  // namespace

bool ShapeArgs::empty() const { return given().empty(); }

Result<std::string> dns_wire_name(const std::string& name) {
    std::string n = name;
    while (!n.empty() && n.front() == '.') n.erase(0, 1);
    while (!n.empty() && n.back() == '.') n.pop_back();
    std::string bad = "--dns-name '" + shown64(name) + "': ";
    if (n.empty()) return Error::user(bad + "give a domain, e.g. --dns-name example.com (its subdomains match too)");
    std::string wire;
    size_t start = 0;
    for (;;) {
        size_t dot = n.find('.', start);
        std::string label = n.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (label.empty() || label.size() > 63)
            return Error::user(bad + "each label between dots must be 1 to 63 characters");
        for (char c : label)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
                return Error::user(bad + "use letters, digits, '-' and '_' between the dots");
        wire += static_cast<char>(label.size());
        for (char c : label) wire += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    wire += '\0';
    if (wire.size() > TARDY_DNS_NAME_MAX)
        return Error::user(bad + "too long; at most " + std::to_string(TARDY_DNS_NAME_MAX - 2) + " characters");
    return wire;
}

namespace {
constexpr std::array<std::pair<const char*, uint32_t>, 4> kDnsErrors = {
    {{"nxdomain", 3}, {"servfail", 2}, {"refused", 5}, {"timeout", TARDY_DNS_TIMEOUT}}};
}

std::string dns_rcode_name(uint32_t rcode) {
    for (auto [n, r] : kDnsErrors)
        if (r == rcode) return n;
    return "rcode " + std::to_string(rcode);
}

std::vector<std::string> ShapeArgs::given() const {
    std::vector<std::string> g;
    for (auto [v, name] : {std::pair{&distribution, "--distribution"}, {&correlation, "--correlation"},
                           {&loss_burst, "--loss-burst"}, {&loss_gemodel, "--loss-gemodel"},
                           {&duplicate, "--duplicate"}, {&reorder, "--reorder"}, {&rate, "--rate"},
                           {&dns, "--dns"}, {&dns_name, "--dns-name"}, {&reset, "--reset"},
                           {&corrupt, "--corrupt"}, {&reorder_gap, "--reorder-gap"}})
        if (!v->empty()) g.push_back(name);
    return g;
}

std::string dist_name(uint32_t dist) { return dist < kDistNames.size() ? kDistNames[dist] : "?"; }

std::vector<int16_t> dist_table(uint32_t dist) {
    // As iproute2's netem/*.c generators define them, entry k of 4,096: the normal's quantile
    // at (4k + 1/2) / 16384; the pareto's (alpha 3, shifted to mean 0 and scaled by 4/3) at
    // 1 - k/4096; paretonormal a quarter of the first and three quarters of the second.
    std::vector<int16_t> t(TARDY_DIST_SIZE);
    for (int k = 0; k < TARDY_DIST_SIZE; k++) {
        long normal = normal_points()[k];
        double u = 1.0 - static_cast<double>(k) / TARDY_DIST_SIZE;
        long pareto = std::min(32767L, std::lrint((1.0 / std::cbrt(u) - 1.5) * (4.0 / 3.0) * TARDY_DIST_SCALE));
        switch (dist) {
        case TARDY_DIST_NORMAL: t[k] = clamp16(normal); break;
        case TARDY_DIST_PARETO: t[k] = clamp16(pareto); break;
        case TARDY_DIST_PARETONORMAL: t[k] = clamp16((normal + 3 * pareto) / 4); break;
        default: t[k] = 0;
        }
    }
    return t;
}

Result<uint64_t> parse_rate(std::string_view text, std::string_view flag) {
    struct RateUnit {
        std::string_view suffix;
        double bytes;  // bytes per second of one unit
    };
    // tc's units: bit-based with "bit", byte-based with "bps"; k/m/g/t decimal, ki/mi/gi/ti binary.
    static constexpr std::array<RateUnit, 15> kRateUnits{{{"kibit", 1024.0 / 8},
                                                          {"mibit", 1048576.0 / 8},
                                                          {"gibit", 1073741824.0 / 8},
                                                          {"kibps", 1024.0},
                                                          {"mibps", 1048576.0},
                                                          {"gibps", 1073741824.0},
                                                          {"kbit", 1e3 / 8},
                                                          {"mbit", 1e6 / 8},
                                                          {"gbit", 1e9 / 8},
                                                          {"tbit", 1e12 / 8},
                                                          {"kbps", 1e3},
                                                          {"mbps", 1e6},
                                                          {"gbps", 1e9},
                                                          {"bit", 1.0 / 8},
                                                          {"bps", 1.0}}};
    std::string f(flag), t = shown64(text), lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    for (const auto& u : kRateUnits) {
        if (lower.size() <= u.suffix.size() || !lower.ends_with(u.suffix)) continue;
        double v;
        if (!plain_decimal(std::string_view(lower).substr(0, lower.size() - u.suffix.size()), v)) break;
        double bytes = v * u.bytes;
        if (bytes < 8000 || bytes > 12.5e9)
            return Error::user(f + " " + t + ": use a rate from 64kbit to 100gbit");
        return static_cast<uint64_t>(std::llround(bytes));
    }
    return Error::user(f + " '" + t + "': not a rate; write it as tc does, e.g. 10mbit, 500kbit, 1gbit or 2mbps "
                                      "(bytes per second)");
}

std::string format_rate(uint64_t bytes_per_s) {
    double bits = static_cast<double>(bytes_per_s) * 8;
    char buf[32];
    for (auto [unit, div] : {std::pair{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}}) {
        if (bits >= div) {
            std::snprintf(buf, sizeof buf, "%.4g%s", bits / div, unit);
            return buf;
        }
    }
    std::snprintf(buf, sizeof buf, "%.4gbit", bits);
    return buf;
}

namespace {

// --loss-gemodel P[,R[,1-H[,1-K]]] with netem's defaults: R = 100% - P, 1-H = 100%, 1-K = 0%.
Result<void> gemodel(const std::string& spec, NetFaults& net) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t comma; (comma = spec.find(',', start)) != std::string::npos; start = comma + 1)
        parts.push_back(spec.substr(start, comma - start));
    parts.push_back(spec.substr(start));
    if (parts.size() > 4)
        return Error::user("--loss-gemodel '" + shown64(spec) + "': give P[,R[,1-H[,1-K]]], e.g. 1%,30%,100%,0%");
    std::array<uint32_t, 4> v{};
    const char* names[] = {"--loss-gemodel P", "--loss-gemodel R", "--loss-gemodel 1-H", "--loss-gemodel 1-K"};
    for (size_t i = 0; i < parts.size(); i++) {
        auto p = parse_percent_ppm(parts[i], names[i]);
        if (!p) return p.error();
        v[i] = *p;
    }
    if (v[0] == 0) return Error::user("--loss-gemodel: P 0% never enters the bad state; give a positive P");
    if (parts.size() < 2) v[1] = TARDY_PPM - v[0];
    if (parts.size() < 3) v[2] = TARDY_PPM;
    if (v[1] == 0) return Error::user("--loss-gemodel: R 0% never leaves the bad state; give a positive R");
    if (v[2] == 0 && v[3] == 0) return Error::user("--loss-gemodel: 1-H and 1-K both 0% lose nothing");
    net.ge_p_ppm = v[0];
    net.ge_r_ppm = v[1];
    net.ge_bad_loss_ppm = v[2];
    net.ge_good_loss_ppm = v[3];
    double bad = static_cast<double>(v[0]) / (v[0] + v[1]);
    net.loss_ppm = static_cast<uint32_t>(std::llround(bad * v[2] + (1 - bad) * v[3]));
    if (net.loss_ppm == 0) net.loss_ppm = 1;
    return ok();
}

}  // namespace

Result<void> apply_shape(const ShapeArgs& a, const std::string& loss, NetFaults& net) {
    if (!a.loss_gemodel.empty()) {
        if (!loss.empty())
            return Error::user("--loss-gemodel sets the loss itself; give it instead of --loss (or use --loss PCT "
                               "--loss-burst N)");
        if (!a.loss_burst.empty()) return Error::user("--loss-burst shapes --loss; with --loss-gemodel leave it out");
        TARDY_TRY(gemodel(a.loss_gemodel, net));
    }
    if (!a.loss_burst.empty()) {
        double b;
        if (loss.empty())
            return Error::user("--loss-burst N makes --loss come in bursts of N packets on average; give --loss "
                               "with it, e.g. --loss 5% --loss-burst 4");
        if (!plain_decimal(a.loss_burst, b) || b < 1 || b > 1e6)
            return Error::user("--loss-burst '" + shown64(a.loss_burst) + "': give the mean burst length in packets, "
                               "a number from 1, e.g. 4");
        double l = static_cast<double>(net.loss_ppm) / TARDY_PPM, r = 1 / b, p = l * r / (1 - l);
        if (net.loss_ppm >= TARDY_PPM || p > 1)
            return Error::user("--loss " + format_ppm(net.loss_ppm) + " in bursts of " + shown64(a.loss_burst) +
                               " cannot be: the gaps between bursts would be shorter than a packet; use a "
                               "longer --loss-burst or less --loss");
        net.ge_r_ppm = static_cast<uint32_t>(std::llround(r * TARDY_PPM));
        net.ge_p_ppm = std::max<uint32_t>(1, static_cast<uint32_t>(std::llround(p * TARDY_PPM)));
        net.ge_bad_loss_ppm = TARDY_PPM;
        net.ge_good_loss_ppm = 0;
    }
    if (!a.distribution.empty()) {
        auto it = std::find(kDistNames.begin(), kDistNames.end(), a.distribution);
        if (it == kDistNames.end())
            return Error::user("--distribution '" + shown64(a.distribution) + "': use uniform, normal, pareto or "
                               "paretonormal (netem's)");
        if (!net.jitter_ns)
            return Error::user("--distribution shapes the jitter; give --delay and --jitter with it, e.g. --delay "
                               "100ms --jitter 20ms --distribution normal");
        net.dist = static_cast<uint32_t>(it - kDistNames.begin());
        // The tables reach 4 jitters above the delay.
        if (net.dist != TARDY_DIST_UNIFORM && net.delay_ns + 4 * net.jitter_ns > TARDY_MAX_DELAY_NS)
            return Error::user("--delay plus 4 x --jitter is over 5s, and a " + a.distribution +
                               " jitter reaches that far: fq would drop such packets; use less");
    }
    if (!a.duplicate.empty()) {
        auto d = percent(a.duplicate, "--duplicate");
        if (!d) return d.error();
        net.duplicate_ppm = *d;
    }
    if (!a.corrupt.empty()) {
        auto c = percent(a.corrupt, "--corrupt");
        if (!c) return c.error();
        net.corrupt_ppm = *c;
    }
    if (!a.reorder.empty()) {
        auto r = percent(a.reorder, "--reorder");
        if (!r) return r.error();
        if (!net.delay_ns)
            return Error::user("--reorder sends that share of packets at once while the others wait --delay; give "
                               "--delay with it, e.g. --delay 10ms --reorder 25%");
        net.reorder_ppm = *r;
    }
    if (!a.reorder_gap.empty()) {
        double g;
        if (a.reorder.empty())
            return Error::user("--reorder-gap N spaces the packets --reorder sends at once (netem's gap); give "
                               "--reorder with it, e.g. --delay 10ms --reorder 25% --reorder-gap 5");
        if (!plain_decimal(a.reorder_gap, g) || g < 1 || g > 1e6 || g != std::floor(g))
            return Error::user("--reorder-gap '" + shown64(a.reorder_gap) + "': give a whole number of packets from "
                               "1, e.g. 5 (the 4 packets after one sent at once are delayed)");
        net.reorder_gap = static_cast<uint32_t>(g);
    }
    if (!a.rate.empty()) {
        auto r = parse_rate(a.rate, "--rate");
        if (!r) return r.error();
        net.rate_bytes_per_s = *r;
    }
    if (!a.reset.empty()) {
        auto r = percent(a.reset, "--reset");
        if (!r) return r.error();
        net.reset_ppm = *r;
    }
    if (!a.dns_name.empty() && a.dns.empty())
        return Error::user("--dns-name picks the names --dns fails; give --dns with it, e.g. --dns nxdomain --dns-name "
                           "example.com");
    if (!a.dns.empty()) {
        std::string kind = a.dns, pct;
        if (auto colon = kind.find(':'); colon != std::string::npos) pct = kind.substr(colon + 1), kind.resize(colon);
        auto it = std::find_if(kDnsErrors.begin(), kDnsErrors.end(), [&](const auto& e) { return kind == e.first; });
        if (it == kDnsErrors.end())
            return Error::user("--dns '" + shown64(a.dns) + "': use nxdomain, servfail, refused or timeout, with an "
                               "optional share, e.g. --dns nxdomain:50%");
        net.dns_rcode = it->second;
        net.dns_ppm = TARDY_PPM;
        if (!pct.empty()) {
            auto p = percent(pct, "--dns");
            if (!p) return p.error();
            net.dns_ppm = *p;
        }
        if (!a.dns_name.empty()) {
            auto w = dns_wire_name(a.dns_name);
            if (!w) return w.error();
            net.dns_name = a.dns_name;
            while (!net.dns_name.empty() && net.dns_name.front() == '.') net.dns_name.erase(0, 1);
            while (!net.dns_name.empty() && net.dns_name.back() == '.') net.dns_name.pop_back();
        }
    }
    if (!a.correlation.empty()) {
        auto c = percent(a.correlation, "--correlation");
        if (!c) return c.error();
        bool independent_loss = net.loss_ppm && !net.ge_p_ppm;
        if (!net.jitter_ns && !independent_loss && !net.duplicate_ppm && !net.reorder_ppm && !net.corrupt_ppm)
            return Error::user("--correlation ties each random draw to the one before (netem's); give --jitter, "
                               "--loss, --duplicate, --corrupt or --reorder with it (burst loss has its own memory)");
        net.corr_ppm = *c;
    }
    return ok();
}

std::string describe_loss(const NetFaults& f) {
    if (!f.ge_p_ppm) return "";
    if (f.ge_bad_loss_ppm == TARDY_PPM && f.ge_good_loss_ppm == 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3g", static_cast<double>(TARDY_PPM) / f.ge_r_ppm);
        return std::string(" in bursts of ") + buf;
    }
    return " (gemodel " + format_ppm(f.ge_p_ppm) + "," + format_ppm(f.ge_r_ppm) + "," + format_ppm(f.ge_bad_loss_ppm) +
           "," + format_ppm(f.ge_good_loss_ppm) + ")";
}

std::string describe_shape(const NetFaults& f) {
    std::string s;
    if (f.duplicate_ppm) s += ", duplicate " + format_ppm(f.duplicate_ppm);
    if (f.corrupt_ppm) s += ", corrupt " + format_ppm(f.corrupt_ppm);
    if (f.reorder_ppm) s += ", reorder " + format_ppm(f.reorder_ppm);
    if (f.reorder_ppm && f.reorder_gap > 1) s += " gap " + std::to_string(f.reorder_gap);
    if (f.rate_bytes_per_s) s += ", rate " + format_rate(f.rate_bytes_per_s);
    if (f.corr_ppm) s += ", correlation " + format_ppm(f.corr_ppm);
    if (f.reset_ppm) s += ", reset " + format_ppm(f.reset_ppm) + " of TCP connections";
    if (f.dns_rcode) {
        s += ", DNS " + dns_rcode_name(f.dns_rcode);
        if (f.dns_ppm != TARDY_PPM) s += " " + format_ppm(f.dns_ppm);
        if (!f.dns_name.empty()) s += " for " + f.dns_name;
    }
    return s;
}

void shape_to_json(nlohmann::json& j, const NetFaults& f) {
    j["dist"] = f.dist;
    j["distribution"] = dist_name(f.dist);  // for people; the agent reads dist
    j["corr_ppm"] = f.corr_ppm;
    j["ge_p_ppm"] = f.ge_p_ppm;
    j["ge_r_ppm"] = f.ge_r_ppm;
    j["ge_bad_loss_ppm"] = f.ge_bad_loss_ppm;
    j["ge_good_loss_ppm"] = f.ge_good_loss_ppm;
    j["duplicate_ppm"] = f.duplicate_ppm;
    j["reorder_ppm"] = f.reorder_ppm;
    j["reorder_gap"] = f.reorder_gap;
    j["rate_bytes_per_s"] = f.rate_bytes_per_s;
    j["dns_rcode"] = f.dns_rcode;
    j["dns_ppm"] = f.dns_ppm;
    j["dns_name"] = f.dns_name;
    j["reset_ppm"] = f.reset_ppm;
    j["corrupt_ppm"] = f.corrupt_ppm;
    if (f.dns_rcode) j["dns"] = dns_rcode_name(f.dns_rcode);  // for people; the agent reads dns_rcode
}

void shape_from_json(const nlohmann::json& j, NetFaults& f) {
    f.dist = j.value("dist", uint32_t{TARDY_DIST_UNIFORM});
    f.corr_ppm = j.value("corr_ppm", uint32_t{0});
    f.ge_p_ppm = j.value("ge_p_ppm", uint32_t{0});
    f.ge_r_ppm = j.value("ge_r_ppm", uint32_t{0});
    f.ge_bad_loss_ppm = j.value("ge_bad_loss_ppm", uint32_t{0});
    f.ge_good_loss_ppm = j.value("ge_good_loss_ppm", uint32_t{0});
    f.duplicate_ppm = j.value("duplicate_ppm", uint32_t{0});
    f.reorder_ppm = j.value("reorder_ppm", uint32_t{0});
    f.reorder_gap = j.value("reorder_gap", uint32_t{0});
    f.rate_bytes_per_s = j.value("rate_bytes_per_s", uint64_t{0});
    f.dns_rcode = j.value("dns_rcode", uint32_t{0});
    f.dns_ppm = j.value("dns_ppm", uint32_t{0});
    f.dns_name = j.value("dns_name", std::string());
    f.reset_ppm = j.value("reset_ppm", uint32_t{0});
    f.corrupt_ppm = j.value("corrupt_ppm", uint32_t{0});
}

}  // namespace tardy
