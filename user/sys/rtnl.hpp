// SPDX-License-Identifier: Apache-2.0
// rtnetlink over libmnl for the tc code (qdisc.cpp, tc_filter.cpp): one socket in the
// calling thread's network namespace, requests with extended acks, dumps that survive
// NLM_F_DUMP_INTR, and the tc message helpers both files use.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/gen_stats.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/error.hpp"

namespace tardy::rtnl {

// Dump replies come in skbs of up to 32 KiB; a smaller buffer truncates them (MSG_TRUNC).
inline constexpr size_t kRecvBuf = 64 * 1024;
inline constexpr int kDumpTries = 5;  // a dump racing a change is flagged NLM_F_DUMP_INTR; redo it

// What the kernel said about one request: 0 or a positive errno, and its extack message.
struct Reply {
    int err = 0;
    std::string kmsg;
};

inline std::string handle_str(uint32_t h) {
    char b[24];
    if (TC_H_MIN(h))
        std::snprintf(b, sizeof b, "%x:%x", TC_H_MAJ(h) >> 16, TC_H_MIN(h));
    else
        std::snprintf(b, sizeof b, "%x:", TC_H_MAJ(h) >> 16);
    return b;
}

// "what: strerror (kernel: extack)" plus a hint for the errnos that have an obvious fix.
inline Error nl_error(const std::string& what, const Reply& r) {
    std::string m = what + ": " + std::strerror(r.err);
    if (!r.kmsg.empty()) m += " (kernel: " + r.kmsg + ")";
    if (r.err == EPERM || r.err == EACCES)
        m += "; needs root (CAP_NET_ADMIN in the device's network namespace)";
    return {ErrorKind::System, m, r.err};
}

inline int ack_tlv_cb(const nlattr* a, void* data) {
    if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
        *static_cast<std::string*>(data) = mnl_attr_get_str(a);
    return MNL_CB_OK;
}

// Extended ack TLVs follow the error code and the echoed request, which is only its header
// when NLM_F_CAPPED is set (we ask for that with NETLINK_CAP_ACK; older kernels ignore it).
inline std::string ext_ack_msg(const nlmsghdr* nlh, size_t err_off) {
    std::string msg;
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return msg;
    size_t off = err_off;
    if (nlh->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        off = sizeof(int) + ((nlh->nlmsg_flags & NLM_F_CAPPED) ? sizeof(nlmsghdr) : e->msg.nlmsg_len);
    }
    if (MNL_ALIGN(off) <= mnl_nlmsg_get_payload_len(nlh))
        mnl_attr_parse(nlh, off, ack_tlv_cb, &msg);
    return msg;
}

// One NETLINK_ROUTE socket in the calling thread's network namespace.
class Rtnl {
public:
    Rtnl() = default;
    Rtnl(const Rtnl&) = delete;
    Rtnl& operator=(const Rtnl&) = delete;
    ~Rtnl() {
        if (nl_) mnl_socket_close(nl_);
    }

    Reply open() {
        nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (!nl_) return {errno, {}};
        int one = 1;
        // Best effort: without them errors still arrive, only without the kernel's text.
        setsockopt(mnl_socket_get_fd(nl_), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
        setsockopt(mnl_socket_get_fd(nl_), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
        timeval tv{10, 0};  // the kernel always answers; this only bounds a wedged rtnl_lock
        setsockopt(mnl_socket_get_fd(nl_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) return {errno, {}};
        portid_ = mnl_socket_get_portid(nl_);
        seq_ = static_cast<uint32_t>(time(nullptr));
        return {};
    }

    // Sends one request and reads replies until its ack, error or NLMSG_DONE, passing every
    // other reply to on_msg. *interrupted tells a dump raced a change and may be inconsistent.
    Reply exchange(nlmsghdr* req, const std::function<void(const nlmsghdr*)>& on_msg,
                   bool* interrupted = nullptr) {
        req->nlmsg_seq = ++seq_;
        if (mnl_socket_sendto(nl_, req, req->nlmsg_len) < 0) return {errno, {}};
        if (interrupted) *interrupted = false;
        for (;;) {
            ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
            if (n < 0) return {errno == EAGAIN ? ETIMEDOUT : errno, {}};
            auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data());
            int left = static_cast<int>(n);
            for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
                if (nlh->nlmsg_seq != seq_ || nlh->nlmsg_pid != portid_) continue;  // stale
                if ((nlh->nlmsg_flags & NLM_F_DUMP_INTR) && interrupted) *interrupted = true;
                if (nlh->nlmsg_type == NLMSG_ERROR) {
                    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) return {EBADMSG, {}};
                    auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
                    if (e->error == 0) return {};
                    return {-e->error, ext_ack_msg(nlh, 0)};
                }
                if (nlh->nlmsg_type == NLMSG_DONE) {
                    // A dump that failed part way ends in DONE carrying the negative errno.
                    int e = 0;
                    if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int))
                        std::memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(int));
                    if (e < 0) return {-e, ext_ack_msg(nlh, sizeof(int))};
                    return {};
                }
                if (nlh->nlmsg_type == NLMSG_OVERRUN) return {ENOBUFS, {}};
                if (nlh->nlmsg_type == NLMSG_NOOP) continue;
                on_msg(nlh);
            }
        }
    }

    // Repeats a dump while the kernel flags it as interrupted by a concurrent change.
    Reply dump(const std::function<nlmsghdr*(char*)>& build,
               const std::function<void(const nlmsghdr*)>& on_msg, const std::function<void()>& reset) {
        for (int i = 0;; ++i) {
            std::vector<char> req(MNL_SOCKET_BUFFER_SIZE);
            bool intr = false;
            reset();
            Reply r = exchange(build(req.data()), on_msg, &intr);
            if (r.err || !intr) return r;
            if (i + 1 == kDumpTries) return {EBUSY, "tc dump kept changing under us"};
        }
    }

private:
    mnl_socket* nl_ = nullptr;
    uint32_t portid_ = 0;
    uint32_t seq_ = 0;
    std::vector<char> buf_ = std::vector<char>(kRecvBuf);
};

inline nlmsghdr* put_tc_header(char* buf, uint16_t type, uint16_t flags, int ifindex, uint32_t parent,
                        uint32_t handle) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    auto* tcm = static_cast<tcmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(tcmsg)));
    tcm->tcm_family = AF_UNSPEC;
    tcm->tcm_ifindex = ifindex;
    tcm->tcm_parent = parent;
    tcm->tcm_handle = handle;
    return nlh;
}

// One RTM_NEWQDISC reply, reduced to what we use.
struct QdiscMsg {
    int ifindex = 0;
    uint32_t handle = 0, parent = 0;
    std::string kind;
    std::vector<uint8_t> options;
    bool has_stab = false;      // dumped without its table, so it cannot be replayed
    bool has_rate_est = false;  // TCA_RATE is never dumped at all
    uint32_t qlen = 0;          // packets queued in it and its children (TCA_STATS_QUEUE)
};

inline int tca_cb(const nlattr* a, void* data) {
    auto* tb = static_cast<std::map<int, const nlattr*>*>(data);
    (*tb)[mnl_attr_get_type(a)] = a;
    return MNL_CB_OK;
}

inline int stats2_cb(const nlattr* a, void* data) {
    auto* q = static_cast<QdiscMsg*>(data);
    uint16_t t = mnl_attr_get_type(a);
    if (t == TCA_STATS_RATE_EST || t == TCA_STATS_RATE_EST64) q->has_rate_est = true;
    if (t == TCA_STATS_QUEUE && mnl_attr_get_payload_len(a) >= sizeof(gnet_stats_queue)) {
        gnet_stats_queue sq;
        std::memcpy(&sq, mnl_attr_get_payload(a), sizeof sq);
        q->qlen = sq.qlen;
    }
    return MNL_CB_OK;
}

inline bool parse_qdisc(const nlmsghdr* nlh, QdiscMsg* q) {
    if (nlh->nlmsg_type != RTM_NEWQDISC || mnl_nlmsg_get_payload_len(nlh) < sizeof(tcmsg)) return false;
    auto* tcm = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(nlh));
    std::map<int, const nlattr*> tb;
    if (mnl_attr_parse(nlh, sizeof(tcmsg), tca_cb, &tb) < 0) return false;
    q->ifindex = tcm->tcm_ifindex;
    q->handle = tcm->tcm_handle;
    q->parent = tcm->tcm_parent;
    if (auto it = tb.find(TCA_KIND); it != tb.end()) {
        auto* p = static_cast<const char*>(mnl_attr_get_payload(it->second));
        q->kind.assign(p, strnlen(p, mnl_attr_get_payload_len(it->second)));
    }
    if (auto it = tb.find(TCA_OPTIONS); it != tb.end()) {
        auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(it->second));
        q->options.assign(p, p + mnl_attr_get_payload_len(it->second));
    }
    q->has_stab = tb.count(TCA_STAB) != 0;
    if (auto it = tb.find(TCA_STATS2); it != tb.end())
        mnl_attr_parse_nested(it->second, stats2_cb, q);
    return !q->kind.empty();
}

inline Result<std::string> ifname_of(int ifindex) {
    char name[IF_NAMESIZE] = {};
    if (ifindex <= 0 || !if_indextoname(static_cast<unsigned>(ifindex), name)) {
        int e = (ifindex <= 0 || errno == ENXIO) ? ENODEV : errno;
        return Error{ErrorKind::System,
                     "no network device with ifindex " + std::to_string(ifindex) +
                         " in this network namespace: " + std::strerror(e),
                     e};
    }
    return std::string(name);
}

inline Result<void> open_rtnl(Rtnl& nl, const std::string& ifname) {
    Reply r = nl.open();
    if (r.err) return nl_error("cannot open an rtnetlink socket for " + ifname, r);
    return ok();
}

// Counts the replies of one class or filter dump on one device. A filter (one tcf_proto: a
// protocol and pref) dumps as a reply with handle 0 and then one per node (u32 hash tables,
// keys, ...), so for filters only the handle-0 replies are counted.
inline Result<int> count_dump(Rtnl& nl, uint16_t get, uint16_t reply, int ifindex, uint32_t parent,
                       const std::string& what) {
    const bool filters = reply == RTM_NEWTFILTER;
    int n = 0;
    Reply r = nl.dump(
        [&](char* b) { return put_tc_header(b, get, NLM_F_DUMP, ifindex, parent, 0); },
        [&](const nlmsghdr* m) {
            if (m->nlmsg_type != reply || mnl_nlmsg_get_payload_len(m) < sizeof(tcmsg)) return;
            auto* tcm = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(m));
            if (tcm->tcm_ifindex == ifindex && (!filters || tcm->tcm_handle == 0)) ++n;
        },
        [&] { n = 0; });
    if (r.err) return nl_error("cannot list " + what, r);
    return n;
}



inline Result<std::vector<QdiscMsg>> dump_qdiscs(Rtnl& nl, int ifindex, const std::string& ifname) {
    std::vector<QdiscMsg> out;
    // tc_dump_qdisc() walks every device whatever tcm_ifindex says; we filter here.
    Reply r = nl.dump(
        [&](char* b) { return put_tc_header(b, RTM_GETQDISC, NLM_F_DUMP, ifindex, 0, 0); },
        [&](const nlmsghdr* m) {
            QdiscMsg q;
            if (parse_qdisc(m, &q) && q.ifindex == ifindex) out.push_back(std::move(q));
        },
        [&] { out.clear(); });
    if (r.err) return nl_error("cannot list the qdiscs of " + ifname, r);
    return out;
}

}  // namespace tardy::rtnl
