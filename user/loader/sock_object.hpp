// SPDX-License-Identifier: Apache-2.0
// The loaded socket-fault object (bpf/sock.bpf.c): its rules and counters, and links of its
// programs to target cgroups.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loader/cgroup_link.hpp"
#include "model/error.hpp"
#include "model/tardy_abi.hpp"

struct tardy_sock;
struct bpf_link;

namespace tardy {

class SockObject {
public:
    // pin_dir: where the control map shared with the TC object is pinned (empty: private).
    static Result<std::unique_ptr<SockObject>> load(const std::string& pin_dir, uint64_t rng_seed = 0);
    ~SockObject();
    SockObject(const SockObject&) = delete;
    SockObject& operator=(const SockObject&) = delete;

    // Links the programs that serve these ops to the cgroup directory.
    // connect_timeouts: a connect fault fails with ETIMEDOUT, whose sockets lose every packet
    // (the cgroup_skb program that does it runs only then).
    Result<std::vector<CgroupLink>> attach(const std::string& cgroup_path, const std::vector<uint32_t>& ops,
                                           bool connect_timeouts);
    Result<void> put_rule(uint64_t cgid, const tardy_sock_rule& r);
    Result<void> delete_rule(uint64_t cgid);
    Result<tardy_sock_counters> counters(uint32_t slot) const;
    Result<void> reset_counters(uint32_t slot);

private:
    SockObject() = default;
    tardy_sock* skel_ = nullptr;
};

}  // namespace tardy
