// SPDX-License-Identifier: Apache-2.0
// Front-end logic of `tardy inject`: resolve the target, check it, hand it to the agent.
#pragma once

#include <string>

#include "sys/cgroup.hpp"
#include "model/error.hpp"
#include "sys/paths.hpp"
#include "model/spec.hpp"
#include "model/wire.hpp"

namespace tardy {

// The request for the agent, with the target resolved to a cgroup and namespaces.
Result<wire::Inject> prepare_inject(const InjectRequest& r, const CgroupFs& cgfs);

// Whether this kernel can do the request's faults: --delay needs sch_fq, and the BPF objects
// they need are loaded (not attached) and dropped: always the file faults' LSM object (a
// kernel can list the BPF LSM and still refuse its programs: this build host does, with
// EPERM), the socket and stall objects only with `load`. `tardy run` loads them all before
// its first phase, so a step the kernel cannot do is refused before anything starts; `tardy
// inject` leaves those two to the agent, which loads them anyway and refuses with the same
// message (one verification, not two; they load on every kernel tardy supports). Needs root.
Result<void> check_kernel_can(const InjectRequest& r, bool load = true);

// Sends it, starting an agent first when none answers. Returns the agent's reply.
Result<wire::InjectReply> submit_inject(const Paths& p, const wire::Inject& req, const std::string& self_exe);

}  // namespace tardy
