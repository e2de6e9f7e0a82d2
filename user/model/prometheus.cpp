// SPDX-License-Identifier: Apache-2.0
#include "model/prometheus.hpp"

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <utility>

namespace tardy {

std::string prometheus_label_value(const std::string& v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

namespace {

using Labels = std::vector<std::pair<const char*, std::string>>;

// HELP text escapes backslash and newline (not the quote).
std::string help_text(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string number(uint64_t v) { return std::to_string(v); }

std::string number(double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

// Exact decimal seconds of a whole number of microseconds: 250 -> "0.00025", 60000000 -> "60".
std::string seconds_of_us(uint64_t us) {
    std::string s = std::to_string(us / 1000000);
    uint64_t frac = us % 1000000;
    if (!frac) return s;
    std::string f = std::to_string(frac);
    f.insert(0, 6 - f.size(), '0');
    while (f.back() == '0') f.pop_back();
    return s + "." + f;
}

void sample(std::string& out, const std::string& name, const Labels& labels, const std::string& value) {
    out += name;
    if (!labels.empty()) {
        out += '{';
        for (size_t i = 0; i < labels.size(); ++i) {
            if (i) out += ',';
            out += labels[i].first;
            out += "=\"";
            out += prometheus_label_value(labels[i].second);
            out += '"';
        }
        out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
}

// A family: its metadata and a function that appends its samples.
struct Family {
    std::string name, type, help;
    std::function<void(std::string&)> samples;
};

// ---- per injection ----------------------------------------------------------------------

using InjectionKey = std::pair<std::string, std::string>;  // name, cgroup

std::map<InjectionKey, InjectionSample> merge(const std::vector<InjectionSample>& injections) {
    std::map<InjectionKey, InjectionSample> m;
    for (const auto& i : injections) {
        auto [it, fresh] = m.try_emplace({i.name, i.cgroup}, i);
        if (fresh) continue;
        auto& s = it->second;
        s.matched += i.matched, s.delayed += i.delayed, s.dropped += i.dropped, s.bytes += i.bytes;
        s.calls += i.calls, s.failed += i.failed, s.stalled += i.stalled;
    }
    return m;
}

struct InjectionCounter {
    const char* name;
    uint64_t InjectionSample::*field;
    const char* help;
};

constexpr InjectionCounter kInjectionCounters[] = {
    {"tardy_injection_packets_matched_total", &InjectionSample::matched,
     "Packets of the target cgroup the injection's filters matched while it was live."},
    {"tardy_injection_packets_delayed_total", &InjectionSample::delayed, "Matched packets the injection delayed."},
    {"tardy_injection_packets_dropped_total", &InjectionSample::dropped,
     "Matched packets the injection dropped (loss, or beyond the delay horizon)."},
    {"tardy_injection_bytes_matched_total", &InjectionSample::bytes, "Bytes of the packets the injection matched."},
    {"tardy_injection_syscalls_matched_total", &InjectionSample::calls,
     "Syscalls of a faulted or stalled kind by the target cgroup that the injection's filters matched."},
    {"tardy_injection_syscalls_failed_total", &InjectionSample::failed, "Matched syscalls the injection failed."},
    {"tardy_injection_syscalls_stalled_total", &InjectionSample::stalled, "Matched syscalls the injection stalled."},
};

void add_injection_families(std::vector<Family>& out, const std::vector<InjectionSample>& injections) {
    auto merged = std::make_shared<std::map<InjectionKey, InjectionSample>>(merge(injections));
    for (const auto& c : kInjectionCounters) {
        out.push_back({c.name, "counter", c.help, [merged, c](std::string& s) {
                           for (const auto& [key, v] : *merged)
                               sample(s, c.name, {{"injection", key.first}, {"cgroup", key.second}}, number(v.*c.field));
                       }});
    }
    std::set<std::string> names;
    for (const auto& i : injections) names.insert(i.name);
    out.push_back({"tardy_agent_injections", "gauge", "Injections the agent runs now.",
                   [n = names.size()](std::string& s) { sample(s, "tardy_agent_injections", {}, number(uint64_t{n})); }});
}

// ---- per cohort -------------------------------------------------------------------------

using CohortKey = std::tuple<std::string, std::string, std::string>;  // injection, role, cgroup
using Cohorts = std::map<CohortKey, CohortMetrics>;

Cohorts merge(const std::vector<CohortReport>& reports) {
    Cohorts m;
    for (const auto& r : reports)
        for (const auto& c : r.cohorts) m[{r.name, c.role, c.cgroup}].add(c.m);
    return m;
}

Labels cohort_labels(const CohortKey& k) {
    return {{"injection", std::get<0>(k)}, {"role", std::get<1>(k)}, {"cgroup", std::get<2>(k)}};
}

struct CohortCounter {
    const char* name;
    uint64_t CohortMetrics::*field;
    const char* help;
};

constexpr CohortCounter kCohortCounters[] = {
    {"tardy_cohort_tcp_connects_total", &CohortMetrics::connects,
     "TCP active opens (SYN sent) by the cohort, plus its connect() calls a tardy fault refused."},
    {"tardy_cohort_tcp_established_total", &CohortMetrics::established, "TCP active opens of the cohort that connected."},
    {"tardy_cohort_tcp_accepted_total", &CohortMetrics::accepted, "TCP passive opens (accepted connections) of the cohort."},
    {"tardy_cohort_tcp_retransmits_total", &CohortMetrics::retransmits, "TCP segments the cohort retransmitted."},
    {"tardy_cohort_tcp_rtos_total", &CohortMetrics::rtos, "TCP retransmission timeouts of the cohort's sockets."},
    {"tardy_cohort_tcp_resets_sent_total", &CohortMetrics::resets_sent, "TCP resets the cohort's sockets sent."},
    {"tardy_cohort_tcp_resets_received_total", &CohortMetrics::resets_received,
     "TCP resets the cohort's sockets received."},
    {"tardy_cohort_packets_out_total", &CohortMetrics::packets_out, "Packets the cohort's TCP sockets sent."},
    {"tardy_cohort_packets_in_total", &CohortMetrics::packets_in, "Packets the cohort's TCP sockets received."},
    {"tardy_cohort_bytes_out_total", &CohortMetrics::bytes_out, "Bytes the cohort's TCP sockets sent."},
    {"tardy_cohort_bytes_in_total", &CohortMetrics::bytes_in, "Bytes the cohort's TCP sockets received."},
};

struct LabelledField {
    const char* value;
    uint64_t CohortMetrics::*field;
};

constexpr LabelledField kFailedBy[] = {
    {"refused", &CohortMetrics::failed_refused},
    {"timeout", &CohortMetrics::failed_timeout},
    {"abandoned", &CohortMetrics::failed_abandoned},
    {"tardy", &CohortMetrics::failed_tardy},
};

constexpr LabelledField kFaults[] = {
    {"packet_dropped", &CohortMetrics::tardy_dropped},
    {"packet_delayed", &CohortMetrics::tardy_delayed},
    {"syscall_failed", &CohortMetrics::tardy_failed},
    {"syscall_stalled", &CohortMetrics::tardy_stalled},
};

// One counter family with an extra label whose values are `fields`, each always written.
template <size_t N>
Family labelled_family(const char* name, const char* label, const LabelledField (&fields)[N], const char* help,
                       std::shared_ptr<const Cohorts> cohorts) {
    return {name, "counter", help, [=, &fields](std::string& s) {
                for (const auto& [key, m] : *cohorts)
                    for (const auto& f : fields) {
                        Labels l = cohort_labels(key);
                        l.emplace_back(label, f.value);
                        sample(s, name, l, number(m.*f.field));
                    }
            }};
}

void histogram(std::string& out, const std::string& name, const Labels& base, const Histogram& h) {
    Labels l = base;
    l.emplace_back("le", "");
    for (uint64_t bound : kPrometheusBoundsUs) {
        l.back().second = seconds_of_us(bound);
        sample(out, name + "_bucket", l, number(h.count_at_most_us(double(bound))));
    }
    uint64_t n = h.count();
    l.back().second = "+Inf";
    sample(out, name + "_bucket", l, number(n));
    sample(out, name + "_sum", base, number(h.sum_us() / 1e6));
    sample(out, name + "_count", base, number(n));
}

Family histogram_family(const char* name, Histogram CohortMetrics::*field, const char* help,
                        std::shared_ptr<const Cohorts> cohorts) {
    return {name, "histogram", help, [=](std::string& s) {
                for (const auto& [key, m] : *cohorts) histogram(s, name, cohort_labels(key), m.*field);
            }};
}

void add_cohort_families(std::vector<Family>& out, const std::vector<CohortReport>& reports) {
    auto cohorts = std::make_shared<const Cohorts>(merge(reports));
    for (const auto& c : kCohortCounters) {
        out.push_back({c.name, "counter", c.help, [cohorts, c](std::string& s) {
                           for (const auto& [key, m] : *cohorts) sample(s, c.name, cohort_labels(key), number(m.*c.field));
                       }});
    }
    out.push_back(labelled_family("tardy_cohort_tcp_connects_failed_total", "reason", kFailedBy,
                                  "TCP active opens of the cohort that failed, by reason: refused (RST to the SYN), "
                                  "timeout (SYN retries ran out, or another error), abandoned (closed before an answer), "
                                  "tardy (connect() failed at once by a tardy fault).",
                                  cohorts));
    out.push_back(labelled_family("tardy_cohort_faults_injected_total", "fault", kFaults,
                                  "What tardy's injections did to the cohort: packets dropped or delayed, "
                                  "syscalls failed or stalled.",
                                  cohorts));
    out.push_back(histogram_family("tardy_cohort_tcp_connect_duration_seconds", &CohortMetrics::connect_us,
                                   "Time from connect() to established of the cohort's TCP active opens.", cohorts));
    out.push_back(histogram_family("tardy_cohort_tcp_rtt_seconds", &CohortMetrics::rtt_us,
                                   "Round-trip time samples TCP took on the cohort's sockets.", cohorts));
}

}  // namespace

std::string prometheus_text(const std::vector<InjectionSample>& injections, const std::vector<CohortReport>& cohorts) {
    std::vector<Family> families;
    add_injection_families(families, injections);
    add_cohort_families(families, cohorts);
    std::sort(families.begin(), families.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
    std::string out;
    for (const auto& f : families) {
        out += "# HELP " + f.name + " " + help_text(f.help) + "\n";
        out += "# TYPE " + f.name + " " + f.type + "\n";
        f.samples(out);
    }
    return out;
}

}  // namespace tardy
