// SPDX-License-Identifier: Apache-2.0
// netem's packet faults beyond plain loss and delay: the jitter's distribution, correlated
// draws, burst loss (Gilbert-Elliott), duplication, reordering and rate; and beyond netem, DNS
// errors and TCP resets. Parsed from the
// flags of `tardy inject` into NetFaults; docs/faults.md has the semantics, with netem's
// behaviour as the reference.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/error.hpp"

namespace tardy {

struct NetFaults;

// Raw strings of the shape flags.
struct ShapeArgs {
    std::string distribution;  // --distribution uniform|normal|pareto|paretonormal
    std::string correlation;   // --correlation PCT
    std::string loss_burst;    // --loss-burst N: mean burst length of --loss
    std::string loss_gemodel;  // --loss-gemodel P[,R[,1-H[,1-K]]]: netem's own parameters
    std::string duplicate;     // --duplicate PCT
    std::string reorder;       // --reorder PCT
    std::string reorder_gap;   // --reorder-gap N: netem's gap
    std::string rate;          // --rate RATE, e.g. 10mbit
    std::string dns;           // --dns nxdomain|servfail|refused|timeout[:PCT]
    std::string dns_name;      // --dns-name SUFFIX: only queries for names ending in it
    std::string reset;         // --reset PCT: share of TCP connections reset
    std::string corrupt;       // --corrupt PCT: share of packets sent with a checksum the receiver rejects
    bool empty() const;
    std::vector<std::string> given() const;  // the flags given, e.g. {"--rate"}, for errors
};

// Applies the shape flags to net, whose delay, jitter and loss are already parsed (`loss` is
// the raw --loss: --loss-gemodel replaces it). Refuses what cannot apply, in one line.
Result<void> apply_shape(const ShapeArgs& a, const std::string& loss, NetFaults& net);

// "10mbit", "1.5gbit", "800kbit", "1mbps" (bytes), as tc writes rates -> bytes per second.
Result<uint64_t> parse_rate(std::string_view text, std::string_view flag);
std::string format_rate(uint64_t bytes_per_s);  // 1250000 -> "10mbit"

// --dns-name: "example.com", ".example.com" or "example.com." -> the DNS wire form in lower
// case ("\7example\3com\0"), for the program to compare a query's name's tail with.
Result<std::string> dns_wire_name(const std::string& name);
std::string dns_rcode_name(uint32_t rcode);  // 3 -> "nxdomain", TARDY_DNS_TIMEOUT -> "timeout"

// The jitter distribution's name and back; names() lists them for errors and help.
std::string dist_name(uint32_t dist);
// The inverse cumulative function of a distribution as netem's tables hold it: TARDY_DIST_SIZE
// values in units of jitter / TARDY_DIST_SCALE, computed the way iproute2's generators do.
std::vector<int16_t> dist_table(uint32_t dist);

// The parts of describe(NetFaults) for the shapes, e.g. " in bursts of 4" after the loss.
std::string describe_loss(const NetFaults& f);
std::string describe_shape(const NetFaults& f);  // ", duplicate 1%, reorder 25%, rate 10mbit"
void shape_to_json(nlohmann::json& j, const NetFaults& f);
void shape_from_json(const nlohmann::json& j, NetFaults& f);

}  // namespace tardy
