// SPDX-License-Identifier: Apache-2.0
#include "model/filter.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>
#include <tuple>

namespace tardy {
namespace {

bool parse_uint(const std::string& s, uint32_t& out) {
    auto [p, e] = std::from_chars(s.data(), s.data() + s.size(), out);
    return e == std::errc() && p == s.data() + s.size() && !s.empty();
}

std::string ports_text(uint16_t lo, uint16_t hi) {
    return std::to_string(lo) + (hi != lo ? "-" + std::to_string(hi) : "");
}

struct ProtoName {
    const char* name;
    uint32_t bit;
};
constexpr ProtoName kProtos[] = {{"tcp", TARDY_PROTO_TCP}, {"udp", TARDY_PROTO_UDP}, {"icmp", TARDY_PROTO_ICMP}};

}  // namespace

std::string Filter::options() const {
    std::string s;
    auto add = [&](bool on, const char* o) {
        if (on) s += (s.empty() ? "" : ", ") + std::string(o);
    };
    add(!peers.empty(), "--peer");
    add(!except_peers.empty(), "--except-peer");
    add(port_lo != 0, "--port");
    add(except_port_lo != 0, "--except-port");
    add(protos != 0, "--proto");
    return s;
}

Result<tardy_peer> parse_peer(const std::string& cidr, const std::string& option) {
    tardy_peer p{};
    std::string addr = cidr, len;
    bool has_len = false;
    if (auto slash = cidr.find('/'); slash != std::string::npos) {
        addr = cidr.substr(0, slash);
        len = cidr.substr(slash + 1);
        has_len = true;
    }
    if (addr.find('\0') == std::string::npos && inet_pton(AF_INET, addr.c_str(), p.addr_be) == 1) {
        p.family = AF_INET;
        p.prefix_len = 32;
    } else if (addr.find('\0') == std::string::npos && inet_pton(AF_INET6, addr.c_str(), p.addr_be) == 1) {
        p.family = AF_INET6;
        p.prefix_len = 128;
    } else {
        return Error::user(option + " '" + cidr + "': not an IPv4 or IPv6 address or prefix (e.g. 10.0.0.5 or fd00::/64)");
    }
    if (has_len) {
        uint32_t n = 0;
        if (!parse_uint(len, n) || n > p.prefix_len)
            return Error::user(option + " " + cidr + ": prefix length must be 0-" + std::to_string(p.prefix_len));
        p.prefix_len = n;
    }
    return p;
}

Result<std::pair<uint16_t, uint16_t>> parse_ports(const std::string& text, const std::string& option) {
    std::string lo = text, hi = text;
    if (auto dash = text.find('-'); dash != std::string::npos) {
        lo = text.substr(0, dash);
        hi = text.substr(dash + 1);
    }
    uint32_t a = 0, b = 0;
    if (!parse_uint(lo, a) || !parse_uint(hi, b) || a < 1 || b > 65535 || a > b)
        return Error::user(option + " '" + text + "': use a port 1-65535 or a range N-M with N <= M");
    return std::pair<uint16_t, uint16_t>(static_cast<uint16_t>(a), static_cast<uint16_t>(b));
}

Result<uint32_t> parse_protos(const std::vector<std::string>& names) {
    uint32_t bits = 0;
    for (const auto& list : names) {
        size_t at = 0;
        do {
            size_t comma = list.find(',', at);
            std::string n = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
            at = comma == std::string::npos ? std::string::npos : comma + 1;
            uint32_t bit = 0;
            for (const auto& p : kProtos)
                if (n == p.name) bit = p.bit;
            if (!bit) return Error::user("--proto '" + n + "': use tcp, udp or icmp (repeat it, or tcp,udp, for several)");
            bits |= bit;
        } while (at != std::string::npos);
    }
    return bits;
}

Result<Filter> build_filter(const FilterArgs& a) {
    Filter f;
    if (a.peers.size() + a.except_peers.size() > TARDY_FILTER_MAX_PEERS)
        return Error::user("at most " + std::to_string(TARDY_FILTER_MAX_PEERS) +
                           " --peer and --except-peer options together; use a wider prefix");
    for (const auto& p : a.peers) {
        TARDY_TRY(parse_peer(p, "--peer"));
        f.peers.push_back(p);
    }
    for (const auto& p : a.except_peers) {
        TARDY_TRY(parse_peer(p, "--except-peer"));
        f.except_peers.push_back(p);
    }
    if (!a.port.empty()) {
        auto r = parse_ports(a.port, "--port");
        if (!r) return r.error();
        std::tie(f.port_lo, f.port_hi) = *r;
    }
    if (!a.except_port.empty()) {
        auto r = parse_ports(a.except_port, "--except-port");
        if (!r) return r.error();
        std::tie(f.except_port_lo, f.except_port_hi) = *r;
        if (f.port_lo && f.except_port_lo <= f.port_lo && f.except_port_hi >= f.port_hi)
            return Error::user("--except-port " + a.except_port + " excludes every port of --port " + a.port +
                               ": nothing would be hit; narrow one of them");
    }
    auto protos = parse_protos(a.protos);
    if (!protos) return protos.error();
    f.protos = *protos;
    if (f.protos == TARDY_PROTO_ICMP && (f.port_lo || f.except_port_lo))
        return Error::user("--port and --except-port need tcp or udp; ICMP has no ports (add --proto tcp or udp)");
    return f;
}

Result<tardy_filter> encode(const Filter& f) {
    tardy_filter r{};
    size_t i = 0;
    for (const auto* list : {&f.peers, &f.except_peers})
        for (const auto& p : *list) {
            if (i >= TARDY_FILTER_MAX_PEERS) return Error::user("too many --peer and --except-peer options");
            auto pp = parse_peer(p);
            if (!pp) return pp.error();
            r.peers[i++] = *pp;
        }
    r.n_peers = static_cast<uint32_t>(f.peers.size());
    r.n_except = static_cast<uint32_t>(f.except_peers.size());
    r.port_lo = f.port_lo;
    r.port_hi = f.port_hi;
    r.except_port_lo = f.except_port_lo;
    r.except_port_hi = f.except_port_hi;
    r.protos = f.protos;
    return r;
}

std::string describe(const Filter& f) {
    std::string s;
    auto add = [&](const std::string& part) { s += (s.empty() ? "" : " ") + part; };
    if (!f.peers.empty()) {
        std::string p = "to";
        for (const auto& x : f.peers) p += " " + x;
        add(p);
    }
    if (!f.except_peers.empty()) {
        std::string p = "except";
        for (const auto& x : f.except_peers) p += " " + x;
        add(p);
    }
    if (f.port_lo) add("port " + ports_text(f.port_lo, f.port_hi));
    if (f.except_port_lo) add("except port " + ports_text(f.except_port_lo, f.except_port_hi));
    for (const auto& p : kProtos)
        if (f.protos & p.bit) add(p.name);
    return s;
}

void to_json(nlohmann::json& j, const Filter& f) {
    j = nlohmann::json{{"peers", f.peers},
                       {"except_peers", f.except_peers},
                       {"port_lo", f.port_lo},
                       {"port_hi", f.port_hi},
                       {"except_port_lo", f.except_port_lo},
                       {"except_port_hi", f.except_port_hi},
                       {"protos", f.protos}};
}

void from_json(const nlohmann::json& j, Filter& f) {
    f = {};
    f.peers = j.value("peers", std::vector<std::string>{});
    f.except_peers = j.value("except_peers", std::vector<std::string>{});
    f.port_lo = j.value("port_lo", uint16_t{0});
    f.port_hi = j.value("port_hi", uint16_t{0});
    f.except_port_lo = j.value("except_port_lo", uint16_t{0});
    f.except_port_hi = j.value("except_port_hi", uint16_t{0});
    f.protos = j.value("protos", uint32_t{0});
}

}  // namespace tardy
