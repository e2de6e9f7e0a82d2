// SPDX-License-Identifier: Apache-2.0
// Reading and zeroing one slot of a per-CPU array of counters (every object has one).
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "model/error.hpp"

namespace tardy {

// Sums slot `slot` over CPUs with `add(sum, one_cpu)`.
template <typename T, typename Add>
Result<T> sum_percpu(int map_fd, uint32_t slot, Add add, const std::string& what) {
    int n = libbpf_num_possible_cpus();
    std::vector<T> per(n > 0 ? n : 1);
    if (bpf_map_lookup_elem(map_fd, &slot, per.data())) return Error::sys("read " + what, errno);
    T sum{};
    for (const auto& c : per) add(sum, c);
    return sum;
}

template <typename T>
Result<void> zero_percpu(int map_fd, uint32_t slot, const std::string& what) {
    int n = libbpf_num_possible_cpus();
    std::vector<T> zero(n > 0 ? n : 1);
    if (bpf_map_update_elem(map_fd, &slot, zero.data(), BPF_ANY)) return Error::sys("reset " + what, errno);
    return ok();
}

}  // namespace tardy
