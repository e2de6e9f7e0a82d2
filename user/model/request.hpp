// SPDX-License-Identifier: Apache-2.0
// The agent's side of the request protocol: one JSON line in, one JSON line out.
//
// Anything can arrive on the socket, so a request is parsed under size and nesting caps,
// then checked field by field against what the agent reads from it, before the agent sees
// it: after validate_request() succeeds, the agent's json::at()/get<>() calls and the
// from_json conversions of NetFaults, SockFaults and StallSpec cannot throw, and every value
// is in the range the CLI would have produced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "model/wire.hpp"

namespace tardy {

// Requests carry "v": kProtocolVersion (model/wire.hpp); one without "v" is taken as version 1.
using wire::kProtocolVersion;

constexpr size_t kMaxRequestBytes = 1 << 20;  // one request line, without its newline
constexpr int kMaxRequestDepth = 16;          // arrays and objects inside each other
// The duration parser's own limit (units.cpp): any --for the CLI accepts passes.
constexpr uint64_t kMaxForNs = 1000ULL * 3600 * 1'000'000'000ULL;  // 1000h
constexpr uint64_t kMaxStallNs = 60ULL * 1'000'000'000ULL;         // as --stall: 60s

// One request line to a JSON object. Refuses (user error, one line) a line over
// kMaxRequestBytes, nesting deeper than kMaxRequestDepth (found by a scan, before any tree is
// built: a 100k-deep array costs one pass over its bytes), text that is not JSON, and JSON
// that is not an object. Never throws.
Result<nlohmann::json> parse_request(std::string_view line);

// Checks a parsed request: version, op, and for inject/stop every field the agent reads,
// its type and range. The error names the field. Never throws.
Result<void> validate_request(const nlohmann::json& req);

// {"ok":false,"user":...,"error":...,"v":kProtocolVersion}
nlohmann::json error_reply(const Error& e);

// What the agent does with one request line: parse, validate, dispatch, and the reply line
// (one JSON object with "ok" and "v", ending in '\n'). A refused request never reaches dispatch;
// whatever dispatch throws becomes {"ok":false,"user":false,...}. Never throws.
using Dispatch = std::function<nlohmann::json(const nlohmann::json& req)>;
std::string handle_line(std::string_view line, const Dispatch& dispatch);

}  // namespace tardy
