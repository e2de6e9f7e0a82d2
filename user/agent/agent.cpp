// SPDX-License-Identifier: Apache-2.0
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "agent/core.hpp"
#include "model/prometheus.hpp"
#include "model/request.hpp"
#include "model/units.hpp"
#include "model/wire.hpp"

using nlohmann::json;

namespace tardy {
namespace {

json fail(const Error& e) { return error_reply(e); }

}  // namespace

Agent::Agent(const AgentOptions& o, std::unique_ptr<TcObject> obj)
    : o_(o), tc_(std::move(obj)), journal_(o.paths.journal()), devices_(*tc_, journal_) {
    for (uint32_t s = TARDY_MAX_RULES; s > 0; s--) free_slots_.push_back(s - 1);
    BackendEnv env{o_.paths, o_.rng_seed, *tc_};
    auto stalls = std::make_unique<StallBackend>(env);
    stalls_ = stalls.get();
    backends_.push_back(std::make_unique<TcBackend>(env, devices_));
    backends_.push_back(std::make_unique<SockBackend>(env));
    backends_.push_back(std::move(stalls));
    backends_.push_back(std::make_unique<FileBackend>(env));
}

json Agent::inject(const json& line, pid_t caller) {
    auto req = line.get<wire::Inject>();  // validate_request() has checked every field
    Injection inj;
    inj.name = req.name;
    if (inj.name.empty()) {
        do inj.name = "inj-" + std::to_string(next_auto_name_++);
        while (injections_.count(inj.name));
    } else if (injections_.count(inj.name)) {
        return fail(Error::user("an injection named '" + inj.name + "' is active; pick another --name or `tardy stop " +
                                inj.name + "` first"));
    }
    inj.cg.path = req.cgroup.path;
    inj.cg.rel = req.cgroup.rel;
    inj.cg.id = req.cgroup.id;
    inj.net = req.net;
    inj.sock = std::move(req.sock);
    inj.stalls = std::move(req.stalls);
    inj.for_ns = req.for_ns;
    inj.want_devices = std::move(req.devices);
    inj.force = req.force;
    if (inj.net.any())
        for (const auto& ns : req.netns) inj.netns.push_back({ns.ino, ns.path});
    inj.filter = std::move(req.filter);
    inj.observe = req.observe;
    inj.measure = req.measure;
    for (const auto& c : req.cohorts) inj.cohorts.push_back({c.role, {c.cgroup.path, c.cgroup.rel, c.cgroup.id}});
    // Several injections on one cgroup: as many as the packet backend holds rules for it, and
    // one of each other kind (socket, file, stall), whose rules are one per cgroup.
    for (const auto& [n, other] : injections_) {
        if (other.cg.id != inj.cg.id) continue;
        for (const auto& b : backends_)
            if (b->used_by(inj) && b->used_by(other) && !b->shares_cgroup())
                return fail(Error::user("cgroup " + inj.cg.rel + " already has injection '" + n + "' and both act on " +
                                        b->name() + ", of which a cgroup holds one injection; put them in one, or `tardy stop " +
                                        n + "` first"));
    }
    if (free_slots_.empty()) return fail(Error::user("too many active injections; stop some first"));
    if (req.bound) {
        // Opened while the caller waits for this reply: its pid cannot have been reused yet.
        inj.owner = Fd(caller > 0 ? static_cast<int>(syscall(SYS_pidfd_open, caller, 0)) : -1);
        if (!inj.owner.valid())
            return fail(Error::other("cannot watch the requesting process (pid " + std::to_string(caller) +
                                     ") for a bound injection: " + (caller > 0 ? std::strerror(errno) : "pid unknown")));
        inj.owner_pid = caller;
    }
    inj.slot = free_slots_.back();
    if (auto r = start_measuring(inj); !r) return fail(r.error());
    // --for counts from the moment the faults go in, after the metric programs (a cold load
    // of those takes a second or more on a slow machine).
    inj.expires_ns = mono_ns() + inj.for_ns;
    std::vector<Backend*> added;
    for (auto& b : backends_) {
        if (!b->used_by(inj)) continue;
        if (auto r = b->add(inj); !r) {
            for (auto it = added.rbegin(); it != added.rend(); ++it) (void)(*it)->remove(inj);
            release_unused("");  // a first stall or file rule may have attached its programs
            cohorts_.forget(inj.name);
            return fail(r.error());
        }
        added.push_back(b.get());
    }
    free_slots_.pop_back();
    log("injection " + inj.name + " on " + inj.cg.rel + ": " + describe(inj.net) + " " + describe(inj.sock) + " " +
        describe(inj.stalls) + " " + describe(inj.filter) + " for " + format_duration(inj.for_ns));
    wire::InjectReply rep{inj.name, inj.device_names};
    injections_.emplace(rep.name, std::move(inj));
    return wire::reply(rep);
}

Result<void> Agent::start_measuring(Injection& inj) {
    if (!inj.observe && !inj.measure && inj.cohorts.empty()) {
        // Measuring costs the target a little on every packet and connection: only when asked.
        inj.unmeasured_reason = "give it a control cohort (--control CGROUP) or --measure when injecting";
        return ok();
    }
    std::vector<Injection::CohortRef> all;
    if (!inj.observe) all.push_back({"experiment", inj.cg});
    all.insert(all.end(), inj.cohorts.begin(), inj.cohorts.end());
    for (size_t i = 0; i < all.size(); i++)
        for (size_t j = 0; j < i; j++)
            if (all[i].cg.id == all[j].cg.id)
                return Error::user("cgroup " + all[i].cg.rel + " is given twice as a cohort; the control must be " +
                                   "another cgroup than the target");
    auto r = cohorts_.measure(inj.name, all);
    inj.measured = r.ok();
    return r;
}

// tardy's own doing to a cohort: the counters of the injections whose target is the cohort's
// cgroup or one below it, live and ended (retired_).
void Agent::add_tardy(const Cgroup& cohort, CohortMetrics& m) const {
    auto add = [&](const Cgroup& cg, const FaultCounters& c) {
        if (cg.id != cohort.id && !cg.path.starts_with(cohort.path + "/")) return;
        m.tardy_dropped += c.dropped;
        m.tardy_delayed += c.delayed;
        m.tardy_failed += c.failed;
        m.tardy_stalled += c.stalled;
        m.failed_tardy += c.connects_refused;
        m.connects += c.connects_refused;  // calls that never reached TCP are connects all the same
    };
    for (const auto& [n, inj] : injections_) add(inj.cg, count(inj));
    for (const auto& [id, r] : retired_) add(r.cg, r.c);
}

FaultCounters Agent::count(const Injection& inj) const {
    FaultCounters c;
    for (const auto& b : backends_)
        if (b->used_by(inj)) b->count(inj, c);
    return c;
}

std::vector<std::pair<const Injection*, FaultCounters>> Agent::counters() const {
    std::vector<std::pair<const Injection*, FaultCounters>> out;
    for (const auto& [n, inj] : injections_) out.emplace_back(&inj, count(inj));
    return out;
}

std::string Agent::prometheus() const {
    std::vector<InjectionSample> inj;
    for (const auto& [i, c] : counters())
        inj.push_back({i->name, i->cg.rel, c.matched, c.delayed, c.dropped, c.bytes, c.calls, c.failed, c.stalled});
    return prometheus_text(inj, cohorts_.reports());
}

json Agent::stats(const json& line) {
    auto req = line.get<wire::Stats>();
    auto it = injections_.find(req.name);
    if (it == injections_.end())
        return fail(Error::user("no active injection or observation named '" + req.name + "'; see `tardy list`"));
    if (!it->second.measured)
        return fail(Error::user("injection '" + req.name + "' is not measured: " + it->second.unmeasured_reason));
    auto rep = cohorts_.report(req.name);
    if (!rep) return fail(rep.error());
    json j = to_json(*rep);
    if (req.raw)
        for (const auto& c : rep->cohorts) j["raw"].push_back({{"role", c.role}, {"cgroup", c.cgroup}, {"metrics", raw_json(c.m)}});
    j["ok"] = true;
    j["v"] = wire::kProtocolVersion;
    return j;
}

void Agent::release_unused(const std::string& leaving) {
    for (auto& b : backends_) {
        bool used = false;
        for (const auto& [n, inj] : injections_) used |= n != leaving && b->used_by(inj);
        if (!used) b->unused();
    }
}

Result<void> Agent::end(const std::string& name) {
    auto it = injections_.find(name);
    if (it == injections_.end()) return ok();
    Injection& inj = it->second;
    if (!inj.observe) {  // its last counters, read before its rules and counters go
        auto& r = retired_.try_emplace(inj.cg.id, Retired{inj.cg, {}}).first->second;
        r.c += count(inj);
    }
    Result<void> result = ok();
    for (auto b = backends_.rbegin(); b != backends_.rend(); ++b) {
        if (!(*b)->used_by(inj)) continue;
        if (auto r = (*b)->remove(inj); !r) result = r;
    }
    release_unused(name);
    cohorts_.forget(name);
    free_slots_.push_back(inj.slot);
    log("ended injection " + name);
    injections_.erase(it);
    if (injections_.empty()) retired_.clear();  // no reading is left to count them in
    (void)journal_.compact();
    return result;
}

json Agent::list() {
    wire::ListReply rep;
    rep.agent_pid = getpid();
    uint64_t now = mono_ns();
    for (const auto& [name, inj] : injections_) {
        FaultCounters c = count(inj);
        std::string faults;
        for (const auto& part : {describe(inj.net), describe(inj.sock), describe(inj.stalls)})
            if (!part.empty()) faults += (faults.empty() ? "" : "; ") + part;
        if (auto f = describe(inj.filter); !f.empty()) faults += " " + f;
        wire::InjectionInfo i;
        i.name = name;
        i.cgroup = inj.cg.rel;
        i.cgroup_id = inj.cg.id;
        i.net = inj.net;
        i.sock = inj.sock;
        i.filter = inj.filter;
        i.stalls = inj.stalls;
        i.faults = faults;
        i.left_ns = inj.expires_ns > now ? inj.expires_ns - now : 0;
        i.devices = inj.device_names;
        i.replaced_qdiscs = inj.replaced_qdiscs;
        i.counters = {c.matched, c.delayed, c.dropped, c.bytes, c.calls,      c.failed,
                      c.stalled, c.duplicated, c.reordered, c.paced, c.dns, c.resets, c.corrupted};
        for (const auto& k : inj.cohorts)
            if (k.role == "control") i.control = k.cg.rel;
        i.observe = inj.observe;
        i.revision = inj.revision;
        i.measured = inj.measured;
        i.owner_pid = inj.owner_pid;
        if (inj.observe) {
            i.faults = "observe only:";
            for (const auto& k : inj.cohorts) i.faults += " " + k.cg.rel;
        }
        rep.injections.push_back(std::move(i));
    }
    return wire::reply(rep);
}

json Agent::stop(const json& line) {
    auto req = line.get<wire::Stop>();
    std::vector<std::string> names;
    if (req.all) {
        for (const auto& [n, i] : injections_) names.push_back(n);
    } else {
        const std::string& n = req.name;
        if (!injections_.count(n))
            return fail(Error::user("no active injection named '" + n + "'; see `tardy list`"));
        names.push_back(n);
    }
    std::string errors;
    for (const auto& n : names) {
        auto r = end(n);
        if (!r) errors += (errors.empty() ? "" : "; ") + r.error().message;
    }
    if (!errors.empty()) return fail(Error::other(errors));
    return wire::reply(wire::StopReply{names});
}

json Agent::handle(const json& req, pid_t caller) {
    // Injections past their deadline (or whose owner left) end before any request sees them:
    // the kernel ignores an expired rule at once, and the 100 ms tick would otherwise leave a
    // moment in which it still holds its cgroup against a new inject, or shows in list.
    tick();
    last_activity_ns = mono_ns();
    std::string op = req.value("op", std::string());
    try {
        if (op == "inject") return inject(req, caller);
        if (op == "list") return list();
        if (op == "stop") return stop(req);
        if (op == "update") return update(req);
        if (op == "stats") return stats(req);
        if (op == "ping") return wire::reply(wire::PingReply{getpid()});
    } catch (const json::exception& e) {
        return fail(Error::other(std::string("malformed request: ") + e.what()));
    }
    return fail(Error::other("unknown request '" + op + "'"));
}

// The target's cgroup directory is gone, or is another cgroup now (same path, new id):
// nothing of the target is left to fault.
bool Agent::target_gone(const Injection& inj) const {
    struct stat st{};
    if (stat(inj.cg.path.c_str(), &st) != 0) return errno == ENOENT || errno == ENOTDIR;
    return static_cast<uint64_t>(st.st_ino) != inj.cg.id;
}

void Agent::end_by_itself(const std::string& name, const std::string& reason) {
    auto it = injections_.find(name);
    if (it == injections_.end()) return;
    std::string cg = it->second.cg.rel;
    log("injection " + name + " on " + cg + " ended: " + reason);
    (void)end(name);
    ended_.push_back({{"name", name}, {"cgroup", cg}, {"reason", reason}, {"ended_at", std::time(nullptr)}});
    if (ended_.size() > 16) ended_.erase(ended_.begin());
    // A fresh file (O_EXCL, O_NOFOLLOW) renamed over ended.json: a symlink planted at either
    // name is never written through (issue 7); rename replaces a link, not its target.
    std::string tmp = o_.paths.ended() + ".tmp", line = ended_.dump() + "\n";
    unlink(tmp.c_str());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    bool written = fd >= 0 && write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    if (fd >= 0) close(fd);
    if (!written || std::rename(tmp.c_str(), o_.paths.ended().c_str()) != 0) {
        unlink(tmp.c_str());
        log("write " + o_.paths.ended() + " failed");
    }
}

void Agent::tick() {
    uint64_t now = mono_ns();
    __atomic_store_n(&tc_->control()->lease_deadline_ns, now + kLeaseNs, __ATOMIC_SEQ_CST);
    std::vector<std::pair<std::string, std::string>> over;
    bool check_targets = now >= next_target_check_ns_;
    if (check_targets) next_target_check_ns_ = now + 500'000'000ULL;
    for (const auto& [n, inj] : injections_) {
        pollfd owner{inj.owner.get(), POLLIN, 0};
        if (now >= inj.expires_ns)
            over.emplace_back(n, "reached its deadline");
        else if (inj.owner.valid() && poll(&owner, 1, 0) == 1)
            over.emplace_back(n, "its owner (pid " + std::to_string(inj.owner_pid) + ") exited");
        else if (check_targets && target_gone(inj))
            over.emplace_back(n, "target removed");
    }
    for (const auto& [n, why] : over) {
        end_by_itself(n, why);
        last_activity_ns = now;
    }
    devices_.tick(now);
    cohorts_.refresh(now);
}

void Agent::end_all() {
    std::vector<std::string> names;
    for (const auto& [n, i] : injections_) names.push_back(n);
    for (const auto& n : names) (void)end(n);
    devices_.flush();
}

}  // namespace tardy
