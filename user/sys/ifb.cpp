// SPDX-License-Identifier: Apache-2.0
#include "sys/ifb.hpp"

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <cstring>
#include <string>
#include <vector>

#include "model/tardy_abi.hpp"
#include "sys/qdisc.hpp"
#include "sys/rtnl.hpp"

namespace tardy {
namespace {

using namespace rtnl;

nlmsghdr* put_link_header(char* buf, uint16_t type, uint16_t flags) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = TARDY_IFB_IFINDEX;
    return nlh;
}

struct LinkInfo {
    bool found = false;
    std::string name, kind;
};

int linkinfo_cb(const nlattr* a, void* data) {
    if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
        static_cast<LinkInfo*>(data)->kind = mnl_attr_get_str(a);
    return MNL_CB_OK;
}

int link_cb(const nlattr* a, void* data) {
    auto* li = static_cast<LinkInfo*>(data);
    if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
        li->name = mnl_attr_get_str(a);
    if (mnl_attr_get_type(a) == IFLA_LINKINFO) mnl_attr_parse_nested(a, linkinfo_cb, li);
    return MNL_CB_OK;
}

// What is at TARDY_IFB_IFINDEX in this namespace.
Result<LinkInfo> link_at_index(Rtnl& nl) {
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    LinkInfo li;
    Reply r = nl.exchange(put_link_header(buf.data(), RTM_GETLINK, NLM_F_ACK), [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWLINK) return;
        li.found = true;
        mnl_attr_parse(m, sizeof(ifinfomsg), link_cb, &li);
    });
    if (r.err == ENODEV) return LinkInfo{};
    if (r.err) return nl_error("cannot look up network device " + std::to_string(TARDY_IFB_IFINDEX), r);
    return li;
}

bool ours(const LinkInfo& li) { return li.found && li.kind == "ifb" && li.name == TARDY_IFB_NAME; }

Error taken(const LinkInfo& li) {
    return Error::user("cannot create tardy's ifb device for ingress delay: ifindex " +
                       std::to_string(TARDY_IFB_IFINDEX) + " is taken by " + li.name + " (" +
                       (li.kind.empty() ? "no kind" : li.kind) +
                       ") in the target's network namespace; delete it, or delay egress only");
}

}  // namespace

Result<void> create_ifb(bool* created) {
    *created = false;
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, TARDY_IFB_NAME));
    auto have = link_at_index(nl);
    if (!have) return have.error();
    if (have->found && !ours(*have)) return taken(*have);
    if (!have->found) {
        std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
        nlmsghdr* nlh = put_link_header(buf.data(), RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
        ifi->ifi_flags = IFF_UP;
        ifi->ifi_change = IFF_UP;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, TARDY_IFB_NAME);
        nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
        mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "ifb");
        mnl_attr_nest_end(nlh, info);
        Reply r = nl.exchange(nlh, [](const nlmsghdr*) {});
        if (r.err == EEXIST)
            return Error::user(std::string("cannot create tardy's ifb device for ingress delay: a device named ") +
                               TARDY_IFB_NAME + " already exists in the target's network namespace at another "
                               "index; delete it, or delay egress only");
        if (r.err == EOPNOTSUPP || r.err == ENOENT)
            return Error::user("ingress delay needs the ifb device, and this kernel has none (ifb module "
                               "missing; see `tardy doctor`); --loss on ingress works without it");
        if (r.err) return nl_error("cannot create tardy's ifb device", r);
        *created = true;
    }
    // A fresh device and ours from before alike: fq holds the packets until their departure.
    if (auto q = replace_root_qdisc(TARDY_IFB_IFINDEX, "fq", fq_options_for_delay()); !q) {
        if (*created) (void)delete_ifb();
        *created = false;
        return q.error();
    }
    return ok();
}

Result<bool> delete_ifb() {
    Rtnl nl;
    TARDY_TRY(open_rtnl(nl, TARDY_IFB_NAME));
    auto have = link_at_index(nl);
    if (!have) return have.error();
    if (!ours(*have)) return false;
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    Reply r = nl.exchange(put_link_header(buf.data(), RTM_DELLINK, NLM_F_ACK), [](const nlmsghdr*) {});
    if (r.err == ENODEV) return false;
    if (r.err) return nl_error(std::string("cannot delete ") + TARDY_IFB_NAME, r);
    return true;
}

}  // namespace tardy
