// SPDX-License-Identifier: Apache-2.0
// The agent's /metrics page: injection counters and cohort metrics in the Prometheus text
// exposition format 0.0.4. Pure formatting: no I/O, no clock, the same text for the same input.
//
// Every family has # HELP and # TYPE, is named tardy_*, and is written even when it has no
// sample; families come in name order, samples in label order; two samples with the same
// labels are summed into one. Labels: injection and cgroup on tardy_injection_*; injection
// (the CohortReport's name), role and cgroup on tardy_cohort_*. Counters end in _total.
//
// The latency histograms (tardy_cohort_tcp_connect_duration_seconds, tardy_cohort_tcp_rtt_seconds)
// have the fixed `le` bounds of kPrometheusBoundsUs, in seconds, then +Inf. A bound counts a
// histogram bucket only when the whole bucket is at or below it (Histogram::count_at_most_us),
// so a cumulative count may leave out samples up to 1/32 (3%) below the bound; _sum is by
// bucket middles (Histogram::sum_us), _count and the +Inf bucket are every sample.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/cohort.hpp"

namespace tardy {

// One injection's counters on one cgroup, as `tardy list` shows them.
struct InjectionSample {
    std::string name, cgroup;
    uint64_t matched = 0;  // packets of the target seen while the rule was live
    uint64_t delayed = 0;  // of those, delayed
    uint64_t dropped = 0;  // of those, dropped
    uint64_t bytes = 0;    // bytes of the matched packets
    uint64_t calls = 0;    // syscalls of a faulted or stalled kind that matched
    uint64_t failed = 0;   // of those, failed on purpose
    uint64_t stalled = 0;  // of those, stalled
};

// The `le` bounds of the latency histograms, in microseconds: 100 us to 60 s, 1-2.5-5 per
// decade up to 10 s, then 30 s and 60 s (a SYN that is never answered gives up after about
// 2 minutes by default, and lands in +Inf).
inline constexpr std::array<uint64_t, 18> kPrometheusBoundsUs = {
    100,     250,     500,       1000,      2500,      5000,       10000,      25000,      50000,
    100000,  250000,  500000,    1000000,   2500000,   5000000,    10000000,   30000000,   60000000};

// The text format's Content-Type.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// tardy_agent_injections is the number of distinct injection names in `injections`.
std::string prometheus_text(const std::vector<InjectionSample>& injections, const std::vector<CohortReport>& cohorts);

// A label value as the text format wants it: backslash, double quote and newline escaped.
std::string prometheus_label_value(const std::string& v);

}  // namespace tardy
