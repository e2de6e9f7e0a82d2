// SPDX-License-Identifier: Apache-2.0
// The field readers of the request validator (model/request.cpp, model/request_net.cpp):
// each names the field and what it wants in a one-line error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/error.hpp"

namespace tardy {
struct NetFaults;
}

namespace tardy::request_fields {

using json = nlohmann::json;

constexpr size_t kMaxPath = 4096;  // PATH_MAX, with its NUL
constexpr uint64_t kMaxU64 = ~0ULL;

// A value as an error message shows it: short, one line, valid UTF-8.
std::string shown(const json& v);
Error bad(const std::string& field, const std::string& why);
const json* member(const json& obj, const char* key);
// Absent: `dflt` when there is one (the agent reads the field with value()), else missing.
Result<uint64_t> get_uint(const json& obj, const char* key, const std::string& where, uint64_t lo, uint64_t hi,
                          std::optional<uint64_t> dflt = std::nullopt);
Result<std::string> get_string(const json& obj, const char* key, const std::string& where, bool required);
Result<void> check_abs_path(const std::string& p, const std::string& where, size_t max);
Result<const json*> get_array(const json& obj, const char* key, const std::string& where, size_t max);
Result<const json*> need_object(const json& v, const std::string& where, const char* shape);

// req.net: the packet faults (model/request_net.cpp).
Result<NetFaults> check_net(const json& req);

}  // namespace tardy::request_fields
