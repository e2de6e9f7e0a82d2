// SPDX-License-Identifier: Apache-2.0
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "agent/backends.hpp"
#include "agent/log.hpp"
#include "loader/pinned.hpp"
#include "model/syscalls.hpp"
#include "sys/cgroup.hpp"

namespace tardy {

namespace {

// The kernel's dev_t of what stat() reports (new_encode_dev() undone): MKDEV(major, minor).
uint32_t kernel_dev(dev_t d) { return (major(d) << 20) | minor(d); }

// The rule of an injection's stalls; --on and --path must fit every call (the CLI checks it
// too, but a request can come from any client).
Result<tardy_stall_rule> stall_rule(const Injection& inj) {
    tardy_stall_rule rule{};
    rule.expires_ns = inj.expires_ns;
    rule.slot = inj.slot;
    rule.n = static_cast<uint32_t>(std::min<size_t>(inj.stalls.size(), TARDY_STALL_MAX));
    for (uint32_t i = 0; i < rule.n; i++) {
        const StallSpec& st = inj.stalls[i];
        auto calls = stall_syscalls(st.name);
        if (!calls) return calls.error();
        if (st.on != inj.stalls[0].on || st.path != inj.stalls[0].path)
            return Error::user("--on and --path apply to every --stall of an injection alike");
        if ((!st.on.empty() || !st.path.empty()) && !calls->fd_first)
            return Error::user("--stall " + st.name + ": --on and --path judge the fd a call acts on, and " + st.name +
                               " takes none");
        uint32_t on = st.on == "files" ? TARDY_STALL_ON_FILES : st.on == "sockets" ? TARDY_STALL_ON_SOCKETS
                                                                                  : TARDY_STALL_ON_ANY;
        rule.stalls[i] = {st.ppm, on, st.delay_ns};
        for (long nr : calls->nrs) rule.entry_of_nr[nr] = static_cast<uint8_t>(i + 1);
    }
    if (!inj.filter.empty()) {
        // Peers, ports and protocols are those of the socket a call acts on.
        if (rule.n && inj.stalls[0].on != "sockets")
            return Error::user("a filter applies to stalls of calls on sockets only (--on sockets)");
        auto f = encode(inj.filter);
        if (!f) return f.error();
        rule.filter = *f;
        rule.filtered = 1;
    }
    if (rule.n && !inj.stalls[0].path.empty()) {
        const std::string& path = inj.stalls[0].path;
        struct stat sb{};
        if (stat(path.c_str(), &sb) != 0)
            return Error{ErrorKind::User, "--path " + path + ": " + std::strerror(errno) +
                                              " (a stall's --path must exist: it is matched by its inode)", errno};
        rule.path_dev = kernel_dev(sb.st_dev);
        rule.path_ino = sb.st_ino;
    }
    return rule;
}

}  // namespace

StallBackend::StallBackend(BackendEnv env) : env_(env), timer_(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)) {}

Result<void> StallBackend::load() {
    auto s = StallObject::load(env_.paths.bpffs_dir, env_.rng_seed);
    if (!s) return s.error();
    TARDY_TRY((*s)->exempt(static_cast<uint32_t>(getpid())));
    std::string root_procs;
    if (auto cgfs = CgroupFs::detect()) root_procs = cgfs->mount() + "/cgroup.procs";
    // Started before the first stop can happen: it resumes what we do not.
    auto w = start_watchdog((*s)->control_fd(), (*s)->stalled_fd(), root_procs);
    if (!w) return w.error();
    if (auto r = (*s)->exempt(static_cast<uint32_t>(*w)); !r) {
        kill(*w, SIGKILL);
        return r;
    }
    obj_ = std::move(*s);
    watchdog_ = *w;
    log("watchdog " + std::to_string(watchdog_) + " resumes stalled processes the agent does not resume in time");
    return ok();
}

Result<void> StallBackend::add(Injection& inj) {
    // The agent must never stop itself: a stopped agent resumes nobody and renews no lease.
    // Its programs skip its own processes too (tardy_exempt), whatever the target.
    if (auto cgfs = CgroupFs::detect()) {
        auto self = cgfs->by_pid(getpid());
        if (self && (self->id == inj.cg.id || inj.cg.rel == "/" || self->path.rfind(inj.cg.path + "/", 0) == 0))
            return Error::user("refusing to stall " + inj.cg.rel + ": tardy's agent runs " +
                               (self->id == inj.cg.id ? "there" : "below it, in " + self->rel) +
                               "; a stall would stop the agent itself (target a cgroup that does not contain it)");
    }
    auto rule = stall_rule(inj);
    if (!rule) return rule.error();
    if (!obj_) TARDY_TRY(load());
    TARDY_TRY(obj_->reset_counters(inj.slot));
    TARDY_TRY(obj_->put_rule(inj.cg.id, *rule));
    if (auto r = obj_->attach(); !r) {
        (void)obj_->delete_rule(inj.cg.id);
        return r;
    }
    return ok();
}

// Stalls themselves are not changed by `tardy update` (its flags are packet and socket
// faults): only their expiry, with --for.
Result<void> StallBackend::update(const Injection& inj, const Injection& next) {
    auto rule = stall_rule(next);
    if (!rule) return rule.error();
    return obj_->put_rule(inj.cg.id, *rule);
}

Result<void> StallBackend::remove(Injection& inj) { return obj_ ? obj_->delete_rule(inj.cg.id) : ok(); }

void StallBackend::unused() {
    if (!obj_) return;
    obj_->detach();
    resume_all();
}

void StallBackend::count(const Injection& inj, FaultCounters& c) const {
    if (!obj_) return;
    if (auto s = obj_->counters(inj.slot)) {
        c.calls += s->seen;
        c.stalled += s->stalled;
    }
}

void StallBackend::on_events() {
    if (!obj_) return;
    obj_->consume([&](const tardy_stall_event& e) { resumes_.emplace(e.due_ns, e.tgid); });
    arm_timer();
}

void StallBackend::arm_timer() {
    itimerspec its{};
    if (!resumes_.empty()) {
        uint64_t due = resumes_.begin()->first;
        its.it_value = {static_cast<time_t>(due / 1'000'000'000ULL), static_cast<long>(due % 1'000'000'000ULL)};
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    }
    timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

void StallBackend::on_timer() {
    uint64_t n;
    (void)!read(timer_.get(), &n, sizeof n);
    uint64_t now = mono_ns();
    while (!resumes_.empty() && resumes_.begin()->first <= now) {
        if (obj_) obj_->resume(resumes_.begin()->second);
        resumes_.erase(resumes_.begin());
    }
    arm_timer();
}

void StallBackend::resume_all() {
    if (!obj_) return;
    obj_->consume([&](const tardy_stall_event& e) { resumes_.emplace(e.due_ns, e.tgid); });
    for (const auto& [due, tgid] : resumes_) obj_->resume(tgid);
    resumes_.clear();
    arm_timer();
    resume_recorded(obj_->stalled_fd());  // any the ring buffer did not tell us of
}

}  // namespace tardy
