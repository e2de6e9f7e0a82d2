// SPDX-License-Identifier: Apache-2.0
#include "sys/offload.hpp"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "sys/fd.hpp"

namespace tardy {
namespace {

Result<void> ethtool(const std::string& ifname, void* data, const char* what) {
    if (ifname.empty() || ifname.size() >= IFNAMSIZ) return Error::user("bad device name '" + ifname + "'");
    Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return Error::sys("socket for ethtool", errno);
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size() + 1);
    ifr.ifr_data = static_cast<char*>(data);
    if (ioctl(s.get(), SIOCETHTOOL, &ifr) < 0) return Error::sys(std::string(what) + " of " + ifname, errno);
    return ok();
}

// The bits of the features named "tx-checksum-*", and how many feature words the kernel has.
Result<TxCsumBits> tx_csum_mask(const std::string& ifname) {
    alignas(ethtool_sset_info) char ibuf[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
    auto* info = reinterpret_cast<ethtool_sset_info*>(ibuf);
    info->cmd = ETHTOOL_GSSET_INFO;
    info->sset_mask = 1ULL << ETH_SS_FEATURES;
    TARDY_TRY(ethtool(ifname, info, "read the feature names"));
    uint32_t count = info->data[0];
    if (!(info->sset_mask & (1ULL << ETH_SS_FEATURES)) || count == 0 || count > 1024)
        return Error::other("ethtool reports no feature names for " + ifname);
    std::vector<char> buf(sizeof(ethtool_gstrings) + size_t{count} * ETH_GSTRING_LEN);
    auto* gs = reinterpret_cast<ethtool_gstrings*>(buf.data());
    gs->cmd = ETHTOOL_GSTRINGS;
    gs->string_set = ETH_SS_FEATURES;
    gs->len = count;
    TARDY_TRY(ethtool(ifname, gs, "read the feature names"));
    TxCsumBits m;
    m.words.assign((count + 31) / 32, 0);
    for (uint32_t i = 0; i < gs->len && i < count; i++) {
        const char* name = reinterpret_cast<const char*>(gs->data) + size_t{i} * ETH_GSTRING_LEN;
        if (std::strncmp(name, "tx-checksum-", 12) == 0) m.words[i / 32] |= 1u << (i % 32);
    }
    return m;
}

struct Features {
    std::vector<uint32_t> wanted, active;
};

Result<Features> features(const std::string& ifname, size_t words) {
    std::vector<char> buf(sizeof(ethtool_gfeatures) + words * sizeof(ethtool_get_features_block));
    auto* g = reinterpret_cast<ethtool_gfeatures*>(buf.data());
    g->cmd = ETHTOOL_GFEATURES;
    g->size = static_cast<uint32_t>(words);
    TARDY_TRY(ethtool(ifname, g, "read the features"));
    Features f;
    for (size_t i = 0; i < words && i < g->size; i++) {
        f.wanted.push_back(g->features[i].requested);
        f.active.push_back(g->features[i].active);
    }
    f.wanted.resize(words, 0);
    f.active.resize(words, 0);
    return f;
}

}  // namespace

bool TxCsumBits::empty() const {
    for (uint32_t w : words)
        if (w) return false;
    return true;
}

std::string TxCsumBits::encode() const {
    std::string s;
    for (uint32_t w : words) {
        char b[16];
        std::snprintf(b, sizeof b, "%s%x", s.empty() ? "" : ",", w);
        s += b;
    }
    return s;
}

Result<TxCsumBits> TxCsumBits::decode(const std::string& text) {
    TxCsumBits b;
    size_t i = 0;
    while (i <= text.size()) {
        size_t end = text.find(',', i);
        if (end == std::string::npos) end = text.size();
        std::string t = text.substr(i, end - i);
        char* stop = nullptr;
        errno = 0;
        bool hex = !t.empty() && t.size() <= 8 && t.find_first_not_of("0123456789abcdef") == std::string::npos;
        unsigned long v = hex ? std::strtoul(t.c_str(), &stop, 16) : 0;
        if (!hex || errno || !stop || *stop || b.words.size() >= 64)
            return Error::other("bad checksum feature bits '" + text + "'");
        b.words.push_back(static_cast<uint32_t>(v));
        i = end + 1;
    }
    if (b.empty()) return Error::other("bad checksum feature bits '" + text + "': none set");
    return b;
}

Result<TxCsumBits> tx_csum_to_turn_off(const std::string& ifname) {
    ethtool_drvinfo di{};
    di.cmd = ETHTOOL_GDRVINFO;
    TARDY_TRY(ethtool(ifname, &di, "read the driver"));
    std::string driver(di.driver, strnlen(di.driver, sizeof di.driver));
    if (driver != "veth" && driver != "netkit") return TxCsumBits{};
    auto mask = tx_csum_mask(ifname);
    if (!mask) return mask.error();
    auto f = features(ifname, mask->words.size());
    if (!f) return f.error();
    for (size_t i = 0; i < mask->words.size(); i++) mask->words[i] &= f->wanted[i];
    return mask;
}

Result<void> set_tx_csum(const std::string& ifname, const TxCsumBits& bits, bool on) {
    // The kernel wants exactly its own number of words: read it back from GFEATURES.
    std::vector<char> gbuf(sizeof(ethtool_gfeatures) + 64 * sizeof(ethtool_get_features_block));
    auto* g = reinterpret_cast<ethtool_gfeatures*>(gbuf.data());
    g->cmd = ETHTOOL_GFEATURES;
    g->size = 64;
    TARDY_TRY(ethtool(ifname, g, "read the features"));
    size_t words = g->size;
    std::vector<char> buf(sizeof(ethtool_sfeatures) + words * sizeof(ethtool_set_features_block));
    auto* s = reinterpret_cast<ethtool_sfeatures*>(buf.data());
    s->cmd = ETHTOOL_SFEATURES;
    s->size = static_cast<uint32_t>(words);
    for (size_t i = 0; i < words && i < bits.words.size(); i++) {
        s->features[i].valid = bits.words[i];
        s->features[i].requested = on ? bits.words[i] : 0;
    }
    return ethtool(ifname, s, on ? "turn the checksum offload back on" : "turn the checksum offload off");
}

Result<bool> tx_csum_active(const std::string& ifname) {
    auto mask = tx_csum_mask(ifname);
    if (!mask) return mask.error();
    auto f = features(ifname, mask->words.size());
    if (!f) return f.error();
    for (size_t i = 0; i < mask->words.size(); i++)
        if (mask->words[i] & f->active[i]) return true;
    return false;
}

}  // namespace tardy
