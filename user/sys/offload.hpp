// SPDX-License-Identifier: Apache-2.0
// A device's transmit checksum offload, turned off while --corrupt runs on a veth (or netkit)
// device: such a device hands a packet whose checksum is left to finish (CHECKSUM_PARTIAL)
// to its peer unfinished, and the receiver trusts it, so a damaged checksum would go
// unnoticed (bpf/lib/corrupt.bpf.h). Without the offload the stack finishes every checksum
// in software before the device, and the receiver checks it. Other devices (a NIC) finish
// the checksum themselves: nothing to change there.
//
// The features are the kernel's "tx-checksum-*" ones, found by name (ETH_SS_FEATURES), so
// exactly those that were on are turned off and, later, on again; nothing else is touched.
// Each call acts in the calling thread's network namespace, through SIOCETHTOOL.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/error.hpp"

namespace tardy {

// Feature bits, one 32-bit word per ethtool features block.
struct TxCsumBits {
    std::vector<uint32_t> words;
    bool empty() const;
    std::string encode() const;  // "w0,w1" in hex: the journal's data
    static Result<TxCsumBits> decode(const std::string& text);
};

// The tx-checksum features of ifname that are wanted on, when ifname is a device that passes
// packets on without finishing their checksums (veth, netkit); empty otherwise.
Result<TxCsumBits> tx_csum_to_turn_off(const std::string& ifname);
// Turns those features off (on = false) or back on.
Result<void> set_tx_csum(const std::string& ifname, const TxCsumBits& bits, bool on);
// Whether any tx-checksum feature of ifname is active (for tests and doctor).
Result<bool> tx_csum_active(const std::string& ifname);

}  // namespace tardy
