// SPDX-License-Identifier: Apache-2.0
// The clsact qdisc tardy's filters share with other tools (what is left on it, removed only
// when empty), and removing a clsact filter of tardy's by its handle and priority, without the loaded object:
// what the journal undo and an attachment's detach share.
#pragma once

#include <cstdint>
#include <string>

#include "model/error.hpp"

namespace tardy {

// The hooks of a clsact qdisc, as filter parents: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS) and
// TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS), i.e. ffff:fff2 and ffff:fff3.
constexpr uint32_t kClsactIngress = 0xfffffff2;
constexpr uint32_t kClsactEgress = 0xfffffff3;

// Whether the device has a clsact qdisc (kind clsact at parent ffff:fff1). Fails with err
// ENODEV when there is no such device.
Result<bool> clsact_exists(int ifindex);

// Filters on one hook of the device's clsact qdisc (parent kClsactIngress or kClsactEgress), over
// every chain. Counts what `tc filter add` makes: one per priority and protocol, however many
// nodes (u32 keys, flower masks) it holds. 0 when the device has no clsact (a plain ingress
// qdisc, also ffff:, answers for both parents); fails with err ENODEV when there is no such device.
Result<int> count_filters(int ifindex, uint32_t parent);

// Whether any filter is left on the device's clsact qdisc, ingress or egress.
Result<bool> clsact_has_filters(int ifindex);

// Deletes the device's clsact qdisc only when it exists and no filter is left on either hook;
// tells whether it did. Deleting a clsact destroys every filter on it, other tools' too. A filter
// added between the check and the delete still goes with it: the kernel has no "delete if empty",
// and one socket doing both back to back is the narrowest the window gets. Fails with err ENODEV
// when there is no such device.
Result<bool> remove_clsact_if_empty(int ifindex);


// Removes the filter (calling thread's network namespace); with destroy_hook, also the
// clsact qdisc tardy created, but only once no filter of anyone's is left on it.
// A BPF filter on the device's clsact ingress hook that is not direct-action: where the
// program returns non-zero (a match), the packet is redirected by act_mirred to the egress
// of target_ifindex (the ifb). mirred, not bpf_redirect(): a redirect from BPF reaches an
// ifb only from Linux 6.4 on (before, ifb drops it as not redirected). Undone by
// detach_clsact(..., ingress true) with the same handle and priority.
Result<void> add_ingress_redirect_filter(int ifindex, int prog_fd, const std::string& prog_name, uint32_t handle,
                                         uint32_t priority, int target_ifindex);

Result<void> detach_clsact(int ifindex, uint32_t handle, uint32_t priority, bool destroy_hook, bool ingress = false);

}  // namespace tardy
