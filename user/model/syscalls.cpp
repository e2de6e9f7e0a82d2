// SPDX-License-Identifier: Apache-2.0
#include "model/syscalls.hpp"

#include <sys/syscall.h>

#include "model/tardy_abi.hpp"

namespace tardy {
namespace {

// Only the syscalls the build's architecture has: arm64, for one, has no open, stat, unlink,
// rename, mkdir, poll or epoll_wait (libc uses the *at and p* forms there).
struct Sys {
    const char* name;
    long nr;
};
#define TARDY_SYS(n) {#n, SYS_##n},
const Sys kSyscalls[] = {
#ifdef SYS_read
    TARDY_SYS(read) TARDY_SYS(readv) TARDY_SYS(pread64) TARDY_SYS(preadv) TARDY_SYS(preadv2)
    TARDY_SYS(write) TARDY_SYS(writev) TARDY_SYS(pwrite64) TARDY_SYS(pwritev) TARDY_SYS(pwritev2)
    TARDY_SYS(openat) TARDY_SYS(openat2) TARDY_SYS(close) TARDY_SYS(newfstatat) TARDY_SYS(statx)
    TARDY_SYS(fsync) TARDY_SYS(fdatasync) TARDY_SYS(sync_file_range) TARDY_SYS(ftruncate) TARDY_SYS(fallocate)
    TARDY_SYS(io_uring_enter) TARDY_SYS(connect) TARDY_SYS(accept4) TARDY_SYS(sendto) TARDY_SYS(recvfrom)
    TARDY_SYS(sendmsg) TARDY_SYS(recvmsg) TARDY_SYS(sendmmsg) TARDY_SYS(recvmmsg) TARDY_SYS(socket)
    TARDY_SYS(ppoll) TARDY_SYS(epoll_pwait) TARDY_SYS(epoll_pwait2) TARDY_SYS(clock_nanosleep)
    TARDY_SYS(getpid) TARDY_SYS(futex) TARDY_SYS(unlinkat) TARDY_SYS(renameat) TARDY_SYS(renameat2)
    TARDY_SYS(mkdirat)
#endif
#ifdef SYS_open  // the older forms, absent on arm64 and riscv
    TARDY_SYS(open) TARDY_SYS(creat) TARDY_SYS(stat) TARDY_SYS(lstat) TARDY_SYS(fstat) TARDY_SYS(accept)
    TARDY_SYS(poll) TARDY_SYS(epoll_wait) TARDY_SYS(nanosleep) TARDY_SYS(unlink) TARDY_SYS(rename)
    TARDY_SYS(mkdir)
#endif
};
#undef TARDY_SYS

// A --stall name and the syscalls it covers (those of them this architecture has).
struct StallName {
    const char* name;
    std::vector<const char*> members;
    bool fd_first;
};
const StallName kStallNames[] = {
    {"read", {"read", "readv", "pread64", "preadv", "preadv2"}, true},
    {"write", {"write", "writev", "pwrite64", "pwritev", "pwritev2"}, true},
    {"readv", {"readv"}, true}, {"pread64", {"pread64"}, true}, {"preadv", {"preadv"}, true},
    {"preadv2", {"preadv2"}, true}, {"writev", {"writev"}, true}, {"pwrite64", {"pwrite64"}, true},
    {"pwritev", {"pwritev"}, true}, {"pwritev2", {"pwritev2"}, true},
    {"fsync", {"fsync"}, true}, {"fdatasync", {"fdatasync"}, true},
    {"sync_file_range", {"sync_file_range"}, true},
    {"flush", {"fsync", "fdatasync", "sync_file_range"}, true},
    {"ftruncate", {"ftruncate"}, true}, {"fallocate", {"fallocate"}, true}, {"close", {"close"}, true},
    {"connect", {"connect"}, true}, {"accept", {"accept", "accept4"}, true}, {"accept4", {"accept4"}, true},
    {"send", {"sendto", "sendmsg", "sendmmsg"}, true}, {"recv", {"recvfrom", "recvmsg", "recvmmsg"}, true},
    {"sendto", {"sendto"}, true}, {"sendmsg", {"sendmsg"}, true}, {"recvfrom", {"recvfrom"}, true},
    {"recvmsg", {"recvmsg"}, true},
    {"open", {"open", "openat", "openat2", "creat"}, false}, {"openat", {"openat"}, false},
    {"openat2", {"openat2"}, false},
    {"stat", {"stat", "lstat", "fstat", "newfstatat", "statx"}, false},
    {"newfstatat", {"newfstatat"}, false}, {"statx", {"statx"}, false},
    {"nanosleep", {"nanosleep", "clock_nanosleep"}, false}, {"sleep", {"nanosleep", "clock_nanosleep"}, false},
    {"clock_nanosleep", {"clock_nanosleep"}, false},
    {"poll", {"poll", "ppoll"}, false}, {"epoll_wait", {"epoll_wait", "epoll_pwait", "epoll_pwait2"}, false},
    {"io_uring_enter", {"io_uring_enter"}, false}, {"futex", {"futex"}, false},
    {"socket", {"socket"}, false}, {"getpid", {"getpid"}, false},
    {"unlink", {"unlink", "unlinkat"}, false}, {"rename", {"rename", "renameat", "renameat2"}, false},
    {"mkdir", {"mkdir", "mkdirat"}, false},
};

// Names that are real syscalls but that a libc does not call for what they are named after.
struct Refused {
    const char* name;
    const char* use;
};
const Refused kRefused[] = {
    {"fstat", "glibc calls newfstatat for fstat, stat and lstat alike; use stat (stat, lstat, fstat, newfstatat, "
              "statx)"},
    {"lstat", "glibc calls newfstatat for fstat, stat and lstat alike; use stat (stat, lstat, fstat, newfstatat, "
              "statx)"},
    {"creat", "glibc calls openat for creat and open; use open (open, openat, openat2, creat)"},
    {"ppoll", "use poll (poll, ppoll)"},
    {"epoll_pwait", "use epoll_wait (epoll_wait, epoll_pwait, epoll_pwait2)"},
    {"pread", "the syscall is pread64; or read for every read-like call"},
    {"pwrite", "the syscall is pwrite64; or write for every write-like call"},
};

}  // namespace

long syscall_number(const std::string& name) {
    for (const auto& s : kSyscalls)
        if (name == s.name) return s.nr;
    return -1;
}

const char* syscall_name(long nr) {
    for (const auto& s : kSyscalls)
        if (nr == s.nr) return s.name;
    return "?";
}

std::string stall_names() {
    std::string out;
    for (const auto& n : kStallNames) out += (out.empty() ? "" : ", ") + std::string(n.name);
    return out;
}

Result<StallSyscalls> stall_syscalls(const std::string& name) {
    for (const auto& r : kRefused)
        if (name == r.name) return Error::user("--stall " + name + ": would never fire for a glibc program; " + r.use);
    for (const auto& n : kStallNames) {
        if (name != n.name) continue;
        StallSyscalls s{n.name, {}, n.fd_first};
        for (const char* m : n.members)
            if (long nr = syscall_number(m); nr >= 0 && nr < TARDY_STALL_NR_MAX) s.nrs.push_back(nr);
        if (s.nrs.empty()) break;  // none on this architecture
        return s;
    }
    return Error::user("--stall " + name + ": unknown or unsupported syscall; use one of " + stall_names());
}

}  // namespace tardy
