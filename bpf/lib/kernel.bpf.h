/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the programs know about the kernel that BTF cannot tell them, in one place.
 *
 * Types and fields come from BTF and are relocated by CO-RE (vmlinux.h, BPF_CORE_READ), so a
 * layout change between kernels is handled at load time. Preprocessor constants (flag bits
 * of fs.h and thread_info.h) are not in BTF: their values are written here, each with the
 * kernels it was checked against and a guard that turns the check off where the value is
 * not known to hold, so an unknown kernel loses a refinement rather than misreading a bit.
 * Syscall numbers per architecture live in user space (user/model/syscalls.cpp); attach
 * types newer than the UAPI headers in user/loader/tc_object.cpp. */
#pragma once

#include <bpf/bpf_core_read.h>

extern int LINUX_KERNEL_VERSION __kconfig; /* libbpf: from uname(), no kernel config needed */

/* include/linux/fs.h, MAY_WRITE and MAY_READ: unchanged since 2.6 (LSM file_permission). */
#define TARDY_MAY_WRITE 0x2
#define TARDY_MAY_READ 0x4

/* include/linux/fs.h, FMODE_NOACCOUNT = 1 << 29 (0x20000000) since 4.19 and still in 6.18:
 * files the kernel opens for itself (alloc_empty_file_noaccount(); since 6.6 overlayfs's
 * backing files also carry FMODE_BACKING). Checked on Debian's 6.1 and 6.12, where the
 * real file beneath an overlayfs file carries it (VmFileLab.RateAndEnd runs on overlayfs).
 * Guards: f_mode must be the 32-bit field it has always been, and the kernel 4.19 or later
 * (older kernels have no BPF LSM anyway). */
#define TARDY_FMODE_NOACCOUNT (1u << 29)

static __always_inline bool tardy_file_is_internal(struct file *file)
{
    if (!bpf_core_field_exists(file->f_mode) || bpf_core_field_size(file->f_mode) != 4)
        return false;
    if (LINUX_KERNEL_VERSION < KERNEL_VERSION(4, 19, 0))
        return false;
    return BPF_CORE_READ(file, f_mode) & TARDY_FMODE_NOACCOUNT;
}

/* A 32-bit (compat) syscall numbers its calls from another table (ia32: 4 is write, where
 * x86_64's 4 is stat), so a rule's numbers must never be matched against it. x86 marks a
 * compat syscall in progress with TS_COMPAT (0x0002 in arch/x86/include/asm/thread_info.h
 * since 4.x) in thread_info.status (in_ia32_syscall()); x32 calls carry bit 30 in their
 * number, beyond TARDY_STALL_NR_MAX. arm64 marks a 32-bit task with TIF_32BIT (bit 22) in
 * thread_info.flags. */
static __always_inline bool tardy_compat_syscall(struct task_struct *task)
{
#if defined(__TARGET_ARCH_x86)
    if (bpf_core_field_exists(task->thread_info.status))
        return BPF_CORE_READ(task, thread_info.status) & 0x0002; /* TS_COMPAT */
    return false;
#elif defined(__TARGET_ARCH_arm64)
    return BPF_CORE_READ(task, thread_info.flags) & (1UL << 22);
#else
    return true; /* unknown: stall nothing rather than the wrong call */
#endif
}
