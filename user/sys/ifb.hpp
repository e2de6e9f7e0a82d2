// SPDX-License-Identifier: Apache-2.0
// The ifb device that holds delayed ingress packets (bpf/tc.bpf.c tardy_tc_ingress): one per
// network namespace, always at TARDY_IFB_IFINDEX and named TARDY_IFB_NAME, with fq as root
// qdisc. Each call acts in the calling thread's network namespace.
#pragma once

#include "model/error.hpp"

namespace tardy {

// Creates the ifb (up, fq as root qdisc). An existing device at that index or with that name
// that is not ours is an error naming it; ours already there is reused (*created false).
Result<void> create_ifb(bool* created);
// Deletes the ifb when the device at that index is ours (kind ifb, our name); true when it
// was there.
Result<bool> delete_ifb();

}  // namespace tardy
