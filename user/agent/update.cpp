// SPDX-License-Identifier: Apache-2.0
// `tardy update`: a live injection's faults changed in place, backend by backend.
#include "agent/core.hpp"
#include "model/request.hpp"
#include "model/units.hpp"
#include "model/wire.hpp"

using nlohmann::json;

namespace tardy {

json Agent::update(const json& line) {
    auto req = line.get<wire::Update>();  // validate_request() has checked every field
    auto it = injections_.find(req.name);
    if (it == injections_.end())
        return error_reply(Error::user("no active injection named '" + req.name + "'; see `tardy list`"));
    Injection& inj = it->second;
    if (inj.observe) return error_reply(Error::user("'" + req.name + "' is an observation: it has no fault to change"));
    if (req.revision >= 0 && static_cast<uint64_t>(req.revision) != inj.revision)
        return error_reply(Error::user("injection '" + req.name + "' " + wire::kStaleUpdate + "; run the update again"));
    // What the backends read from an injection, with the new faults and deadline.
    Injection next;
    next.name = inj.name;
    next.cg = inj.cg;
    next.filter = inj.filter;
    next.stalls = inj.stalls;
    next.slot = inj.slot;
    next.flow_seed = inj.flow_seed;
    next.net = req.net;
    // Direction, setup-only and flows are how the injection was set up, not its faults' sizes.
    next.net.scope = inj.net.scope;
    next.net.flows_ppm = inj.net.flows_ppm;
    next.sock = req.sock;
    next.sock.path = inj.sock.path;
    uint64_t now = mono_ns();
    next.for_ns = req.for_ns ? req.for_ns : inj.for_ns;
    next.expires_ns = req.for_ns ? now + req.for_ns : inj.expires_ns;
    for (const auto& b : backends_)
        if (b->used_by(inj) != b->used_by(next))
            return error_reply(Error::user(
                std::string(b->used_by(inj) ? "the update leaves injection '" + req.name + "' without its " + b->name() +
                                                  " faults; stop it to end them"
                                            : "injection '" + req.name + "' has no " + b->name() +
                                                  " faults; an update changes the faults an injection has, so inject "
                                                  "them as another injection")));
    // Each backend's rule in turn; one that fails puts the earlier ones back as they were.
    std::vector<Backend*> done;
    for (auto& b : backends_) {
        if (!b->used_by(inj)) continue;
        if (auto r = b->update(inj, next); !r) {
            for (auto d = done.rbegin(); d != done.rend(); ++d) (void)(*d)->update(next, inj);
            return error_reply(r.error());
        }
        done.push_back(b.get());
    }
    inj.net = next.net;
    inj.sock = next.sock;
    inj.for_ns = next.for_ns;
    inj.expires_ns = next.expires_ns;
    inj.revision++;
    log("injection " + inj.name + " updated: " + describe(inj.net) + " " + describe(inj.sock) +
        (req.for_ns ? " for " + format_duration(req.for_ns) + " from now" : std::string()));
    last_activity_ns = now;
    return wire::reply(wire::InjectReply{inj.name, inj.device_names});
}

}  // namespace tardy
