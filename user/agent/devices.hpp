// SPDX-License-Identifier: Apache-2.0
// The network devices the TC program is attached to, shared by the injections that use
// them: the attachment (TCX link or journaled clsact filter) and, for delays, fq as root
// qdisc (the replaced one journaled and put back when the last delay ends).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "agent/backend.hpp"
#include "loader/tc_object.hpp"
#include "sys/fd.hpp"
#include "sys/journal.hpp"
#include "sys/offload.hpp"

namespace tardy {

class DeviceManager {
public:
    DeviceManager(TcObject& obj, Journal& journal) : obj_(obj), journal_(journal) {}
    // need_fq: a delay; the root qdisc becomes fq. A root qdisc that someone configured (not
    // the kernel's default) is refused unless force; *replaced then names what fq replaced.
    Result<void> acquire(const DeviceKey& k, int nsfd, const std::string& ifname, bool need_fq, bool force = false,
                         std::string* replaced = nullptr);
    // When the last delay on a device ends, packets it already delayed may still wait in fq:
    // replacing the qdisc then would drop them (a loss the experiment never asked for, at its
    // end). The old root qdisc is put back once fq's queue is empty instead (tick() checks),
    // or after kDrainCapNs at most; a delay arriving meanwhile keeps fq.
    Result<void> release(const DeviceKey& k, bool had_fq);
    void tick(uint64_t now_ns);
    bool draining() const;
    // Restores every qdisc still draining, now (the agent leaving).
    void flush();
    // fq's horizon (10 s by default) bounds how far ahead a packet can be queued.
    static constexpr uint64_t kDrainCapNs = 11'000'000'000ULL;
    // Ingress delay on a device: the namespace's ifb (sys/ifb.hpp) and the TC ingress program
    // as a clsact filter, both journaled; shared by the injections that delay there.
    Result<void> acquire_ingress(const DeviceKey& k, int nsfd, const std::string& ifname);
    Result<void> release_ingress(const DeviceKey& k);
    // --corrupt on a device acquired for egress: its checksum offload off while any injection
    // corrupts there, when it is a veth (sys/offload.hpp); journaled, and on again after.
    Result<void> acquire_csum(const DeviceKey& k);
    Result<void> release_csum(const DeviceKey& k);
    std::string ifname(const DeviceKey& k) const;

private:
    struct Device {
        std::string ifname;
        Fd nsfd;
        std::optional<TcAttachment> attachment;
        uint64_t attach_jid = 0;  // journal entry of a clsact filter, 0 for TCX
        int refs = 0;
        int fq_refs = 0;
        uint64_t qdisc_jid = 0;   // journal entry of the replaced root qdisc, 0 when fq was there
        uint64_t drain_until_ns = 0;  // no delay left, fq still queues packets: restore by then
        std::optional<TcAttachment> in_attachment;  // the ingress delay filter
        uint64_t in_attach_jid = 0;
        int in_refs = 0;
        int csum_refs = 0;
        uint64_t csum_jid = 0;  // journal entry of the offload turned off, 0 when nothing was
        TxCsumBits csum_bits;
        bool unused() const {
            return refs == 0 && fq_refs == 0 && in_refs == 0 && csum_refs == 0 && drain_until_ns == 0;
        }
    };
    struct Ifb {
        int refs = 0;
        uint64_t jid = 0;
        Fd nsfd;                      // while it drains
        uint64_t drain_until_ns = 0;  // no ingress delay left, its fq still queues: delete by then
    };
    void delete_ifb_now(Ifb& b, int nsfd);
    Result<void> restore_fq(Device& d);
    // Restores now when fq's queue is empty (or cannot be read), else starts the drain.
    Result<void> restore_fq_when_drained(const DeviceKey& k, Device& d);
    void end_drain(Device& d);  // restores the root qdisc, then detaches when unreferenced
    Result<void> detach(Device& d);
    TcAttachment::BeforeFilter journaled(const char* kind, const DeviceKey& k, const std::string& ifname,
                                         uint64_t* jid_out);
    Result<void> take_ifb(uint64_t netns, int nsfd);
    void drop_ifb(uint64_t netns, int nsfd);

    TcObject& obj_;
    Journal& journal_;
    std::map<DeviceKey, Device> devices_;
    std::map<uint64_t, Ifb> ifbs_;  // by network namespace
};

}  // namespace tardy
