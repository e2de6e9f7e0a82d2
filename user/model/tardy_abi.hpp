// SPDX-License-Identifier: Apache-2.0
// C++ view of include/tardy/abi.h, with the layout checked at compile time so a change on
// one side that the other does not follow fails the build instead of corrupting maps.
#pragma once

#include <linux/types.h>

#include <cstddef>

#include "tardy/abi.h"

static_assert(sizeof(tardy_control) == 16);
static_assert(offsetof(tardy_control, lease_deadline_ns) == 8);
static_assert(sizeof(tardy_peer) == 24);
static_assert(offsetof(tardy_filter, peers) == 24);
static_assert(sizeof(tardy_filter) == 24 + 24 * TARDY_FILTER_MAX_PEERS);
static_assert(offsetof(tardy_rule, delay_ns) == 8);
static_assert(offsetof(tardy_rule, expires_ns) == 24);
static_assert(offsetof(tardy_rule, dist) == 48);
static_assert(offsetof(tardy_rule, rate_bytes_per_s) == 80);
static_assert(offsetof(tardy_rule, dns_rcode) == 88);
static_assert(offsetof(tardy_rule, dns_name) == 104);
static_assert(offsetof(tardy_rule, filter) == 104 + TARDY_DNS_NAME_MAX);
static_assert(sizeof(tardy_rule) == 104 + TARDY_DNS_NAME_MAX + sizeof(tardy_filter) + 8);
static_assert(offsetof(tardy_rule, corrupt_ppm) == 104 + TARDY_DNS_NAME_MAX + sizeof(tardy_filter));
static_assert(sizeof(tardy_dist_table) == 2 * TARDY_DIST_SIZE);
static_assert(sizeof(tardy_rule_state) == 40);
static_assert(offsetof(tardy_rule_set, slots) == 4);
static_assert(offsetof(tardy_rule_set, rules) == 8 + 4 * TARDY_RULES_PER_CGROUP);
static_assert(sizeof(tardy_rule_set) == 8 + 4 * TARDY_RULES_PER_CGROUP + TARDY_RULES_PER_CGROUP * sizeof(tardy_rule));
static_assert(sizeof(tardy_counters) == 80);
static_assert(offsetof(tardy_rule, reset_ppm) == 100);
static_assert(sizeof(tardy_cg_match) == 16);
static_assert(offsetof(tardy_cg_match, rule_cgid) == 8);
static_assert(sizeof(tardy_sock_fault) == 16);
static_assert(offsetof(tardy_sock_rule, faults) == 16);
static_assert(sizeof(tardy_sock_rule) == 16 + 16 * TARDY_SOCK_MAX_FAULTS + sizeof(tardy_filter));
static_assert(sizeof(tardy_sock_counters) == 24);
static_assert(sizeof(tardy_cohort_counts) == 14 * 8);
static_assert(sizeof(tardy_cohort_record) == 14 * 8 + 8 * TARDY_HIST_KINDS * TARDY_HIST_BUCKETS);
static_assert(sizeof(tardy_cohort_record) <= 32768);  // PCPU_MIN_UNIT_SIZE: a per-CPU cgroup storage's limit
static_assert(sizeof(tardy_stall_entry) == 16);
static_assert(offsetof(tardy_stall_rule, path_ino) == 16);
static_assert(offsetof(tardy_stall_rule, stalls) == 32);
static_assert(offsetof(tardy_stall_rule, filter) == 32 + 16 * TARDY_STALL_MAX + TARDY_STALL_NR_MAX);
static_assert(sizeof(tardy_stall_rule) == 32 + 16 * TARDY_STALL_MAX + TARDY_STALL_NR_MAX + sizeof(tardy_filter));
static_assert(sizeof(tardy_stall_event) == 16);
static_assert(sizeof(tardy_stall_counters) == 16);
