// SPDX-License-Identifier: Apache-2.0
// Ending a delay without dropping what it delayed: fq on a device, or the ifb's fq for an
// ingress delay, may still hold packets when the last delay there ends; the root qdisc is
// put back (the ifb deleted) once the queue is empty. docs/design.md, "Ending a delay".
#include <fcntl.h>

#include <optional>

#include "agent/devices.hpp"
#include "agent/log.hpp"
#include "sys/ifb.hpp"
#include "sys/qdisc.hpp"

namespace tardy {

namespace {

// Packets in the device's root qdisc, or nullopt when that cannot be read.
std::optional<uint32_t> queued(int nsfd, int ifindex) {
    uint32_t n = 0;
    auto r = in_netns(nsfd, [&]() -> Result<void> {
        auto q = root_qdisc_qlen(ifindex);
        if (!q) return q.error();
        n = *q;
        return ok();
    });
    return r ? std::optional<uint32_t>(n) : std::nullopt;
}

}  // namespace

Result<void> DeviceManager::restore_fq_when_drained(const DeviceKey& k, Device& d) {
    if (!d.qdisc_jid) return ok();
    auto qlen = queued(d.nsfd.get(), k.ifindex);
    if (!qlen || *qlen == 0) return restore_fq(d);
    d.drain_until_ns = mono_ns() + kDrainCapNs;
    log("no delay left on " + d.ifname + "; its root qdisc is put back once the " + std::to_string(*qlen) +
        " packets fq still holds have left");
    return ok();
}

void DeviceManager::tick(uint64_t now_ns) {
    for (auto it = devices_.begin(); it != devices_.end();) {
        Device& d = it->second;
        if (d.drain_until_ns) {
            auto qlen = queued(d.nsfd.get(), it->first.ifindex);
            if (!qlen || *qlen == 0 || now_ns >= d.drain_until_ns) {
                if (qlen && *qlen)
                    log("fq on " + d.ifname + " still holds " + std::to_string(*qlen) + " packets after " +
                        std::to_string(kDrainCapNs / 1'000'000'000) + " s: they are dropped");
                end_drain(d);
            }
        }
        if (d.unused()) {
            it = devices_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = ifbs_.begin(); it != ifbs_.end();) {
        Ifb& b = it->second;
        if (!b.drain_until_ns) {
            ++it;
            continue;
        }
        auto qlen = queued(b.nsfd.get(), TARDY_IFB_IFINDEX);
        if (qlen && *qlen > 0 && now_ns < b.drain_until_ns) {
            ++it;
            continue;
        }
        delete_ifb_now(b, b.nsfd.get());
        it = ifbs_.erase(it);
    }
}

bool DeviceManager::draining() const {
    for (const auto& [k, d] : devices_)
        if (d.drain_until_ns) return true;
    for (const auto& [n, b] : ifbs_)
        if (b.drain_until_ns) return true;
    return false;
}

void DeviceManager::flush() {
    for (auto& [k, d] : devices_)
        if (d.drain_until_ns) end_drain(d);
    std::erase_if(devices_, [](const auto& kv) { return kv.second.unused(); });
    for (auto& [n, b] : ifbs_)
        if (b.drain_until_ns) delete_ifb_now(b, b.nsfd.get());
    std::erase_if(ifbs_, [](const auto& kv) { return kv.second.drain_until_ns != 0; });
}

void DeviceManager::end_drain(Device& d) {
    d.drain_until_ns = 0;
    (void)restore_fq(d);
    if (d.refs == 0) (void)detach(d);
}

// Like fq on a device (release()), the ifb's fq may still hold packets the ingress delay
// stamped when the last such delay ends; deleting the ifb would drop them. It goes once its
// queue is empty (tick()), or after kDrainCapNs.
void DeviceManager::drop_ifb(uint64_t netns, int nsfd) {
    auto it = ifbs_.find(netns);
    if (it == ifbs_.end() || --it->second.refs > 0) return;
    auto qlen = queued(nsfd, TARDY_IFB_IFINDEX);
    if (qlen && *qlen > 0) {
        it->second.nsfd = Fd(fcntl(nsfd, F_DUPFD_CLOEXEC, 0));
        if (it->second.nsfd.valid()) {
            it->second.drain_until_ns = mono_ns() + kDrainCapNs;
            log(std::string("no ingress delay left; ") + TARDY_IFB_NAME + " is deleted once the " +
                std::to_string(*qlen) + " packets its fq still holds have left");
            return;
        }
    }
    delete_ifb_now(it->second, nsfd);
    ifbs_.erase(it);
}

void DeviceManager::delete_ifb_now(Ifb& b, int nsfd) {
    auto r = in_netns(nsfd, [&]() -> Result<void> {
        auto d = delete_ifb();
        return d ? ok() : Result<void>(d.error());
    });
    if (r) {
        (void)journal_.done(b.jid);
        log(std::string("deleted ") + TARDY_IFB_NAME);
    } else {
        log(std::string("delete ") + TARDY_IFB_NAME + ": " + r.error().message + " (left in the journal for kill)");
    }
}

}  // namespace tardy
