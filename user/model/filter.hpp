// SPDX-License-Identifier: Apache-2.0
// Which traffic of the target an injection's faults apply to: --peer, --except-peer,
// --port, --except-port and --proto. One filter per injection, for its packet faults and
// its socket faults alike; encoded into the shared struct tardy_filter.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "model/tardy_abi.hpp"

namespace tardy {

struct Filter {
    std::vector<std::string> peers;         // CIDRs as given, validated
    std::vector<std::string> except_peers;  // win over peers
    uint16_t port_lo = 0, port_hi = 0;      // remote port; 0 and 0: any
    uint16_t except_port_lo = 0, except_port_hi = 0;
    uint32_t protos = 0;  // TARDY_PROTO_* bits; 0: any
    bool empty() const { return !addresses() && !protos; }
    // Peers or ports: needs a call or packet with a remote address.
    bool addresses() const { return !peers.empty() || !except_peers.empty() || port_lo || except_port_lo; }
    // The options set, as the user wrote them ("--peer, --proto"), for error messages.
    std::string options() const;
};

// The command line's strings, before parsing.
struct FilterArgs {
    std::vector<std::string> peers, except_peers, protos;
    std::string port, except_port;
};

// "10.0.0.5", "10.0.0.0/8", "fd00::/64"
Result<tardy_peer> parse_peer(const std::string& cidr, const std::string& option = "--peer");
// "53", "8000-8080"
Result<std::pair<uint16_t, uint16_t>> parse_ports(const std::string& text, const std::string& option = "--port");
// "tcp", "udp", "icmp" (also "tcp,udp"); a TARDY_PROTO_* bit set
Result<uint32_t> parse_protos(const std::vector<std::string>& names);

Result<Filter> build_filter(const FilterArgs& a);
Result<tardy_filter> encode(const Filter& f);
std::string describe(const Filter& f);  // "to 10.0.0.5/32 except 10.0.0.9 port 5432 tcp", "" if empty

void to_json(nlohmann::json& j, const Filter& f);
void from_json(const nlohmann::json& j, Filter& f);

}  // namespace tardy
