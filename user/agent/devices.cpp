// SPDX-License-Identifier: Apache-2.0
#include "agent/devices.hpp"

#include <fcntl.h>

#include <cstdio>
#include <optional>

#include "agent/log.hpp"
#include "sys/ifb.hpp"
#include "sys/qdisc.hpp"

namespace tardy {

std::string DeviceManager::ifname(const DeviceKey& k) const {
    auto it = devices_.find(k);
    return it == devices_.end() ? std::string() : it->second.ifname;
}

// Journals a clsact filter (kind "clsact" egress, "clsact-in" ingress) once its hook exists
// and before it is added: data handle:priority:created_hook (sys/journal_undo.cpp).
TcAttachment::BeforeFilter DeviceManager::journaled(const char* kind, const DeviceKey& k, const std::string& ifname,
                                                    uint64_t* jid_out) {
    return [this, kind, k, ifname, jid_out](uint32_t h, uint32_t prio, bool created) -> Result<void> {
        char data[64];
        std::snprintf(data, sizeof data, "%x:%x:%d", h, prio, created ? 1 : 0);
        auto jid = journal_.record({0, kind, k.netns, k.ifindex, ifname, data});
        if (!jid) return jid.error();
        *jid_out = *jid;
        return ok();
    };
}

Result<void> DeviceManager::acquire(const DeviceKey& k, int nsfd, const std::string& ifname, bool need_fq, bool force,
                                   std::string* replaced) {
    Device& d = devices_[k];
    if (!d.nsfd.valid()) {
        d.nsfd = Fd(fcntl(nsfd, F_DUPFD_CLOEXEC, 0));
        d.ifname = ifname;
    }
    bool installed_fq = false;
    if (need_fq) d.drain_until_ns = 0;  // a draining fq (release()) serves this delay: kept
    if (need_fq && d.fq_refs == 0) {
        auto r = in_netns(d.nsfd.get(), [&]() -> Result<void> {
            auto snap = root_qdisc(k.ifindex);
            if (!snap) return snap.error();
            if (snap->kind == "fq") return ok();  // already enforcing departure times
            if (!snap->is_default && !force)
                return Error::user("the root qdisc of " + ifname + " is " + describe(*snap) +
                                   ", not the kernel's default: a delay replaces it with fq, and everyone on " +
                                   ifname + " (the control cohort too) loses what it does until the delay ends; "
                                   "add --force to replace it anyway, or inject loss only");
            TARDY_TRY(check_restorable(*snap));
            if (!snap->is_default && replaced) *replaced = describe(*snap) + " on " + ifname;
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
            if (d.unused()) devices_.erase(k);
            return r;
        }
        if (installed_fq) log("installed fq as root qdisc of " + ifname + (replaced && !replaced->empty() ? " (replacing " + *replaced + ", --force)" : ""));
    }
    // Delays need a clsact filter (bpf/lib/steal.bpf.h); a device attached by a TCX link for
    // loss moves to clsact when a delay arrives: the filter first, then the link goes, so
    // no packet passes unseen (one may be seen twice).
    bool need_clsact = need_fq && d.attachment && d.attachment->kind() == TcAttachment::Kind::Tcx;
    // A draining device (release()) still has its clsact filter: it serves again.
    if ((d.refs == 0 && !d.attachment) || need_clsact) {
        std::optional<TcAttachment> old;
        if (need_clsact) old.emplace(std::move(*d.attachment));
        auto mode = need_fq ? TcAttachment::Mode::Clsact : TcAttachment::Mode::Auto;
        auto r = in_netns(d.nsfd.get(), [&]() -> Result<void> {
            auto a = TcAttachment::attach_egress(
                obj_, k.ifindex, mode, journaled("clsact", k, ifname, &d.attach_jid));
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
            if (d.unused()) devices_.erase(k);
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

Result<void> DeviceManager::restore_fq(Device& d) {
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

// Removing a clsact filter whose hook tardy created deletes the clsact qdisc, and grafting an
// ingress/clsact qdisc deactivates the device (qdisc_graft() -> dev_deactivate()), which
// resets every qdisc on it: fq drops what it holds. So a device that drains keeps its
// attachment (the program passes everything once the rules are gone) until fq is empty.
Result<void> DeviceManager::detach(Device& d) {
    if (!d.attachment) return ok();
    auto r = d.attachment->kind() == TcAttachment::Kind::Tcx
                 ? d.attachment->detach()
                 : in_netns(d.nsfd.get(), [&] { return d.attachment->detach(); });
    if (!r) {
        log("detach from " + d.ifname + ": " + r.error().message);
        return r;
    }
    if (d.attach_jid) (void)journal_.done(std::exchange(d.attach_jid, 0));
    d.attachment.reset();
    log("detached egress program from " + d.ifname);
    return ok();
}

Result<void> DeviceManager::release(const DeviceKey& k, bool had_fq) {
    auto it = devices_.find(k);
    if (it == devices_.end()) return ok();
    Device& d = it->second;
    Result<void> result = ok();
    if (had_fq && --d.fq_refs == 0) {
        if (auto r = restore_fq_when_drained(k, d); !r) result = r;
    }
    if (d.refs > 0 && --d.refs == 0 && !d.drain_until_ns) {
        if (auto r = detach(d); !r) result = r;
    }
    if (d.unused()) devices_.erase(it);
    return result;
}

Result<void> DeviceManager::take_ifb(uint64_t netns, int nsfd) {
    Ifb& b = ifbs_[netns];
    if (b.refs > 0 || b.drain_until_ns) {  // a draining ifb (drop_ifb()) serves again
        b.refs++;
        b.drain_until_ns = 0;
        b.nsfd = Fd();
        return ok();
    }
    // Journaled before it exists: a kill after a crash here finds it (or nothing) to delete.
    auto jid = journal_.record({0, "ifb", netns, TARDY_IFB_IFINDEX, TARDY_IFB_NAME, "ifb"});
    if (!jid) {
        ifbs_.erase(netns);
        return jid.error();
    }
    bool created = false;
    auto r = in_netns(nsfd, [&] { return create_ifb(&created); });
    if (!r) {
        (void)journal_.done(*jid);
        ifbs_.erase(netns);
        return r;
    }
    log(std::string(created ? "created " : "took over ") + TARDY_IFB_NAME + " (ifindex " +
        std::to_string(TARDY_IFB_IFINDEX) + ", fq) for ingress delay");
    b.jid = *jid;
    b.refs = 1;
    return ok();
}

Result<void> DeviceManager::acquire_ingress(const DeviceKey& k, int nsfd, const std::string& ifname) {
    Device& d = devices_[k];
    if (!d.nsfd.valid()) {
        d.nsfd = Fd(fcntl(nsfd, F_DUPFD_CLOEXEC, 0));
        d.ifname = ifname;
    }
    if (d.in_refs == 0) {
        // The ifb first: the filter redirects to it.
        if (auto r = take_ifb(k.netns, d.nsfd.get()); !r) {
            if (d.unused()) devices_.erase(k);
            return r;
        }
        auto r = in_netns(d.nsfd.get(), [&]() -> Result<void> {
            auto a = TcAttachment::attach_ingress_delay(
                obj_, k.ifindex, journaled("clsact-in", k, ifname, &d.in_attach_jid));
            if (!a) {
                if (d.in_attach_jid) (void)journal_.done(std::exchange(d.in_attach_jid, 0));
                return a.error();
            }
            d.in_attachment.emplace(std::move(*a));
            return ok();
        });
        if (!r) {
            drop_ifb(k.netns, d.nsfd.get());
            if (d.unused()) devices_.erase(k);
            return r;
        }
        log("attached ingress delay program to " + ifname + " (clsact filter)");
    }
    d.in_refs++;
    return ok();
}

Result<void> DeviceManager::release_ingress(const DeviceKey& k) {
    auto it = devices_.find(k);
    if (it == devices_.end() || it->second.in_refs == 0) return ok();
    Device& d = it->second;
    if (--d.in_refs == 0) {
        if (d.in_attachment) {
            auto r = in_netns(d.nsfd.get(), [&] { return d.in_attachment->detach(); });
            if (r && d.in_attach_jid) (void)journal_.done(std::exchange(d.in_attach_jid, 0));
            if (!r) {
                // The filter stays, so the ifb it redirects to stays too (both journaled for
                // kill): deleting the ifb under a live filter would turn the delay into a loss.
                log("detach ingress delay from " + d.ifname + ": " + r.error().message + " (left for kill)");
                return r;
            }
            log("detached ingress delay program from " + d.ifname);
            d.in_attachment.reset();
        }
        // After the filter: no packet is redirected to a device that is gone.
        drop_ifb(k.netns, d.nsfd.get());
        if (d.unused()) devices_.erase(it);
    }
    return ok();
}

Result<void> DeviceManager::acquire_csum(const DeviceKey& k) {
    auto it = devices_.find(k);
    if (it == devices_.end()) return Error::other("acquire_csum before acquire");
    Device& d = it->second;
    if (d.csum_refs++ > 0) return ok();
    auto r = in_netns(d.nsfd.get(), [&]() -> Result<void> {
        auto bits = tx_csum_to_turn_off(d.ifname);
        if (!bits) return bits.error();
        if (bits->empty()) return ok();  // it finishes checksums itself, or they are off already
        auto jid = journal_.record({0, "txcsum", k.netns, k.ifindex, d.ifname, bits->encode()});
        if (!jid) return jid.error();
        if (auto s = set_tx_csum(d.ifname, *bits, false); !s) {
            (void)set_tx_csum(d.ifname, *bits, true);  // whatever part of it happened
            (void)journal_.done(*jid);
            return s.error();
        }
        d.csum_jid = *jid;
        d.csum_bits = *bits;
        return ok();
    });
    if (!r) {
        d.csum_refs--;
        return Error::other("--corrupt needs the checksum offload of " + d.ifname + " off: " + r.error().message);
    }
    if (d.csum_jid) log("turned the checksum offload of " + d.ifname + " off (--corrupt)");
    return ok();
}

Result<void> DeviceManager::release_csum(const DeviceKey& k) {
    auto it = devices_.find(k);
    if (it == devices_.end() || it->second.csum_refs == 0) return ok();
    Device& d = it->second;
    if (--d.csum_refs > 0 || !d.csum_jid) return ok();
    auto r = in_netns(d.nsfd.get(), [&] { return set_tx_csum(d.ifname, d.csum_bits, true); });
    if (!r) {  // stays journaled: kill, or the next agent, tries again
        log("turn the checksum offload of " + d.ifname + " back on: " + r.error().message);
        return r;
    }
    (void)journal_.done(std::exchange(d.csum_jid, 0));
    log("turned the checksum offload of " + d.ifname + " back on");
    if (d.unused()) devices_.erase(it);
    return ok();
}

}  // namespace tardy
