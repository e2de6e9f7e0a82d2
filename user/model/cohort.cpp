// SPDX-License-Identifier: Apache-2.0
#include "model/cohort.hpp"

#include <cmath>

#include "model/tardy_abi.hpp"

namespace tardy {

uint32_t Histogram::bucket_of(uint64_t v) {
    if (v > 0xffffffffull) v = 0xffffffffull;
    if (v < TARDY_HIST_SUB) return static_cast<uint32_t>(v);
    uint32_t g = 63 - static_cast<uint32_t>(__builtin_clzll(v));
    return (g - TARDY_HIST_SUB_BITS + 1) * TARDY_HIST_SUB +
           static_cast<uint32_t>((v >> (g - TARDY_HIST_SUB_BITS)) & (TARDY_HIST_SUB - 1));
}

uint64_t Histogram::lower_us(uint32_t b) {
    if (b < TARDY_HIST_SUB) return b;
    uint32_t g = b / TARDY_HIST_SUB - 1 + TARDY_HIST_SUB_BITS;
    uint64_t sub = b % TARDY_HIST_SUB;
    return (TARDY_HIST_SUB + sub) << (g - TARDY_HIST_SUB_BITS);
}

uint64_t Histogram::width_us(uint32_t b) {
    if (b < TARDY_HIST_SUB) return 1;
    uint32_t g = b / TARDY_HIST_SUB - 1 + TARDY_HIST_SUB_BITS;
    return uint64_t{1} << (g - TARDY_HIST_SUB_BITS);
}

uint64_t Histogram::count() const {
    uint64_t n = 0;
    for (const auto& [b, c] : buckets) n += c;
    return n;
}

// A bucket's samples are taken at its middle; below 2^SUB_BITS a bucket holds one value.
static double middle_us(uint32_t b) {
    return b < TARDY_HIST_SUB ? double(b) : double(Histogram::lower_us(b)) + double(Histogram::width_us(b)) / 2;
}

double Histogram::sum_us() const {
    double s = 0;
    for (const auto& [b, c] : buckets) s += middle_us(b) * double(c);
    return s;
}

double Histogram::quantile_us(double q) const {
    uint64_t n = count();
    if (!n) return 0;
    // The rank of the q-quantile among n samples, 1-based (nearest rank).
    auto rank = static_cast<uint64_t>(std::ceil(q * double(n)));
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (const auto& [b, c] : buckets) {
        seen += c;
        if (seen >= rank) return middle_us(b);
    }
    return middle_us(buckets.rbegin()->first);
}

uint64_t Histogram::count_at_most_us(double us) const {
    uint64_t n = 0;
    for (const auto& [b, c] : buckets) {
        double upper = b < TARDY_HIST_SUB ? double(b) : double(lower_us(b) + width_us(b));
        if (upper > us) break;
        n += c;
    }
    return n;
}

void Histogram::add(const Histogram& o) {
    for (const auto& [b, c] : o.buckets) buckets[b] += c;
}

void Histogram::subtract(const Histogram& o) {
    for (const auto& [b, c] : o.buckets) {
        auto it = buckets.find(b);
        if (it == buckets.end()) continue;
        it->second = it->second > c ? it->second - c : 0;
        if (!it->second) buckets.erase(it);
    }
}

#define TARDY_COHORT_FIELDS(X)                                                                    \
    X(connects) X(established) X(accepted) X(failed_refused) X(failed_timeout) X(failed_abandoned) \
    X(failed_tardy) X(retransmits) X(rtos) X(resets_sent) X(resets_received) X(packets_out)      \
    X(bytes_out) X(packets_in) X(bytes_in) X(tardy_dropped) X(tardy_delayed) X(tardy_failed)     \
    X(tardy_stalled)

void CohortMetrics::add(const CohortMetrics& o) {
#define X(f) f += o.f;
    TARDY_COHORT_FIELDS(X)
#undef X
    connect_us.add(o.connect_us);
    rtt_us.add(o.rtt_us);
}

void CohortMetrics::subtract(const CohortMetrics& o) {
#define X(f) f = f > o.f ? f - o.f : 0;
    TARDY_COHORT_FIELDS(X)
#undef X
    connect_us.subtract(o.connect_us);
    rtt_us.subtract(o.rtt_us);
}

static nlohmann::json quantiles_ms(const Histogram& h) {
    auto ms = [&](double q) { return std::round(h.quantile_us(q) / 10.0) / 100.0; };  // 0.01 ms
    return {{"p50", ms(0.5)}, {"p90", ms(0.9)}, {"p99", ms(0.99)}, {"count", h.count()}};
}

nlohmann::json cohort_json(const Cohort& c) {
    const auto& m = c.m;
    uint64_t ended = m.established + m.failed();
    nlohmann::json tcp = {
        {"connects", m.connects},
        {"established", m.established},
        {"failed", m.failed()},
        {"failed_by", {{"refused", m.failed_refused}, {"timeout", m.failed_timeout},
                       {"abandoned", m.failed_abandoned}, {"tardy", m.failed_tardy}}},
        {"connect_failure_ratio", ended ? std::round(double(m.failed()) / double(ended) * 1e6) / 1e6 : 0.0},
        {"accepted", m.accepted},
        {"retransmits", m.retransmits},
        {"rtos", m.rtos},
        {"resets", m.resets_sent + m.resets_received},
        {"resets_sent", m.resets_sent},
        {"resets_received", m.resets_received},
        {"connect_ms", quantiles_ms(m.connect_us)},
        {"rtt_ms", quantiles_ms(m.rtt_us)},
    };
    return {{"role", c.role},
            {"cgroup", c.cgroup},
            {"cgroup_id", c.cgroup_id},
            {"tcp", tcp},
            {"packets", {{"out", m.packets_out}, {"in", m.packets_in}}},
            {"bytes", {{"out", m.bytes_out}, {"in", m.bytes_in}}},
            {"tardy", {{"dropped", m.tardy_dropped}, {"delayed", m.tardy_delayed},
                       {"failed", m.tardy_failed}, {"stalled", m.tardy_stalled}}}};
}

nlohmann::json to_json(const CohortReport& r) {
    nlohmann::json j = {{"name", r.name}, {"seconds", std::round(r.seconds * 1000) / 1000},
                        {"cohorts", nlohmann::json::array()}};
    for (const auto& c : r.cohorts) j["cohorts"].push_back(cohort_json(c));
    // The experiment minus the control, where both are there.
    const Cohort *e = nullptr, *k = nullptr;
    for (const auto& c : r.cohorts) {
        if (c.role == "experiment") e = &c;
        if (c.role == "control") k = &c;
    }
    if (e && k) {
        auto je = cohort_json(*e)["tcp"], jk = cohort_json(*k)["tcp"];
        nlohmann::json d;
        auto r2 = [](double x) { return std::round(x * 100) / 100; };  // 0.01 ms, as the cohorts have
        d["connect_failure_ratio"] = std::round((je["connect_failure_ratio"].get<double>() -
                                                 jk["connect_failure_ratio"].get<double>()) * 1e6) / 1e6;
        for (const char* key : {"connects", "failed", "retransmits", "resets"})
            d[key] = je[key].get<int64_t>() - jk[key].get<int64_t>();
        for (const char* h : {"connect_ms", "rtt_ms"})
            for (const char* q : {"p50", "p90", "p99"}) d[h][q] = r2(je[h][q].get<double>() - jk[h][q].get<double>());
        j["difference"] = {{"of", "experiment - control"}, {"tcp", d}};
    }
    return j;
}

}  // namespace tardy

namespace tardy {

static nlohmann::json raw_hist(const Histogram& h) {
    auto j = nlohmann::json::array();
    for (const auto& [b, n] : h.buckets) j.push_back({b, n});
    return j;
}

static bool hist_from_raw(const nlohmann::json* j, Histogram& h) {
    if (!j) return true;
    if (!j->is_array()) return false;
    for (const auto& e : *j) {
        if (!e.is_array() || e.size() != 2 || !e[0].is_number_unsigned() || !e[1].is_number_unsigned()) return false;
        h.buckets[e[0].get<uint32_t>()] += e[1].get<uint64_t>();
    }
    return true;
}

nlohmann::json raw_json(const CohortMetrics& m) {
    nlohmann::json j;
#define X(f) j[#f] = m.f;
    TARDY_COHORT_FIELDS(X)
#undef X
    j["connect_us"] = raw_hist(m.connect_us);
    j["rtt_us"] = raw_hist(m.rtt_us);
    return j;
}

Result<CohortMetrics> metrics_from_raw(const nlohmann::json& j) {
    if (!j.is_object()) return Error::other("raw cohort metrics are not an object");
    CohortMetrics m;
    auto field = [&](const char* name, uint64_t& v) {
        auto it = j.find(name);
        if (it == j.end()) return true;
        if (!it->is_number_unsigned()) return false;
        v = it->get<uint64_t>();
        return true;
    };
    bool good = true;
#define X(f) good = good && field(#f, m.f);
    TARDY_COHORT_FIELDS(X)
#undef X
    auto find = [&](const char* k) { auto it = j.find(k); return it == j.end() ? nullptr : &*it; };
    if (!good || !hist_from_raw(find("connect_us"), m.connect_us) || !hist_from_raw(find("rtt_us"), m.rtt_us))
        return Error::other("raw cohort metrics have a field of the wrong type");
    return m;
}

}  // namespace tardy
