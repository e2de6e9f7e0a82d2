// Front-end logic of `tardy inject`: resolve the target, check it, hand it to the agent.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "sys/cgroup.hpp"
#include "model/error.hpp"
#include "sys/paths.hpp"
#include "model/spec.hpp"

namespace tardy {

// The JSON request for the agent, with the target resolved to a cgroup and namespaces.
Result<nlohmann::json> prepare_inject(const InjectRequest& r, const CgroupFs& cgfs);

// Sends it, starting an agent first when none answers. Returns the agent's reply.
Result<nlohmann::json> submit_inject(const Paths& p, const nlohmann::json& req, const std::string& self_exe);

}  // namespace tardy
