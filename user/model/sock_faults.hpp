// SPDX-License-Identifier: Apache-2.0
// Socket syscall faults: the model (--fail) and its encoding into the
// shared struct tardy_sock_rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "model/filter.hpp"
#include "model/tardy_abi.hpp"

namespace tardy {

struct SockFault {
    uint32_t op = 0;   // enum tardy_sock_op, or enum tardy_file_op when file is true
    uint32_t err = 0;  // positive errno
    uint32_t ppm = TARDY_PPM;
    bool file = false;
};

struct SockFaults {
    std::vector<SockFault> faults;       // socket syscalls
    std::vector<SockFault> file_faults;  // open, read, write (BPF LSM)
    std::string path;                    // prefix for file faults, "" for any
    bool any() const { return !faults.empty(); }
    bool any_file() const { return !file_faults.empty(); }
};

// "connect=ECONNREFUSED", "connect=ETIMEDOUT:25%", "sendmsg=101", "socket=EMFILE:1%"
Result<SockFault> parse_fail(const std::string& spec);

// Errno by name ("ECONNREFUSED") or number ("111"); 0 when unknown.
uint32_t errno_from_text(const std::string& text);
std::string errno_name(uint32_t err);
const char* op_name(uint32_t op);

Result<SockFaults> build_sock_faults(const std::vector<std::string>& fails, const std::string& path = "");
Result<tardy_file_rule> encode_file(const SockFaults& f, uint32_t slot, uint64_t expires_ns);
// With the injection's filter (model/filter.hpp), which the caller has checked fits the faults.
Result<tardy_sock_rule> encode(const SockFaults& f, const Filter& filter, uint32_t slot, uint64_t expires_ns);
std::string describe(const SockFaults& f);  // "connect=ECONNREFUSED 25%"

void to_json(nlohmann::json& j, const SockFaults& f);
void from_json(const nlohmann::json& j, SockFaults& f);

}  // namespace tardy
