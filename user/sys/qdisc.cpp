// SPDX-License-Identifier: Apache-2.0
#include "sys/qdisc.hpp"
#include "sys/rtnl.hpp"

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

using namespace rtnl;

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

Result<uint32_t> root_qdisc_qlen(int ifindex) {
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, *name));
    auto qs = dump_qdiscs(nl, ifindex, *name);
    if (!qs) return qs.error();
    for (const QdiscMsg& q : *qs)
        if (q.parent == TC_H_ROOT) return q.qlen;
    return 0u;
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

std::string describe(const QdiscSnapshot& s) { return s.kind + " " + handle_str(s.handle); }

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
