// SPDX-License-Identifier: Apache-2.0
#include "agent/backends.hpp"

#include <cerrno>
#include <algorithm>

#include "agent/log.hpp"
#include "model/net_shape.hpp"
#include "sys/qdisc.hpp"

namespace tardy {

// ---- packets (TC) ----

Result<void> TcBackend::take_devices(Injection& inj) {
    struct Plan {
        DeviceKey key;
        int nsfd;
        std::string ifname;
    };
    std::vector<Fd> nsfds;
    std::vector<Plan> plan;
    const auto& want = inj.want_devices;
    for (const auto& ref : inj.netns) {
        auto fd = open_netns(ref);
        if (!fd) return fd.error();
        std::vector<NetDevice> devs;
        TARDY_TRY(in_netns(fd->get(), [&] {
            devs = list_devices();
            return ok();
        }));
        for (const auto& w : want) {
            if (std::none_of(devs.begin(), devs.end(), [&](const NetDevice& d) { return d.name == w; })) {
                std::string have;
                for (const auto& d : devs) have += (have.empty() ? "" : ", ") + d.name;
                return Error::user("--device " + w + ": no such device in the target's network namespace (" + ref.path +
                                   " has: " + have + ")");
            }
        }
        for (const auto& d : devs) {
            bool chosen = want.empty() ? !d.loopback : std::find(want.begin(), want.end(), d.name) != want.end();
            if (chosen) plan.push_back({{ref.ino, d.ifindex}, fd->get(), d.name});
        }
        nsfds.push_back(std::move(*fd));
    }
    if (plan.empty())
        return Error::user("the target's network namespace has no device but loopback; choose one with --device lo");

    bool need_fq = inj.net.egress_fq();
    if (need_fq || inj.net.ingress_delay()) {
        bool available = false;
        TARDY_TRY(in_netns(plan.front().nsfd, [&]() -> Result<void> {
            auto a = qdisc_kind_available("fq");
            if (!a) return a.error();
            available = *a;
            return ok();
        }));
        if (!available)
            return Error::user("--delay and --rate need the fq qdisc to enforce departure times, and this kernel "
                               "has none (sch_fq missing; see `tardy doctor`); --loss works without it");
    }
    for (const auto& p : plan) {
        // An ingress delay needs the egress program too: it learns the ICMP echo requests
        // the target sends, whose replies have no socket to find (bpf/lib/echo.bpf.h).
        if (inj.net.egress() || inj.net.ingress_delay()) {
            std::string replaced;
            if (auto r = devices_.acquire(p.key, p.nsfd, p.ifname, need_fq, inj.force, &replaced); !r) {
                release_devices(inj);
                return r;
            }
            if (!replaced.empty()) inj.replaced_qdiscs.push_back(replaced);
            inj.devices.push_back(p.key);
            if (inj.net.corrupt_ppm) {
                if (auto r = devices_.acquire_csum(p.key); !r) {
                    release_devices(inj);
                    return r;
                }
                inj.csum_devices.push_back(p.key);
            }
        }
        if (inj.net.ingress_delay()) {
            if (auto r = devices_.acquire_ingress(p.key, p.nsfd, p.ifname); !r) {
                release_devices(inj);
                return r;
            }
            inj.in_devices.push_back(p.key);
        }
        inj.device_names.push_back(p.ifname);
    }
    return ok();
}

void TcBackend::release_devices(Injection& inj) {
    bool had_fq = inj.net.egress_fq();
    for (auto d = inj.csum_devices.rbegin(); d != inj.csum_devices.rend(); ++d) {
        if (auto r = devices_.release_csum(*d); !r) log("release " + devices_.ifname(*d) + ": " + r.error().message);
    }
    for (auto d = inj.in_devices.rbegin(); d != inj.in_devices.rend(); ++d) {
        if (auto r = devices_.release_ingress(*d); !r) log("release " + devices_.ifname(*d) + ": " + r.error().message);
    }
    for (auto d = inj.devices.rbegin(); d != inj.devices.rend(); ++d) {
        if (auto r = devices_.release(*d, had_fq); !r) log("release " + devices_.ifname(*d) + ": " + r.error().message);
    }
    inj.csum_devices.clear();
    inj.in_devices.clear();
    inj.devices.clear();
    inj.replaced_qdiscs.clear();
}

Result<void> TcBackend::write_set(uint64_t cgid) {
    auto it = sets_.find(cgid);
    if (it == sets_.end() || it->second.empty()) {
        sets_.erase(cgid);
        return env_.tc.delete_rule(cgid);
    }
    tardy_rule_set set{};
    set.n = static_cast<uint32_t>(it->second.size());
    for (size_t i = 0; i < it->second.size() && i < TARDY_RULES_PER_CGROUP; i++) {
        set.slots[i] = it->second[i].slot;
        set.parse |= it->second[i].parse ? 1u : 0u;
    }
    return env_.tc.put_rules(cgid, set);
}

void TcBackend::forget(const Injection& inj) {
    auto it = sets_.find(inj.cg.id);
    if (it == sets_.end()) return;
    auto& s = it->second;
    s.erase(std::remove_if(s.begin(), s.end(), [&](const SetEntry& e) { return e.slot == inj.slot; }), s.end());
}

Result<void> TcBackend::link_ingress() {
    std::map<uint64_t, std::string> with;  // cgroups with an ingress rule
    for (const auto& [cgid, entries] : sets_)
        if (std::any_of(entries.begin(), entries.end(), [](const SetEntry& e) { return e.ingress; }))
            with[cgid] = cg_paths_[cgid];
    auto want = topmost_cgroups(with);
    // New links first: a moment of a packet seen twice, never one of a rule not enforced.
    for (const auto& [cgid, path] : want) {
        if (ingress_links_.contains(cgid)) continue;
        auto l = env_.tc.attach_ingress(path);
        if (!l) return l.error();
        ingress_links_.emplace(cgid, std::move(*l));
    }
    std::erase_if(ingress_links_, [&](const auto& kv) { return !want.contains(kv.first); });
    std::erase_if(cg_paths_, [&](const auto& kv) { return !sets_.contains(kv.first); });
    return ok();
}

Result<void> TcBackend::add(Injection& inj) {
    if (auto it = sets_.find(inj.cg.id); it != sets_.end() && it->second.size() >= TARDY_RULES_PER_CGROUP)
        return Error::user("cgroup " + inj.cg.rel + " already has " + std::to_string(TARDY_RULES_PER_CGROUP) +
                           " injections with packet faults; stop one first");
    auto filter = encode(inj.filter);
    if (!filter) return filter.error();
    // Ingress loss acts on the target's sockets at a cgroup hook: it needs no device; an
    // ingress delay needs the devices' TC ingress and an ifb.
    if (inj.net.egress() || inj.net.ingress_delay()) TARDY_TRY(take_devices(inj));
    // A seed per injection: two injections with --flows pick their flows independently. With
    // --rng-seed (tests) the sequence is reproducible.
    inj.flow_seed = static_cast<uint32_t>((env_.rng_seed ? env_.rng_seed : mono_ns()) * 0x9E3779B97F4A7C15ull >> 32) +
                    next_seed_++ * 0x85EBCA6Bu;
    tardy_rule rule = make_rule(inj, *filter);
    // The rule by its slot first (TcObject keeps it), then the set that names the slot and
    // carries a copy of it, in one update.
    auto r = env_.tc.reset_counters(inj.slot);
    if (r) r = env_.tc.put_slot_rule(rule);
    if (r) {
        sets_[inj.cg.id].push_back(
            // An ingress delay reads headers at egress too: the ICMP echo requests the target
            // sends, whose replies it delays (bpf/lib/echo.bpf.h).
            {inj.slot,
             rule.filtered || rule.flows_ppm || (rule.scope & TARDY_SCOPE_SETUP) || rule.dns_rcode ||
                 inj.net.ingress_delay(),
             inj.net.ingress()});
        cg_paths_[inj.cg.id] = inj.cg.path;
        r = write_set(inj.cg.id);
    }
    if (r && inj.net.ingress()) r = link_ingress();
    if (!r) {
        forget(inj);
        (void)write_set(inj.cg.id);
        (void)link_ingress();
        (void)env_.tc.delete_slot_rule(inj.slot);
        release_devices(inj);
    }
    return r;
}

Result<void> TcBackend::update(const Injection& inj, const Injection& next) {
    // fq is put on the devices when the injection starts, for a delay: it cannot come or go.
    if (next.net.egress_fq() != inj.net.egress_fq() || next.net.ingress_delay() != inj.net.ingress_delay())
        return Error::user(inj.net.paces() ? "a delay or rate can change live but not end (it holds fq on the devices); "
                                             "give it a new value, or stop the injection"
                                           : "a delay or rate cannot be added live (it needs fq on the devices, set up "
                                             "when an injection starts); stop the injection and inject anew with it");
    if (next.net.corrupt_ppm && inj.csum_devices.empty())
        return Error::user("--corrupt cannot be added live (a veth's checksum offload goes off when an injection "
                           "starts with it); stop the injection and inject anew with --corrupt");
    auto filter = encode(inj.filter);
    if (!filter) return filter.error();
    // Same slot: the rule sets that hold it are written again, each swapped whole (RCU); counters untouched.
    TARDY_TRY(env_.tc.put_slot_rule(make_rule(next, *filter)));
    // A DNS fault added live needs the packets' headers read: the set says so.
    if (next.net.dns_rcode && !inj.net.dns_rcode)
        if (auto it = sets_.find(inj.cg.id); it != sets_.end())
            for (auto& e : it->second)
                if (e.slot == inj.slot && !e.parse) {
                    e.parse = true;
                    return write_set(inj.cg.id);
                }
    return ok();
}

Result<void> TcBackend::remove(Injection& inj) {
    forget(inj);
    auto r = write_set(inj.cg.id);
    if (auto l = link_ingress(); !l && r) r = l;
    (void)env_.tc.delete_slot_rule(inj.slot);
    release_devices(inj);
    return r;
}

void TcBackend::count(const Injection& inj, FaultCounters& c) const {
    auto t = env_.tc.counters(inj.slot);
    if (!t) return;
    c.matched += t->matched;
    c.delayed += t->delayed;
    c.dropped += t->dropped;
    c.bytes += t->bytes;
    c.duplicated += t->duplicated;
    c.reordered += t->reordered;
    c.paced += t->paced;
    c.dns += t->dns;
    c.resets += t->resets;
    c.corrupted += t->corrupted;
}

tardy_rule TcBackend::make_rule(const Injection& inj, const tardy_filter& filter) {
    tardy_rule rule{};
    rule.slot = inj.slot;
    rule.loss_ppm = inj.net.loss_ppm;
    rule.delay_ns = inj.net.delay_ns;
    rule.jitter_ns = inj.net.jitter_ns;
    rule.expires_ns = inj.expires_ns;
    rule.flows_ppm = inj.net.flows_ppm;
    rule.flow_seed = inj.flow_seed;
    rule.filtered = inj.filter.empty() ? 0 : 1;
    rule.scope = inj.net.scope;
    rule.dist = inj.net.dist;
    rule.corr_ppm = inj.net.corr_ppm;
    rule.ge_p_ppm = inj.net.ge_p_ppm;
    rule.ge_r_ppm = inj.net.ge_r_ppm;
    rule.ge_bad_loss_ppm = inj.net.ge_bad_loss_ppm;
    rule.ge_good_loss_ppm = inj.net.ge_good_loss_ppm;
    rule.duplicate_ppm = inj.net.duplicate_ppm;
    rule.reorder_ppm = inj.net.reorder_ppm;
    rule.rate_bytes_per_s = inj.net.rate_bytes_per_s;
    rule.dns_rcode = inj.net.dns_rcode;
    rule.dns_ppm = inj.net.dns_ppm;
    rule.reset_ppm = inj.net.reset_ppm;
    rule.corrupt_ppm = inj.net.corrupt_ppm;
    rule.reorder_gap = inj.net.reorder_gap;
    if (auto w = inj.net.dns_name.empty() ? Result<std::string>(std::string()) : dns_wire_name(inj.net.dns_name); w) {
        rule.dns_name_len = static_cast<uint32_t>(w->size());  // checked by the request validator: it fits
        std::copy(w->begin(), w->end(), rule.dns_name);
    }
    rule.filter = filter;
    return rule;
}

// ---- socket calls (cgroup hooks) ----

Result<void> SockBackend::add(Injection& inj) {
    if (!obj_) {
        auto s = SockObject::load(env_.paths.bpffs_dir, env_.rng_seed);
        if (!s) return s.error();
        obj_ = std::move(*s);
    }
    auto rule = encode(inj.sock, inj.filter, inj.slot, inj.expires_ns);
    if (!rule) return rule.error();
    TARDY_TRY(obj_->reset_counters(inj.slot));
    // The rule first, then the links: a call that runs the hooks already finds it.
    TARDY_TRY(obj_->put_rule(inj.cg.id, *rule));
    env_.tc.bump_generation();
    std::vector<uint32_t> ops;
    bool timeouts = false;
    for (const auto& f : inj.sock.faults) {
        ops.push_back(f.op);
        timeouts |= f.op == TARDY_OP_CONNECT && f.err == ETIMEDOUT;
    }
    auto links = obj_->attach(inj.cg.path, ops, timeouts);
    if (!links) {
        (void)obj_->delete_rule(inj.cg.id);
        return links.error();
    }
    inj.links = std::move(*links);
    return ok();
}

Result<void> SockBackend::remove(Injection& inj) {
    inj.links.clear();  // detach first: no call runs the hooks from here on
    if (!obj_) return ok();
    auto r = obj_->delete_rule(inj.cg.id);
    env_.tc.bump_generation();
    return r;
}

// The hooks linked are those of the calls with faults: an update keeps the same calls.
Result<void> SockBackend::update(const Injection& inj, const Injection& next) {
    auto calls = [](const SockFaults& f) {
        std::vector<std::pair<uint32_t, bool>> v;
        for (const auto& x : f.faults) v.emplace_back(x.op, x.op == TARDY_OP_CONNECT && x.err == ETIMEDOUT);
        std::sort(v.begin(), v.end());
        return v;
    };
    if (calls(inj.sock) != calls(next.sock))
        return Error::user("an update changes the rates and errnos of the calls that fail (" + describe(inj.sock) +
                           "), not which calls, nor a timeout's kind; stop the injection and inject anew");
    auto rule = encode(next.sock, inj.filter, inj.slot, next.expires_ns);
    if (!rule) return rule.error();
    TARDY_TRY(obj_->put_rule(inj.cg.id, *rule));
    env_.tc.bump_generation();
    return ok();
}

void SockBackend::count(const Injection& inj, FaultCounters& c) const {
    if (!obj_) return;
    if (auto s = obj_->counters(inj.slot)) {
        c.calls += s->seen;
        c.failed += s->failed;
        c.connects_refused += s->connects_refused;
    }
}

// ---- file calls (BPF LSM) ----

Result<void> FileBackend::add(Injection& inj) {
    if (!obj_) {
        auto f = FileObject::load(env_.paths.bpffs_dir, env_.rng_seed);
        if (!f) return f.error();
        obj_ = std::move(*f);
    }
    auto rule = encode_file(inj.sock, inj.slot, inj.expires_ns);
    if (!rule) return rule.error();
    TARDY_TRY(obj_->reset_counters(inj.slot));
    TARDY_TRY(obj_->put_rule(inj.cg.id, *rule));
    if (auto r = obj_->attach(); !r) {
        (void)obj_->delete_rule(inj.cg.id);
        return r;
    }
    return ok();
}

Result<void> FileBackend::remove(Injection& inj) { return obj_ ? obj_->delete_rule(inj.cg.id) : ok(); }

Result<void> FileBackend::update(const Injection& inj, const Injection& next) {
    auto rule = encode_file(next.sock, inj.slot, next.expires_ns);
    if (!rule) return rule.error();
    return obj_->put_rule(inj.cg.id, *rule);
}

void FileBackend::unused() {
    if (obj_) obj_->detach();
}

void FileBackend::count(const Injection& inj, FaultCounters& c) const {
    if (!obj_) return;
    if (auto s = obj_->counters(inj.slot)) {
        c.calls += s->seen;
        c.failed += s->failed;
    }
}

}  // namespace tardy
