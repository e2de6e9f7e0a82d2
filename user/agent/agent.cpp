#include "agent/agent.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sys/cgroup.hpp"
#include "sys/fd.hpp"
#include "sys/journal.hpp"
#include "sys/netns.hpp"
#include "sys/qdisc.hpp"
#include "loader/file_object.hpp"
#include "loader/sock_object.hpp"
#include "loader/stall_object.hpp"
#include "model/spec.hpp"
#include "loader/tc_object.hpp"
#include "model/units.hpp"
#include "loader/pinned.hpp"
#include "sys/run_lock.hpp"
#include "model/request.hpp"
#include "agent/server.hpp"

using nlohmann::json;

namespace tardy {
namespace {

uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + ts.tv_nsec;
}

void log(const std::string& msg) {
    char when[32];
    std::time_t t = std::time(nullptr);
    std::strftime(when, sizeof when, "%F %T", std::localtime(&t));
    std::fprintf(stderr, "%s tardy-agent[%d]: %s\n", when, getpid(), msg.c_str());
    std::fflush(stderr);
}

json fail(const Error& e) { return {{"ok", false}, {"user", e.is_user()}, {"error", e.message}}; }

struct DeviceKey {
    uint64_t netns = 0;
    int ifindex = 0;
    auto operator<=>(const DeviceKey&) const = default;
};

// One device our program is attached to, shared by the injections that use it.
struct Device {
    std::string ifname;
    Fd nsfd;
    std::optional<TcAttachment> attachment;
    uint64_t attach_jid = 0;  // journal entry of a clsact filter, 0 for TCX
    int refs = 0;
    int fq_refs = 0;
    uint64_t qdisc_jid = 0;   // journal entry of the replaced root qdisc, 0 when fq was there
};

struct Injection {
    std::string name;
    Cgroup cg;
    NetFaults net;
    SockFaults sock;
    std::vector<CgroupLink> links;  // socket-fault programs on the target cgroup
    std::vector<StallSpec> stalls;
    uint64_t expires_ns = 0;
    uint64_t for_ns = 0;
    uint32_t slot = 0;
    std::vector<DeviceKey> devices;
};

class Agent {
public:
    Agent(const AgentOptions& o, std::unique_ptr<TcObject> obj)
        : o_(o), obj_(std::move(obj)), journal_(o.paths.journal()) {
        for (uint32_t s = TARDY_MAX_RULES; s > 0; s--) free_slots_.push_back(s - 1);
    }

    json handle(const json& req);
    void tick();
    void end_all();
    void arm() { __atomic_store_n(&obj_->control()->armed, 1u, __ATOMIC_SEQ_CST); }
    bool idle() const { return injections_.empty(); }
    uint64_t last_activity_ns = mono_ns();

private:
    json inject(const json& req);
    json list();
    json stop(const json& req);
    Result<void> end(const std::string& name);
    Result<void> acquire(const DeviceKey& k, int nsfd, const std::string& ifname, bool need_fq);
    Result<void> release(const DeviceKey& k, bool had_fq);
    Result<void> restore_fq(Device& d);

    Result<void> add_sock_faults(Injection& inj);
    Result<void> add_stalls(Injection& inj);
    Result<void> add_file_faults(Injection& inj);
    std::unique_ptr<FileObject> file_;
    void resume_all_pending();
    // Detaches the host-wide programs (stall tracepoints, LSM hooks) that no injection but
    // `leaving` needs any more: every process pays for them while attached.
    void detach_unused(const std::string& leaving);

public:
    // Stalls: the ring buffer of stops and the timer of the next resume, when loaded.
    int stall_events_fd() const { return stall_ ? stall_->events_fd() : -1; }
    int resume_timer_fd() const { return resume_timer_.get(); }
    void on_stall_events();
    void on_resume_timer();
    void arm_resume_timer();

private:
    std::unique_ptr<StallObject> stall_;
    std::multimap<uint64_t, uint32_t> resumes_;  // due (CLOCK_MONOTONIC ns) -> tgid
    Fd resume_timer_{timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)};
    pid_t watchdog_ = 0;

    AgentOptions o_;
    std::unique_ptr<TcObject> obj_;
    std::unique_ptr<SockObject> sock_;  // loaded on the first socket fault
    Journal journal_;
    std::map<DeviceKey, Device> devices_;
    std::map<std::string, Injection> injections_;
    std::vector<uint32_t> free_slots_;
    uint64_t next_auto_name_ = 1;
};

Result<void> Agent::acquire(const DeviceKey& k, int nsfd, const std::string& ifname, bool need_fq) {
    Device& d = devices_[k];
    if (!d.nsfd.valid()) {
        d.nsfd = Fd(fcntl(nsfd, F_DUPFD_CLOEXEC, 0));
        d.ifname = ifname;
    }
    bool installed_fq = false;
    if (need_fq && d.fq_refs == 0) {
        auto r = in_netns(d.nsfd.get(), [&]() -> Result<void> {
            auto snap = root_qdisc(k.ifindex);
            if (!snap) return snap.error();
            if (snap->kind == "fq") return ok();  // already enforcing departure times
            TARDY_TRY(check_restorable(*snap));
            auto jid = journal_.record({0, "qdisc", k.netns, k.ifindex, ifname, encode(*snap)});
            if (!jid) return jid.error();
            if (auto rr = replace_root_qdisc(k.ifindex, "fq", fq_options_for_delay()); !rr) {
                (void)journal_.done(*jid);
                return rr.error();
            }
            d.qdisc_jid = *jid;
            installed_fq = true;
            return ok();
        });
        if (!r) {
            if (d.refs == 0) devices_.erase(k);
            return r;
        }
        if (installed_fq) log("installed fq as root qdisc of " + ifname);
    }
    // Delays need a clsact filter (bpf/lib/steal.bpf.h); a device attached by a TCX link for
    // loss moves to clsact when a delay arrives: the filter first, then the link goes, so
    // no packet passes unseen (one may be seen twice).
    bool need_clsact = need_fq && d.attachment && d.attachment->kind() == TcAttachment::Kind::Tcx;
    if (d.refs == 0 || need_clsact) {
        std::optional<TcAttachment> old;
        if (need_clsact) old.emplace(std::move(*d.attachment));
        auto mode = need_fq ? TcAttachment::Mode::Clsact : TcAttachment::Mode::Auto;
        auto r = in_netns(d.nsfd.get(), [&]() -> Result<void> {
            auto a = TcAttachment::attach_egress(
                *obj_, k.ifindex, mode, [&](uint32_t h, uint32_t prio, bool created) -> Result<void> {
                    char data[64];
                    std::snprintf(data, sizeof data, "%x:%x:%d", h, prio, created ? 1 : 0);
                    auto jid = journal_.record({0, "clsact", k.netns, k.ifindex, ifname, data});
                    if (!jid) return jid.error();
                    d.attach_jid = *jid;
                    return ok();
                });
            if (!a) {
                if (d.attach_jid) (void)journal_.done(std::exchange(d.attach_jid, 0));
                return a.error();
            }
            d.attachment.emplace(std::move(*a));
            return ok();
        });
        if (!r) {
            if (old) d.attachment.emplace(std::move(*old));  // keep serving the loss rules
            if (need_fq && d.fq_refs == 0) (void)restore_fq(d);
            if (d.refs == 0) devices_.erase(k);
            return r;
        }
        if (old) (void)old->detach();  // a TCX link: closing its fd detaches it
        log("attached egress program to " + ifname +
            (d.attachment->kind() == TcAttachment::Kind::Tcx ? " (TCX link)" : " (clsact filter)"));
    }
    d.refs++;
    if (need_fq) d.fq_refs++;
    return ok();
}

Result<void> Agent::restore_fq(Device& d) {
    if (!d.qdisc_jid) return ok();  // fq was there before us
    Result<void> result = ok();
    for (const auto& e : journal_.open_entries()) {
        if (e.id != d.qdisc_jid) continue;
        result = in_netns(d.nsfd.get(), [&]() -> Result<void> {
            auto snap = decode(e.data);
            if (!snap) return snap.error();
            return restore_root_qdisc(*snap);
        });
        if (result) {
            (void)journal_.done(d.qdisc_jid);
            log("restored root qdisc of " + d.ifname);
        } else {
            log("restore root qdisc of " + d.ifname + ": " + result.error().message);
        }
    }
    d.qdisc_jid = 0;
    return result;
}

Result<void> Agent::release(const DeviceKey& k, bool had_fq) {
    auto it = devices_.find(k);
    if (it == devices_.end()) return ok();
    Device& d = it->second;
    Result<void> result = ok();
    if (had_fq && --d.fq_refs == 0) {
        if (auto r = restore_fq(d); !r) result = r;
    }
    if (d.refs > 0 && --d.refs == 0) {
        if (d.attachment) {
            auto r = d.attachment->kind() == TcAttachment::Kind::Tcx
                         ? d.attachment->detach()
                         : in_netns(d.nsfd.get(), [&] { return d.attachment->detach(); });
            if (r && d.attach_jid) (void)journal_.done(d.attach_jid);
            if (!r) {
                log("detach from " + d.ifname + ": " + r.error().message);
                result = r;
            } else {
                log("detached egress program from " + d.ifname);
            }
        }
        if (d.fq_refs == 0) devices_.erase(it);
    }
    return result;
}

json Agent::inject(const json& req) {
    Injection inj;
    inj.name = req.value("name", std::string());
    if (inj.name.empty()) {
        do inj.name = "inj-" + std::to_string(next_auto_name_++);
        while (injections_.count(inj.name));
    } else if (injections_.count(inj.name)) {
        return fail(Error::user("an injection named '" + inj.name + "' is active; pick another --name or `tardy stop " +
                                inj.name + "` first"));
    }
    inj.cg.path = req.at("cgroup").at("path");
    inj.cg.rel = req.at("cgroup").at("rel");
    inj.cg.id = req.at("cgroup").at("id");
    inj.net = req.at("net").get<NetFaults>();
    inj.sock = req.value("sock", nlohmann::json::object()).get<SockFaults>();
    inj.stalls = req.value("stalls", nlohmann::json::array()).get<std::vector<StallSpec>>();
    inj.for_ns = req.at("for_ns");
    for (const auto& [n, other] : injections_) {
        if (other.cg.id == inj.cg.id)
            return fail(Error::user("cgroup " + inj.cg.rel + " already has injection '" + n + "'; `tardy stop " + n +
                                    "` first"));
    }
    if (free_slots_.empty()) return fail(Error::user("too many active injections; stop some first"));

    struct Plan {
        DeviceKey key;
        int nsfd;
        std::string ifname;
    };
    std::vector<Fd> nsfds;
    std::vector<Plan> plan;
    std::vector<std::string> want = req.value("devices", std::vector<std::string>{});
    for (const auto& ns : inj.net.any() ? req.at("netns") : json::array()) {
        NetnsRef ref{ns.at("ino"), ns.at("path")};
        auto fd = open_netns(ref);
        if (!fd) return fail(fd.error());
        std::vector<NetDevice> devs;
        auto r = in_netns(fd->get(), [&] {
            devs = list_devices();
            return ok();
        });
        if (!r) return fail(r.error());
        std::vector<std::string> names;
        for (const auto& d : devs) names.push_back(d.name);
        for (const auto& w : want) {
            bool found = false;
            for (const auto& d : devs) found |= d.name == w;
            if (!found) {
                std::string have;
                for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
                return fail(Error::user("--device " + w + ": no such device in the target's network namespace (" +
                                        ref.path + " has: " + have + ")"));
            }
        }
        for (const auto& d : devs) {
            bool chosen = want.empty() ? !d.loopback : std::find(want.begin(), want.end(), d.name) != want.end();
            if (chosen) plan.push_back({{ref.ino, d.ifindex}, fd->get(), d.name});
        }
        nsfds.push_back(std::move(*fd));
    }
    if (inj.net.any() && plan.empty())
        return fail(Error::user("the target's network namespace has no device but loopback; choose one with --device lo"));

    bool need_fq = inj.net.delay_ns > 0;
    if (need_fq) {
        bool available = false;
        auto r = in_netns(plan.front().nsfd, [&]() -> Result<void> {
            auto a = qdisc_kind_available("fq");
            if (!a) return a.error();
            available = *a;
            return ok();
        });
        if (!r) return fail(r.error());
        if (!available)
            return fail(Error::user("--delay needs the fq qdisc to enforce departure times, and this kernel has none "
                                    "(sch_fq missing; see `tardy doctor`); --loss works without it"));
    }

    std::vector<DeviceKey> done;
    for (const auto& p : plan) {
        auto r = acquire(p.key, p.nsfd, p.ifname, need_fq);
        if (!r) {
            for (auto it = done.rbegin(); it != done.rend(); ++it) (void)release(*it, need_fq);
            return fail(r.error());
        }
        done.push_back(p.key);
    }
    inj.devices = done;
    inj.slot = free_slots_.back();
    inj.expires_ns = mono_ns() + inj.for_ns;
    tardy_rule rule{};
    rule.slot = inj.slot;
    rule.loss_ppm = inj.net.loss_ppm;
    rule.delay_ns = inj.net.delay_ns;
    rule.jitter_ns = inj.net.jitter_ns;
    rule.expires_ns = inj.expires_ns;
    auto rc = obj_->reset_counters(inj.slot);
    if (rc && inj.net.any()) rc = obj_->put_rule(inj.cg.id, rule);
    if (rc && inj.sock.any()) rc = add_sock_faults(inj);
    if (rc && !inj.stalls.empty()) rc = add_stalls(inj);
    if (rc && inj.sock.any_file()) rc = add_file_faults(inj);
    if (!rc) {
        (void)obj_->delete_rule(inj.cg.id);
        if (sock_) (void)sock_->delete_rule(inj.cg.id);
        if (stall_ && !inj.stalls.empty()) (void)stall_->delete_rule(inj.cg.id);
        if (file_ && inj.sock.any_file()) (void)file_->delete_rule(inj.cg.id);
        inj.links.clear();
        detach_unused("");  // a first stall or file rule may have attached its programs
        for (auto it = done.rbegin(); it != done.rend(); ++it) (void)release(*it, need_fq);
        return fail(rc.error());
    }
    free_slots_.pop_back();
    json devs = json::array();
    for (const auto& p : plan) devs.push_back(p.ifname);
    log("injection " + inj.name + " on " + inj.cg.rel + ": " + describe(inj.net) + " " + describe(inj.sock) + " " +
        describe(inj.stalls) + " for " + format_duration(inj.for_ns));
    std::string name = inj.name;
    injections_.emplace(name, std::move(inj));
    return {{"ok", true}, {"name", name}, {"devices", devs}};
}

Result<void> Agent::add_sock_faults(Injection& inj) {
    if (!sock_) {
        auto s = SockObject::load(o_.paths.bpffs_dir, o_.rng_seed);
        if (!s) return s.error();
        sock_ = std::move(*s);
    }
    auto rule = encode(inj.sock, inj.slot, inj.expires_ns);
    if (!rule) return rule.error();
    TARDY_TRY(sock_->reset_counters(inj.slot));
    // The rule first, then the links: a call that runs the hooks already finds it.
    TARDY_TRY(sock_->put_rule(inj.cg.id, *rule));
    obj_->bump_generation();
    std::vector<uint32_t> ops;
    for (const auto& f : inj.sock.faults) ops.push_back(f.op);
    auto links = sock_->attach(inj.cg.path, ops);
    if (!links) {
        (void)sock_->delete_rule(inj.cg.id);
        return links.error();
    }
    inj.links = std::move(*links);
    return ok();
}

Result<void> Agent::add_stalls(Injection& inj) {
    // The agent must never stop itself: a stopped agent resumes nobody and renews no lease.
    // Its programs skip its own processes too (tardy_exempt), whatever the target.
    if (auto cgfs = CgroupFs::detect()) {
        auto self = cgfs->by_pid(getpid());
        if (self && (self->id == inj.cg.id || inj.cg.rel == "/" || self->path.rfind(inj.cg.path + "/", 0) == 0))
            return Error::user("refusing to stall " + inj.cg.rel + ": tardy's agent runs " +
                               (self->id == inj.cg.id ? "there" : "below it, in " + self->rel) +
                               "; a stall would stop the agent itself (target a cgroup that does not contain it)");
    }
    if (!stall_) {
        auto s = StallObject::load(o_.paths.bpffs_dir, o_.rng_seed);
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
        stall_ = std::move(*s);
        watchdog_ = *w;
        log("watchdog " + std::to_string(watchdog_) + " resumes stalled processes the agent does not resume in time");
    }
    tardy_stall_rule rule{};
    rule.expires_ns = inj.expires_ns;
    rule.slot = inj.slot;
    rule.n = static_cast<uint32_t>(inj.stalls.size());
    for (size_t i = 0; i < inj.stalls.size() && i < TARDY_STALL_MAX; i++)
        rule.stalls[i] = {static_cast<uint32_t>(inj.stalls[i].nr), inj.stalls[i].ppm, inj.stalls[i].delay_ns};
    TARDY_TRY(stall_->reset_counters(inj.slot));
    TARDY_TRY(stall_->put_rule(inj.cg.id, rule));
    if (auto r = stall_->attach(); !r) {
        (void)stall_->delete_rule(inj.cg.id);
        return r;
    }
    return ok();
}

Result<void> Agent::add_file_faults(Injection& inj) {
    if (!file_) {
        auto f = FileObject::load(o_.paths.bpffs_dir, o_.rng_seed);
        if (!f) return f.error();
        file_ = std::move(*f);
    }
    auto rule = encode_file(inj.sock, inj.slot, inj.expires_ns);
    if (!rule) return rule.error();
    TARDY_TRY(file_->reset_counters(inj.slot));
    TARDY_TRY(file_->put_rule(inj.cg.id, *rule));
    if (auto r = file_->attach(); !r) {
        (void)file_->delete_rule(inj.cg.id);
        return r;
    }
    return ok();
}

void Agent::on_stall_events() {
    if (!stall_) return;
    stall_->consume([&](const tardy_stall_event& e) { resumes_.emplace(e.due_ns, e.tgid); });
    arm_resume_timer();
}

void Agent::arm_resume_timer() {
    itimerspec its{};
    if (!resumes_.empty()) {
        uint64_t due = resumes_.begin()->first;
        its.it_value = {static_cast<time_t>(due / 1'000'000'000ULL), static_cast<long>(due % 1'000'000'000ULL)};
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    }
    timerfd_settime(resume_timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

void Agent::on_resume_timer() {
    uint64_t n;
    (void)!read(resume_timer_.get(), &n, sizeof n);
    uint64_t now = mono_ns();
    while (!resumes_.empty() && resumes_.begin()->first <= now) {
        stall_->resume(resumes_.begin()->second);
        resumes_.erase(resumes_.begin());
    }
    arm_resume_timer();
}

void Agent::resume_all_pending() {
    if (!stall_) return;
    stall_->consume([&](const tardy_stall_event& e) { resumes_.emplace(e.due_ns, e.tgid); });
    for (const auto& [due, tgid] : resumes_) stall_->resume(tgid);
    resumes_.clear();
    arm_resume_timer();
    resume_recorded(stall_->stalled_fd());  // any the ring buffer did not tell us of
}

void Agent::detach_unused(const std::string& leaving) {
    bool stalls = false, files = false;
    for (const auto& [n, inj] : injections_) {
        if (n == leaving) continue;
        stalls |= !inj.stalls.empty();
        files |= inj.sock.any_file();
    }
    if (file_ && !files) file_->detach();
    if (stall_ && !stalls) {
        stall_->detach();
        resume_all_pending();
    }
}

Result<void> Agent::end(const std::string& name) {
    auto it = injections_.find(name);
    if (it == injections_.end()) return ok();
    Injection& inj = it->second;
    Result<void> result = obj_->delete_rule(inj.cg.id);
    if (sock_ && inj.sock.any()) {
        inj.links.clear();  // detach first: no call runs the hooks from here on
        if (auto r = sock_->delete_rule(inj.cg.id); !r) result = r;
        obj_->bump_generation();
    }
    if (file_ && inj.sock.any_file()) {
        if (auto r = file_->delete_rule(inj.cg.id); !r) result = r;
    }
    if (stall_ && !inj.stalls.empty()) {
        if (auto r = stall_->delete_rule(inj.cg.id); !r) result = r;
    }
    detach_unused(name);
    bool had_fq = inj.net.delay_ns > 0;
    for (auto d = inj.devices.rbegin(); d != inj.devices.rend(); ++d) {
        auto r = release(*d, had_fq);
        if (!r) result = r;
    }
    free_slots_.push_back(inj.slot);
    log("ended injection " + name);
    injections_.erase(it);
    (void)journal_.compact();
    return result;
}

json Agent::list() {
    json out = json::array();
    uint64_t now = mono_ns();
    for (const auto& [name, inj] : injections_) {
        auto c = obj_->counters(inj.slot);
        auto sc = sock_ && inj.sock.any() ? sock_->counters(inj.slot) : Result<tardy_sock_counters>(tardy_sock_counters{});
        auto fc = file_ && inj.sock.any_file() ? file_->counters(inj.slot)
                                               : Result<tardy_sock_counters>(tardy_sock_counters{});
        auto stc = stall_ && !inj.stalls.empty() ? stall_->counters(inj.slot)
                                                 : Result<tardy_stall_counters>(tardy_stall_counters{});
        json devs = json::array();
        for (const auto& k : inj.devices) {
            auto d = devices_.find(k);
            if (d != devices_.end()) devs.push_back(d->second.ifname);
        }
        out.push_back({{"name", name},
                       {"cgroup", inj.cg.rel},
                       {"cgroup_id", inj.cg.id},
                       {"net", inj.net},
                       {"sock", inj.sock},
                       {"stalls", inj.stalls},
                       {"faults", [&] {
                            std::string out;
                            for (const auto& part : {describe(inj.net), describe(inj.sock), describe(inj.stalls)})
                                if (!part.empty()) out += (out.empty() ? "" : "; ") + part;
                            return out;
                        }()},
                       {"left_ns", inj.expires_ns > now ? inj.expires_ns - now : 0},
                       {"devices", devs},
                       {"counters",
                        {{"matched", c ? c->matched : 0},
                         {"delayed", c ? c->delayed : 0},
                         {"dropped", c ? c->dropped : 0},
                         {"bytes", c ? c->bytes : 0},
                         {"calls", (sc ? sc->seen : 0) + (stc ? stc->seen : 0) + (fc ? fc->seen : 0)},
                         {"failed", (sc ? sc->failed : 0) + (fc ? fc->failed : 0)},
                         {"stalled", stc ? stc->stalled : 0}}}});
    }
    return {{"ok", true}, {"injections", out}, {"agent_pid", getpid()}};
}

json Agent::stop(const json& req) {
    std::vector<std::string> names;
    if (req.value("all", false)) {
        for (const auto& [n, i] : injections_) names.push_back(n);
    } else {
        std::string n = req.value("name", std::string());
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
    return {{"ok", true}, {"stopped", names}};
}

json Agent::handle(const json& req) {
    last_activity_ns = mono_ns();
    std::string op = req.value("op", std::string());
    try {
        if (op == "inject") return inject(req);
        if (op == "list") return list();
        if (op == "stop") return stop(req);
        if (op == "ping") return {{"ok", true}, {"pid", getpid()}};
    } catch (const json::exception& e) {
        return fail(Error::other(std::string("malformed request: ") + e.what()));
    }
    return fail(Error::other("unknown request '" + op + "'"));
}

void Agent::tick() {
    uint64_t now = mono_ns();
    __atomic_store_n(&obj_->control()->lease_deadline_ns, now + kLeaseNs, __ATOMIC_SEQ_CST);
    std::vector<std::string> expired;
    for (const auto& [n, inj] : injections_)
        if (now >= inj.expires_ns) expired.push_back(n);
    for (const auto& n : expired) {
        log("injection " + n + " reached its deadline");
        (void)end(n);
        last_activity_ns = now;
    }
}

void Agent::end_all() {
    std::vector<std::string> names;
    for (const auto& [n, i] : injections_) names.push_back(n);
    for (const auto& n : names) (void)end(n);
}

// Undo what a previous agent left behind (it died without cleaning up).
void recover_journal(const Paths& p) {
    Journal j(p.journal());
    UndoSummary s = undo_all(j);
    for (const auto& d : s.undone) log("journal: " + d);
    for (const auto& e : s.problems) log("journal: " + e);
    if (s.set_aside) log("journal: set aside " + std::to_string(s.set_aside) + " unreadable entries in " + s.set_aside_path);
}

// The agent's log is its stderr (spawn_agent points it at agent.log): capped by moving it to
// agent.log.1 once it passes kLogCap, so a long-lived agent cannot fill the disk.
constexpr off_t kLogCap = 4 << 20;
void cap_log(const Paths& p) {
    struct stat st{}, log_st{};
    if (fstat(2, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < kLogCap) return;
    if (stat(p.log().c_str(), &log_st) != 0 || log_st.st_ino != st.st_ino || log_st.st_dev != st.st_dev) return;
    if (rename(p.log().c_str(), (p.log() + ".1").c_str()) != 0) return;
    int fd = open(p.log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    log("log moved to " + p.log() + ".1 at " + std::to_string(st.st_size) + " bytes");
}

// Tells the process that started us (spawn_agent) how the start went: "ready" or
// "error user|system MESSAGE", one line, then closes.
class StartStatus {
public:
    explicit StartStatus(int fd) : fd_(fd) {}
    ~StartStatus() { close_fd(); }
    void ready() { say("ready"); }
    int fail(const Error& e) {
        log(e.message);
        say(std::string("error ") + (e.is_user() ? "user " : "system ") + e.message);
        return e.is_user() ? 2 : 1;
    }

private:
    void say(const std::string& line) {
        if (fd_ < 0) return;
        std::string l = line + "\n";
        (void)!write(fd_, l.data(), l.size());
        close_fd();
    }
    void close_fd() {
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }
    int fd_;
};

// What the agent made in the file system, removed on every way out.
struct RunFiles {
    const Paths& p;
    bool pins = false, socket = false, pid = false;
    ~RunFiles() {
        if (pins) {
            unlink(p.control_pin().c_str());
            unlink(p.stalled_pin().c_str());
            rmdir(p.bpffs_dir.c_str());
        }
        if (socket) unlink(p.socket().c_str());
        if (pid) unlink(p.pid_file().c_str());
    }
};

// Resumes what an earlier agent left stopped and recorded: before anything else.
void resume_left_stopped(const Paths& p) {
    auto m = open_stalled_map(p.stalled_pin());
    if (!m) return;
    if (int n = resume_recorded(m->fd.get()); n > 0)
        log("resumed " + std::to_string(n) + " process(es) an earlier agent left stopped");
}

}  // namespace

int run_agent(const AgentOptions& o) {
    const Paths& p = o.paths;
    StartStatus status(o.status_fd);
    if (auto v = validate_paths(p); !v) return status.fail(v.error());
    if (auto r = ensure_dir(p.run_dir); !r) return status.fail(r.error());
    auto lock = RunLock::acquire(p.lock_file());
    if (!lock) {
        if (lock.error().err == EWOULDBLOCK)
            return status.fail(Error::other("another agent (or `tardy kill`) holds " + p.lock_file()));
        return status.fail(lock.error());
    }
    // Released last, after every file below is gone: the next agent finds a clean slate.
    struct LockGuard {
        RunLock& lock;
        const std::string& path;
        ~LockGuard() { lock.remove_and_release(path); }
    } lock_guard{*lock, p.lock_file()};
    resume_left_stopped(p);
    recover_journal(p);
    if (auto r = ensure_bpffs_dir(p.bpffs_dir); !r) return status.fail(r.error());
    RunFiles files{p};
    files.pins = true;
    auto obj = TcObject::load({p.bpffs_dir, o.rng_seed});
    if (!obj) return status.fail(obj.error());
    Agent agent(o, std::move(*obj));

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    Fd sfd(signalfd(-1, &mask, SFD_CLOEXEC));
    Fd tfd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
    itimerspec its{{0, 100'000'000}, {0, 100'000'000}};  // 100 ms: expiry resolution
    timerfd_settime(tfd.get(), 0, &its, nullptr);
    auto server = Server::listen(p.socket(), [&](std::string_view line) {
        return handle_line(line, [&](const json& req) { return agent.handle(req); });
    });
    if (!server) return status.fail(server.error());
    files.socket = true;
    FILE* pf = std::fopen(p.pid_file().c_str(), "we");
    if (pf) {
        std::fprintf(pf, "%d\n", getpid());
        std::fclose(pf);
        files.pid = true;
    }
    agent.tick();
    // Armed last, after the lease is set and everything that can fail has: a fresh control
    // map is zeroed, i.e. disarmed. `tardy kill` removes the pin, so a new agent never
    // inherits a pulled switch; starting one is the explicit act of re-arming.
    agent.arm();
    log("ready on " + p.socket() + (o.exit_when_idle ? " (exits when idle)" : ""));
    status.ready();

    int code = 0;
    unsigned ticks = 0;
    std::vector<pollfd> fds;
    for (bool running = true; running;) {
        fds = {{sfd.get(), POLLIN, 0},
               {tfd.get(), POLLIN, 0},
               {agent.stall_events_fd(), POLLIN, 0},
               {agent.resume_timer_fd(), POLLIN, 0}};
        const size_t own = fds.size();
        (*server)->add_pollfds(fds);
        if (poll(fds.data(), fds.size(), (*server)->timeout_ms(mono_ns())) < 0) {
            if (errno == EINTR) continue;
            code = 1;
            break;
        }
        // Resumes first: a stalled process must not wait for anything else.
        if (fds[2].revents) agent.on_stall_events();
        if (fds[3].revents) agent.on_resume_timer();
        if (fds[0].revents) {
            signalfd_siginfo si{};
            (void)!read(sfd.get(), &si, sizeof si);
            log("signal " + std::to_string(si.ssi_signo) + ": ending every injection");
            running = false;
        }
        if (fds[1].revents) {
            uint64_t n;
            (void)!read(tfd.get(), &n, sizeof n);
            agent.tick();
            if (++ticks % 100 == 0) cap_log(p);
            if (o.exit_when_idle && agent.idle() && mono_ns() - agent.last_activity_ns > 2'000'000'000ULL) {
                log("no injection left; leaving");
                running = false;
            }
        }
        // Clients last, and never blocking: see server.hpp.
        (*server)->service(fds.data() + own, fds.size() - own);
        (*server)->expire(mono_ns());
    }
    agent.end_all();
    resume_left_stopped(p);  // the pin may hold processes of an earlier agent too
    return code;
}

}  // namespace tardy
