// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Feature probes for `tardy doctor`: loading this object says whether the kernel lets us
 * load trampoline programs (fentry, and with it BPF LSM programs). Never attached. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* bpf_fentry_test1 exists for BPF's own self-tests in every kernel since 5.5. */
SEC("fentry/bpf_fentry_test1")
int tardy_probe_fentry(__u64 *ctx)
{
    (void)ctx;
    return 0;
}
