#include "sys/qdisc.hpp"

#include <libmnl/libmnl.h>
#include <linux/gen_stats.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

namespace tardy {
namespace {

// Dump replies come in skbs of up to 32 KiB; a smaller buffer truncates them (MSG_TRUNC).
constexpr size_t kRecvBuf = 64 * 1024;
constexpr int kDumpTries = 5;  // a dump racing a change is flagged NLM_F_DUMP_INTR; redo it

// What the kernel said about one request: 0 or a positive errno, and its extack message.
struct Reply {
    int err = 0;
    std::string kmsg;
};

std::string handle_str(uint32_t h) {
    char b[24];
    if (TC_H_MIN(h))
        std::snprintf(b, sizeof b, "%x:%x", TC_H_MAJ(h) >> 16, TC_H_MIN(h));
    else
        std::snprintf(b, sizeof b, "%x:", TC_H_MAJ(h) >> 16);
    return b;
}

// "what: strerror (kernel: extack)" plus a hint for the errnos that have an obvious fix.
Error nl_error(const std::string& what, const Reply& r) {
    std::string m = what + ": " + std::strerror(r.err);
    if (!r.kmsg.empty()) m += " (kernel: " + r.kmsg + ")";
    if (r.err == EPERM || r.err == EACCES)
        m += "; needs root (CAP_NET_ADMIN in the device's network namespace)";
    return {ErrorKind::System, m, r.err};
}

int ack_tlv_cb(const nlattr* a, void* data) {
    if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
        *static_cast<std::string*>(data) = mnl_attr_get_str(a);
    return MNL_CB_OK;
}

// Extended ack TLVs follow the error code and the echoed request, which is only its header
// when NLM_F_CAPPED is set (we ask for that with NETLINK_CAP_ACK; older kernels ignore it).
std::string ext_ack_msg(const nlmsghdr* nlh, size_t err_off) {
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

nlmsghdr* put_tc_header(char* buf, uint16_t type, uint16_t flags, int ifindex, uint32_t parent,
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
};

int tca_cb(const nlattr* a, void* data) {
    auto* tb = static_cast<std::map<int, const nlattr*>*>(data);
    (*tb)[mnl_attr_get_type(a)] = a;
    return MNL_CB_OK;
}

int stats2_cb(const nlattr* a, void* data) {
    uint16_t t = mnl_attr_get_type(a);
    if (t == TCA_STATS_RATE_EST || t == TCA_STATS_RATE_EST64) *static_cast<bool*>(data) = true;
    return MNL_CB_OK;
}

bool parse_qdisc(const nlmsghdr* nlh, QdiscMsg* q) {
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
        mnl_attr_parse_nested(it->second, stats2_cb, &q->has_rate_est);
    return !q->kind.empty();
}

Result<std::string> ifname_of(int ifindex) {
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

Result<void> open_rtnl(Rtnl& nl, const std::string& ifname) {
    Reply r = nl.open();
    if (r.err) return nl_error("cannot open an rtnetlink socket for " + ifname, r);
    return ok();
}

// Counts the replies of one class or filter dump on one device. A filter (one tcf_proto: a
// protocol and pref) dumps as a reply with handle 0 and then one per node (u32 hash tables,
// keys, ...), so for filters only the handle-0 replies are counted.
Result<int> count_dump(Rtnl& nl, uint16_t get, uint16_t reply, int ifindex, uint32_t parent,
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

// Joins "2 classes", "1 filter", ... for QdiscSnapshot::not_restored.
void add_loss(std::string& out, int n, const char* one, const char* many) {
    if (n <= 0) return;
    if (!out.empty()) out += ", ";
    out += std::to_string(n) + " " + (n == 1 ? one : many);
}

// Qdiscs whose classes only exist because someone made them (tc class add); other classful
// qdiscs (prio, mq, ets, tbf, ...) rebuild their classes from their options.
bool has_user_classes(const std::string& kind) {
    return kind == "htb" || kind == "hfsc" || kind == "drr" || kind == "qfq" || kind == "cbq";
}

Result<std::vector<QdiscMsg>> dump_qdiscs(Rtnl& nl, int ifindex, const std::string& ifname) {
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

Result<QdiscSnapshot> snapshot(Rtnl& nl, int ifindex, const std::string& ifname) {
    auto qs = dump_qdiscs(nl, ifindex, ifname);
    if (!qs) return qs.error();
    QdiscSnapshot s;
    s.ifindex = ifindex;
    s.ifname = ifname;
    auto root = std::find_if(qs->begin(), qs->end(), [](const QdiscMsg& q) { return q.parent == TC_H_ROOT; });
    if (root == qs->end()) {
        // dev->qdisc is &noop_qdisc until the device first comes up, and dumps skip it
        // (TCQ_F_BUILTIN); deleting our root puts the same state back.
        s.kind = "noop";
        s.is_default = true;
        return s;
    }
    s.kind = root->kind;
    s.handle = root->handle;
    s.options = root->options;
    // User-made qdiscs always get a handle (qdisc_alloc_handle() when none is given); only the
    // ones attach_default_qdiscs() makes have 0.
    s.is_default = root->handle == 0;
    if (s.is_default) return s;

    int children = 0;
    for (const QdiscMsg& q : *qs)
        if (q.parent != TC_H_ROOT && q.parent != TC_H_INGRESS && q.handle != 0) ++children;
    int classes = 0;
    if (has_user_classes(s.kind)) {
        auto n = count_dump(nl, RTM_GETTCLASS, RTM_NEWTCLASS, ifindex, s.handle, "the classes of " + ifname);
        if (!n) return n.error();
        classes = *n;
    }
    auto filters =
        count_dump(nl, RTM_GETTFILTER, RTM_NEWTFILTER, ifindex, s.handle, "the root filters of " + ifname);
    if (!filters) return filters.error();
    add_loss(s.not_restored, classes, "class", "classes");
    add_loss(s.not_restored, children, "child qdisc", "child qdiscs");
    add_loss(s.not_restored, *filters, "filter", "filters");
    if (root->has_stab) add_loss(s.not_restored, 1, "size table (stab)", "");
    if (root->has_rate_est) add_loss(s.not_restored, 1, "rate estimator", "");
    return s;
}

std::string not_available_msg(const std::string& kind) {
    std::string m = "qdisc '" + kind + "' is not available in this kernel (sch_" + kind + " module missing)";
    if (kind == "fq") m += "; delay needs it — loss works without it";
    return m;
}

Reply new_root(Rtnl& nl, int ifindex, uint16_t flags, uint32_t handle, const std::string& kind,
               const std::vector<uint8_t>& options) {
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE + options.size());
    nlmsghdr* nlh = put_tc_header(buf.data(), RTM_NEWQDISC, NLM_F_ACK | flags, ifindex, TC_H_ROOT, handle);
    mnl_attr_put_strz(nlh, TCA_KIND, kind.c_str());
    // Dumps write TCA_OPTIONS without NLA_F_NESTED (nla_nest_start_noflag) but strictly parsed
    // qdiscs (ets, ...) reject it unflagged; qdiscs whose options are a plain struct (pfifo,
    // pfifo_fast) never look at the flag, so always setting it is right for both.
    if (!options.empty())
        mnl_attr_put(nlh, TCA_OPTIONS | NLA_F_NESTED, options.size(), options.data());
    return nl.exchange(nlh, [](const nlmsghdr*) {});
}

// Some qdiscs dump options that their own init refuses; fix those fields so the dump can be
// replayed. htb_dump() reports tc_htb_glob.version as HTB_VER (0x30011), htb_init() accepts only
// HTB_VER >> 16 (3), which is what tc sends.
std::vector<uint8_t> replayable(const std::string& kind, std::vector<uint8_t> opts) {
    constexpr uint32_t kHtbVer = 0x30011;  // HTB_VER, private to net/sched/sch_htb.c
    if (kind != "htb") return opts;
    for (size_t off = 0; off + sizeof(nlattr) <= opts.size();) {
        nlattr a;
        std::memcpy(&a, opts.data() + off, sizeof a);
        if (a.nla_len < sizeof a || off + a.nla_len > opts.size()) break;
        tc_htb_glob g;
        if ((a.nla_type & NLA_TYPE_MASK) == TCA_HTB_INIT && a.nla_len >= sizeof a + sizeof g) {
            std::memcpy(&g, opts.data() + off + sizeof a, sizeof g);
            if (g.version == kHtbVer) g.version = kHtbVer >> 16;
            std::memcpy(opts.data() + off + sizeof a, &g, sizeof g);
        }
        off += MNL_ALIGN(a.nla_len);
    }
    return opts;
}

Reply delete_root(Rtnl& nl, int ifindex, uint32_t handle) {
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    // Naming the handle makes the kernel refuse (ENOENT) if the root changed since we looked.
    nlmsghdr* nlh = put_tc_header(buf.data(), RTM_DELQDISC, NLM_F_ACK, ifindex, TC_H_ROOT, handle);
    return nl.exchange(nlh, [](const nlmsghdr*) {});
}

Result<void> check_kind(const std::string& kind) {
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (kind.empty() || kind.size() >= IF_NAMESIZE || !std::all_of(kind.begin(), kind.end(), word))
        return Error::user("'" + kind + "' is not a qdisc name");
    return ok();
}

Result<bool> probe_kind(const std::string& kind) {
    if (unshare(CLONE_NEWNET) != 0) {
        int e = errno;
        return Error{ErrorKind::System,
                     "cannot make a scratch network namespace to look for qdisc '" + kind +
                         "': " + std::strerror(e) + (e == EPERM ? "; needs root (CAP_SYS_ADMIN)" : ""),
                     e};
    }
    unsigned lo = if_nametoindex("lo");
    if (lo == 0) return Error::sys("no loopback device in a scratch network namespace", errno);
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, "lo"));
    Reply r = new_root(nl, static_cast<int>(lo), NLM_F_CREATE | NLM_F_REPLACE, 0, kind, {});
    if (r.err == 0) return true;
    // qdisc_create() says ENOENT only when it finds no ops for the kind, even after
    // request_module("sch_<kind>"). Anything later (htb and tbf refuse to start without
    // options, mq wants a multiqueue device) means the kind exists.
    if (r.err == ENOENT) return false;
    if (r.err == EPERM || r.err == EACCES) return nl_error("cannot look for qdisc '" + kind + "'", r);
    return true;
}

static_assert(kClsactIngress == TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS));
static_assert(kClsactEgress == TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS));

bool is_clsact(const QdiscMsg& q) { return q.kind == "clsact" && q.parent == TC_H_CLSACT; }

// Whether any filter is left on either hook of the device's clsact.
Result<bool> clsact_filters(Rtnl& nl, int ifindex, const std::string& ifname) {
    for (uint32_t parent : {kClsactIngress, kClsactEgress}) {
        auto n = count_dump(nl, RTM_GETTFILTER, RTM_NEWTFILTER, ifindex, parent,
                            "the clsact filters of " + ifname);
        if (!n) return n.error();
        if (*n) return true;
    }
    return false;
}

std::string to_hex(const uint8_t* p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

bool from_hex(std::string_view h, std::vector<uint8_t>* out) {
    if (h.size() % 2) return false;
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    out->clear();
    for (size_t i = 0; i < h.size(); i += 2) {
        int a = nib(h[i]), b = nib(h[i + 1]);
        if (a < 0 || b < 0) return false;
        out->push_back(static_cast<uint8_t>(a << 4 | b));
    }
    return true;
}

}  // namespace

Result<QdiscSnapshot> root_qdisc(int ifindex) {
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    return snapshot(nl, ifindex, *name);
}

std::vector<uint8_t> fq_options_for_delay() {
    std::vector<uint8_t> out;
    auto put_u32 = [&](uint16_t type, uint32_t v) {
        nlattr a{static_cast<uint16_t>(sizeof(nlattr) + sizeof v), type};
        const auto* pa = reinterpret_cast<const uint8_t*>(&a);
        const auto* pv = reinterpret_cast<const uint8_t*>(&v);
        out.insert(out.end(), pa, pa + sizeof a);
        out.insert(out.end(), pv, pv + sizeof v);
    };
    put_u32(TCA_FQ_PLIMIT, 100000);
    put_u32(TCA_FQ_FLOW_PLIMIT, 10000);
    return out;
}

Result<void> replace_root_qdisc(int ifindex, const std::string& kind, const std::vector<uint8_t>& options) {
    TARDY_TRY(check_kind(kind));
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    auto cur = snapshot(nl, ifindex, *name);
    if (!cur) return cur.error();
    if (!cur->is_default && cur->kind == kind) {
        // With handle 0 and a root of the same kind, tc_modify_qdisc() takes CREATE|REPLACE as
        // "change the existing one" (keeping its options and handle) and refuses it with EXCL
        // ("Exclusivity flag on, cannot modify"), so remove it first.
        Reply r = delete_root(nl, ifindex, cur->handle);
        if (r.err) return nl_error("cannot remove root qdisc " + kind + " " + handle_str(cur->handle) +
                                   " of " + *name + " to make a fresh one", r);
    }
    Reply r = new_root(nl, ifindex, NLM_F_CREATE | NLM_F_REPLACE, 0, kind, options);
    if (r.err == ENOENT) return Error{ErrorKind::System, not_available_msg(kind), ENOENT};
    if (r.err) return nl_error("cannot make qdisc '" + kind + "' the root of " + *name, r);
    return ok();
}

Result<void> restore_root_qdisc(const QdiscSnapshot& s) {
    auto name = ifname_of(s.ifindex);
    if (!name) {
        Error e = name.error();
        e.message = "cannot put back the root qdisc of " + s.ifname + ": the device (ifindex " +
                    std::to_string(s.ifindex) + ") no longer exists, so there is nothing to restore";
        return e;
    }
    if (*name != s.ifname) {
        std::string by_hand = s.is_default ? "tc qdisc del dev " + s.ifname + " root"
                                           : "a " + s.kind + " root with handle " + handle_str(s.handle);
        return Error::other("not restoring the root qdisc of " + s.ifname + ": ifindex " +
                            std::to_string(s.ifindex) + " is now named " + *name +
                            " and may be another device; if " + s.ifname + " still exists, put back " +
                            by_hand + " by hand");
    }
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    auto cur = snapshot(nl, s.ifindex, *name);
    if (!cur) return cur.error();
    const std::string what = "cannot put back root qdisc " + s.kind + " " + handle_str(s.handle) +
                             " on " + s.ifname + " (now " + cur->kind + " " + handle_str(cur->handle) + ")";
    if (s.is_default) {
        if (cur->is_default) return ok();
        Reply r = delete_root(nl, s.ifindex, cur->handle);
        if (r.err) return nl_error(what, r);
        return ok();
    }
    if (cur->kind == s.kind && cur->handle == s.handle) return ok();  // already back
    if (cur->handle == s.handle) {
        // Same handle, other kind: the kernel would take the request as a "change" of the
        // current root and refuse the kind (EINVAL "Invalid qdisc name"); clear it first.
        Reply r = delete_root(nl, s.ifindex, cur->handle);
        if (r.err) return nl_error(what, r);
    }
    Reply r = new_root(nl, s.ifindex, NLM_F_CREATE | NLM_F_REPLACE, s.handle, s.kind,
                       replayable(s.kind, s.options));
    if (r.err == ENOENT && (r.kmsg.empty() || r.kmsg.find("unknown") != std::string::npos))
        return Error{ErrorKind::System, what + ": " + not_available_msg(s.kind), ENOENT};
    if (r.err) return nl_error(what, r);
    return ok();
}

Result<bool> clsact_exists(int ifindex) {
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    auto qs = dump_qdiscs(nl, ifindex, *name);
    if (!qs) return qs.error();
    return std::any_of(qs->begin(), qs->end(), is_clsact);
}

Result<int> count_filters(int ifindex, uint32_t parent) {
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    return count_dump(nl, RTM_GETTFILTER, RTM_NEWTFILTER, ifindex, parent,
                      "the filters of " + *name + " at parent " + handle_str(parent));
}

Result<bool> clsact_has_filters(int ifindex) {
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    return clsact_filters(nl, ifindex, *name);
}

Result<bool> remove_clsact_if_empty(int ifindex) {
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    auto qs = dump_qdiscs(nl, ifindex, *name);
    if (!qs) return qs.error();
    if (std::none_of(qs->begin(), qs->end(), is_clsact)) return false;
    auto busy = clsact_filters(nl, ifindex, *name);
    if (!busy) return busy.error();
    if (*busy) return false;
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    // The kind and handle make the kernel refuse (EINVAL, ENOENT) anything but a clsact.
    nlmsghdr* nlh = put_tc_header(buf.data(), RTM_DELQDISC, NLM_F_ACK, ifindex, TC_H_CLSACT,
                                  TC_H_MAKE(TC_H_CLSACT, 0));
    mnl_attr_put_strz(nlh, TCA_KIND, "clsact");
    Reply r = nl.exchange(nlh, [](const nlmsghdr*) {});
    if (r.err == ENOENT || r.err == EINVAL) return false;  // gone, or replaced by another kind since
    if (r.err) return nl_error("cannot remove the clsact qdisc of " + *name, r);
    return true;
}

Result<void> check_restorable(const QdiscSnapshot& s) {
    if (s.not_restored.empty()) return ok();
    return Error::user("root qdisc " + s.kind + " " + handle_str(s.handle) + " of " + s.ifname + " has " +
                       s.not_restored + " that replacing it would destroy and tardy cannot put back; "
                       "use loss only on " + s.ifname + ", or remove that setup first");
}

Result<bool> qdisc_kind_available(const std::string& kind) {
    TARDY_TRY(check_kind(kind));
    // unshare() moves only the calling thread, and the namespace dies with the thread.
    Result<bool> out = Error::other("qdisc probe thread did not run");
    try {
        std::thread t([&] { out = probe_kind(kind); });
        t.join();
    } catch (const std::system_error& e) {
        return Error::sys("cannot start a thread to look for qdisc '" + kind + "'", e.code().value());
    }
    return out;
}

std::string encode(const QdiscSnapshot& s) {
    char h[16];
    std::snprintf(h, sizeof h, "%08x", s.handle);
    return "qdisc-v1 ifindex=" + std::to_string(s.ifindex) + " ifname=" + s.ifname + " kind=" + s.kind +
           " handle=" + h + " default=" + (s.is_default ? "1" : "0") +
           " options=" + to_hex(s.options.data(), s.options.size()) +
           " lost=" + to_hex(reinterpret_cast<const uint8_t*>(s.not_restored.data()), s.not_restored.size());
}

Result<QdiscSnapshot> decode(const std::string& line) {
    auto bad = [&](const std::string& why) {
        return Error::other("bad qdisc record in the journal (" + why + "): " + line.substr(0, 200));
    };
    std::vector<std::string_view> words;
    std::string_view rest(line);
    while (!rest.empty()) {
        size_t sp = rest.find(' ');
        if (sp == 0) return bad("double space");
        words.push_back(rest.substr(0, sp));
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
        if (sp != std::string_view::npos && rest.empty()) return bad("trailing space");
    }
    if (words.empty() || words[0] != "qdisc-v1") return bad("not a qdisc-v1 record");
    static const char* const keys[] = {"ifindex", "ifname", "kind", "handle", "default", "options", "lost"};
    if (words.size() != 1 + std::size(keys))
        return bad("want " + std::to_string(std::size(keys)) + " fields");
    std::map<std::string_view, std::string_view> kv;
    for (size_t i = 0; i < std::size(keys); ++i) {
        std::string_view w = words[i + 1];
        size_t eq = w.find('=');
        if (eq == std::string_view::npos || w.substr(0, eq) != keys[i])
            return bad(std::string("field ") + keys[i]);
        kv[keys[i]] = w.substr(eq + 1);
    }
    auto number = [](std::string_view v, int base, unsigned long long max, unsigned long long* out) {
        if (v.empty() || v.size() > 16) return false;
        std::string str(v);
        char* end = nullptr;
        errno = 0;
        *out = std::strtoull(str.c_str(), &end, base);
        return errno == 0 && *end == '\0' && std::isxdigit(static_cast<unsigned char>(str[0])) && *out <= max;
    };
    QdiscSnapshot s;
    unsigned long long n = 0;
    if (!number(kv["ifindex"], 10, INT32_MAX, &n) || n == 0) return bad("ifindex");
    s.ifindex = static_cast<int>(n);
    s.ifname = std::string(kv["ifname"]);
    if (s.ifname.empty() || s.ifname.size() >= IF_NAMESIZE) return bad("ifname");
    s.kind = std::string(kv["kind"]);
    if (!check_kind(s.kind)) return bad("kind");
    if (kv["handle"].size() != 8 || !number(kv["handle"], 16, UINT32_MAX, &n)) return bad("handle");
    s.handle = static_cast<uint32_t>(n);
    if (kv["default"] != "0" && kv["default"] != "1") return bad("default");
    s.is_default = kv["default"] == "1";
    if (!from_hex(kv["options"], &s.options) || s.options.size() > UINT16_MAX - 2 * MNL_ATTR_HDRLEN)
        return bad("options");
    std::vector<uint8_t> lost;
    if (!from_hex(kv["lost"], &lost)) return bad("lost");
    s.not_restored.assign(lost.begin(), lost.end());
    return s;
}

}  // namespace tardy
