// SPDX-License-Identifier: Apache-2.0
// The short-lived commands' side of the agent's Unix socket: one JSON request, one reply.
#pragma once

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "sys/paths.hpp"

namespace tardy {

// Connects, sends `req` (made by wire::request()), waits for the reply. ENOENT/ECONNREFUSED
// mean "no agent"; a reply of another protocol version is an error naming both versions.
Result<nlohmann::json> agent_call(const Paths& p, const nlohmann::json& req, int timeout_ms = 30000);

bool agent_reachable(const Paths& p);

// Starts `tardy agent --exit-when-idle` in the background (new session, output to the
// agent log) and waits until it answers.
Result<void> spawn_agent(const Paths& p, const std::string& self_exe);

// Turns an {"ok":false,...} reply into an Error.
Result<nlohmann::json> reply_or_error(const nlohmann::json& reply);

}  // namespace tardy
