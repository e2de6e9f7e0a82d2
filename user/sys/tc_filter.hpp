// Removing a clsact filter of tardy's by its handle and priority, without the loaded object:
// what the journal undo and an attachment's detach share.
#pragma once

#include <cstdint>

#include "model/error.hpp"

namespace tardy {

// Removes the filter (calling thread's network namespace); with destroy_hook, also the
// clsact qdisc tardy created, but only once no filter of anyone's is left on it.
Result<void> detach_clsact(int ifindex, uint32_t handle, uint32_t priority, bool destroy_hook);

}  // namespace tardy
