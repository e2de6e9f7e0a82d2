// SPDX-License-Identifier: Apache-2.0
// Cohort metrics by name, and the hypothesis' bounds applied to them.
#include "model/hypothesis.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>

namespace tardy {
namespace {

using Count = std::function<uint64_t(const CohortMetrics&)>;

const std::map<std::string, Count>& counts() {
    static const std::map<std::string, Count> m = {
        {"tcp.connects", [](const CohortMetrics& x) { return x.connects; }},
        {"tcp.established", [](const CohortMetrics& x) { return x.established; }},
        {"tcp.failed", [](const CohortMetrics& x) { return x.failed(); }},
        {"tcp.failed_by.refused", [](const CohortMetrics& x) { return x.failed_refused; }},
        {"tcp.failed_by.timeout", [](const CohortMetrics& x) { return x.failed_timeout; }},
        {"tcp.failed_by.abandoned", [](const CohortMetrics& x) { return x.failed_abandoned; }},
        {"tcp.failed_by.tardy", [](const CohortMetrics& x) { return x.failed_tardy; }},
        {"tcp.accepted", [](const CohortMetrics& x) { return x.accepted; }},
        {"tcp.retransmits", [](const CohortMetrics& x) { return x.retransmits; }},
        {"tcp.rtos", [](const CohortMetrics& x) { return x.rtos; }},
        {"tcp.resets", [](const CohortMetrics& x) { return x.resets_sent + x.resets_received; }},
        {"tcp.resets_sent", [](const CohortMetrics& x) { return x.resets_sent; }},
        {"tcp.resets_received", [](const CohortMetrics& x) { return x.resets_received; }},
        {"packets.out", [](const CohortMetrics& x) { return x.packets_out; }},
        {"packets.in", [](const CohortMetrics& x) { return x.packets_in; }},
        {"bytes.out", [](const CohortMetrics& x) { return x.bytes_out; }},
        {"bytes.in", [](const CohortMetrics& x) { return x.bytes_in; }},
        {"tardy.dropped", [](const CohortMetrics& x) { return x.tardy_dropped; }},
        {"tardy.delayed", [](const CohortMetrics& x) { return x.tardy_delayed; }},
        {"tardy.failed", [](const CohortMetrics& x) { return x.tardy_failed; }},
        {"tardy.stalled", [](const CohortMetrics& x) { return x.tardy_stalled; }},
    };
    return m;
}

const char* kRatio = "tcp.connect_failure_ratio";
constexpr uint64_t kRatioMinCount = 10;    // connects ended
constexpr uint64_t kLatencyMinCount = 5;   // latency samples

// "tcp.connect_ms.p99" -> histogram and the statistic ("p99"); null when not a latency.
const Histogram* latency(const std::string& metric, const CohortMetrics& m, std::string& stat) {
    for (const auto& [prefix, h] : {std::pair<std::string, const Histogram*>{"tcp.connect_ms.", &m.connect_us},
                                    std::pair<std::string, const Histogram*>{"tcp.rtt_ms.", &m.rtt_us}}) {
        if (metric.rfind(prefix, 0) == 0) {
            stat = metric.substr(prefix.size());
            return h;
        }
    }
    return nullptr;
}

// "p99" -> 0.99, "p99.9" -> 0.999; -1 when not a quantile.
double quantile_of(const std::string& stat) {
    if (stat.size() < 2 || stat[0] != 'p') return -1;
    // pNN or pNN.N only: strtod alone would take p1e1, p0x10 or p inf
    if (stat.find_first_not_of("0123456789.", 1) != std::string::npos) return -1;
    const char* s = stat.c_str() + 1;
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (*end != '\0' || !(v > 0 && v < 100) || !std::isdigit(static_cast<unsigned char>(*s))) return -1;
    return v / 100;
}

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}

}  // namespace

bool known_metric(const std::string& metric) {
    static const CohortMetrics empty;
    return metric_value(metric, empty, 1).has_value();
}

const std::vector<std::string>& metric_examples() {
    static const std::vector<std::string> v = [] {
        std::vector<std::string> out;
        for (const auto& [k, f] : counts()) out.push_back(k + " (and " + k + "_per_s)");
        out.push_back(kRatio);
        for (const char* h : {"tcp.connect_ms", "tcp.rtt_ms"}) out.push_back(std::string(h) + ".pNN, .mean, .count");
        return out;
    }();
    return v;
}

uint64_t default_min_count(const std::string& metric) {
    std::string stat;
    static const CohortMetrics empty;
    if (metric == kRatio) return kRatioMinCount;
    if (latency(metric, empty, stat) && stat != "count") return kLatencyMinCount;
    return 0;
}

std::optional<MetricValue> metric_value(const std::string& metric, const CohortMetrics& m, double seconds) {
    if (metric == kRatio) {
        uint64_t ended = m.established + m.failed();
        return MetricValue{ended ? double(m.failed()) / double(ended) : 0.0, ended};
    }
    std::string base = metric;
    bool per_s = base.size() > 6 && base.compare(base.size() - 6, 6, "_per_s") == 0;
    if (per_s) base.resize(base.size() - 6);
    if (auto it = counts().find(base); it != counts().end()) {
        double c = double(it->second(m));
        return MetricValue{per_s ? (seconds > 0 ? c / seconds : 0.0) : c, it->second(m)};
    }
    std::string stat;
    if (per_s) return std::nullopt;
    const Histogram* h = latency(metric, m, stat);
    if (!h) return std::nullopt;
    uint64_t n = h->count();
    if (stat == "count") return MetricValue{double(n), n};
    if (stat == "mean") return MetricValue{n ? h->sum_us() / double(n) / 1000.0 : 0.0, n};
    double q = quantile_of(stat);
    if (q < 0) return std::nullopt;
    return MetricValue{h->quantile_us(q) / 1000.0, n};
}

std::string HypothesisEntry::text() const {
    std::string name = probe ? "probe " + probe->kind + " " + (probe->kind == "http" ? probe->url : probe->run[0])
                             : metric;
    if (probe) return name + " success >= " + num(*min * 100) + "%";
    std::string s;
    auto add = [&](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
    if (max) add("<= " + num(*max));
    if (min) add(">= " + num(*min));
    if (max_vs_control) add("<= control " + max_vs_control->text);
    if (min_vs_control) add(">= control " + min_vs_control->text);
    return name + " " + s;
}

std::string HypothesisEntry::unit() const {
    if (probe) return "ratio";
    if (metric.find("_ms.") != std::string::npos && metric.find(".count") == std::string::npos) return "ms";
    if (metric.size() > 6 && metric.compare(metric.size() - 6, 6, "_per_s") == 0) return "/s";
    return "";
}

Judgement judge(const HypothesisEntry& e, std::optional<MetricValue> experiment, std::optional<MetricValue> control) {
    Judgement j;
    if (experiment) j.experiment = experiment->value;
    if (control) j.control = control->value;
    bool exp_ok = experiment && experiment->count >= e.min_count;
    bool ctl_ok = control && control->count >= e.min_count;
    auto breach = [&](const std::string& why) {
        if (j.ok) j.why = why;
        j.ok = false;
    };
    auto bound = [&](const HypothesisEntry::Relative& r) { return control->value * r.factor + r.offset; };
    if (exp_ok) {
        double v = experiment->value;
        if (e.max) {
            j.judged = true;
            if (!j.limit) j.limit = *e.max;
            if (v > *e.max) breach(num(v) + " > max " + num(*e.max));
        }
        if (e.min) {
            j.judged = true;
            if (!j.limit) j.limit = *e.min;
            if (v < *e.min) breach(num(v) + " < min " + num(*e.min));
        }
        if (ctl_ok && e.max_vs_control) {
            j.judged = true;
            double b = bound(*e.max_vs_control);
            if (!j.limit) j.limit = b;
            if (v > b)
                breach(num(v) + " > control " + num(control->value) + " " + e.max_vs_control->text + " = " + num(b));
        }
        if (ctl_ok && e.min_vs_control) {
            j.judged = true;
            double b = bound(*e.min_vs_control);
            if (!j.limit) j.limit = b;
            if (v < b)
                breach(num(v) + " < control " + num(control->value) + " " + e.min_vs_control->text + " = " + num(b));
        }
    }
    return j;
}

std::vector<Weighted> distribution(const std::string& metric, const CohortMetrics& m) {
    std::vector<Weighted> out;
    if (metric == kRatio) {
        out.push_back({1.0, m.failed()});
        out.push_back({0.0, m.established});
        return out;
    }
    std::string stat;
    const Histogram* h = latency(metric, m, stat);
    if (!h || stat == "count") return out;
    for (const auto& [b, n] : h->buckets)
        out.push_back({(double(Histogram::lower_us(b)) + double(Histogram::width_us(b)) / 2) / 1000.0, n});
    return out;
}

}  // namespace tardy
