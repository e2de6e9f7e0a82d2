/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The file behind a syscall's fd argument, read at sys_enter (tracing programs): its kind
 * (socket or file) and whether it lies at or under a directory. CO-RE reads throughout; the
 * task reads its own fd table, which cannot be freed under it. */
#pragma once

#include <bpf/bpf_core_read.h>

#define TARDY_S_IFMT 0170000
#define TARDY_S_IFSOCK 0140000
#define TARDY_S_IFREG 0100000
#define TARDY_S_IFDIR 0040000
#define TARDY_S_IFBLK 0060000

/* files->fdt->fd[fd], NULL when fd is not open. */
static __always_inline struct file *tardy_fd_file(struct task_struct *task, long fd)
{
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    struct file **arr, *f = NULL;

    if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
        return NULL;
    arr = BPF_CORE_READ(fdt, fd);
    bpf_probe_read_kernel(&f, sizeof(f), &arr[fd]);
    return f;
}

/* enum tardy_stall_on of a file: what a slow disk slows (regular files, directories for
 * their fsync, block devices) or a socket; anything else (pipes, ttys, /dev/null) neither. */
static __always_inline __u32 tardy_file_kind(struct file *f)
{
    __u32 fmt = BPF_CORE_READ(f, f_inode, i_mode) & TARDY_S_IFMT;

    if (fmt == TARDY_S_IFSOCK)
        return TARDY_STALL_ON_SOCKETS;
    if (fmt == TARDY_S_IFREG || fmt == TARDY_S_IFDIR || fmt == TARDY_S_IFBLK)
        return TARDY_STALL_ON_FILES;
    return TARDY_STALL_ON_ANY;
}

/* Whether f is the inode (dev, ino) or lies below it: walks up the dentries as d_path() does,
 * crossing from the root of each mount to its mount point. An inode rather than a name, so
 * no string is built: bpf_d_path() is not allowed at a raw tracepoint. Reached through a bind
 * mount of the directory, the mount's root dentry is that directory and still matches. */
static __always_inline bool tardy_file_under(struct file *f, __u32 dev, __u64 ino)
{
    struct dentry *d = BPF_CORE_READ(f, f_path.dentry), *parent, *mnt_root;
    struct mount *m, *mp;

    m = (void *)BPF_CORE_READ(f, f_path.mnt) - bpf_core_field_offset(struct mount, mnt);
    for (int i = 0; i < TARDY_STALL_PATH_DEPTH && d; i++) {
        struct inode *in = BPF_CORE_READ(d, d_inode);

        if (in && BPF_CORE_READ(in, i_ino) == ino && BPF_CORE_READ(in, i_sb, s_dev) == dev)
            return true;
        parent = BPF_CORE_READ(d, d_parent);
        mnt_root = BPF_CORE_READ(m, mnt.mnt_root);
        if (d != mnt_root && d != parent) {
            d = parent;
            continue;
        }
        mp = BPF_CORE_READ(m, mnt_parent);
        if (!mp || mp == m)
            return false; /* the root of the mount tree (or a kernel-internal mount) */
        d = BPF_CORE_READ(m, mnt_mountpoint);
        m = mp;
    }
    return false;
}
