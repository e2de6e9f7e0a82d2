#include "model/syscalls.hpp"

#include <sys/syscall.h>

namespace tardy {
namespace {

// Only the syscalls the build's architecture has: arm64, for one, has no open, stat, unlink,
// rename, mkdir, poll or epoll_wait (libc uses the *at and p* forms there).
struct Sys {
    const char* name;
    long nr;
};
const Sys kSyscalls[] = {
#ifdef SYS_read
    {"read", SYS_read},
#endif
#ifdef SYS_write
    {"write", SYS_write},
#endif
#ifdef SYS_pread64
    {"pread64", SYS_pread64},
#endif
#ifdef SYS_pwrite64
    {"pwrite64", SYS_pwrite64},
#endif
#ifdef SYS_readv
    {"readv", SYS_readv},
#endif
#ifdef SYS_writev
    {"writev", SYS_writev},
#endif
#ifdef SYS_open
    {"open", SYS_open},
#endif
#ifdef SYS_openat
    {"openat", SYS_openat},
#endif
#ifdef SYS_close
    {"close", SYS_close},
#endif
#ifdef SYS_fsync
    {"fsync", SYS_fsync},
#endif
#ifdef SYS_fdatasync
    {"fdatasync", SYS_fdatasync},
#endif
#ifdef SYS_connect
    {"connect", SYS_connect},
#endif
#ifdef SYS_accept
    {"accept", SYS_accept},
#endif
#ifdef SYS_accept4
    {"accept4", SYS_accept4},
#endif
#ifdef SYS_sendto
    {"sendto", SYS_sendto},
#endif
#ifdef SYS_recvfrom
    {"recvfrom", SYS_recvfrom},
#endif
#ifdef SYS_sendmsg
    {"sendmsg", SYS_sendmsg},
#endif
#ifdef SYS_recvmsg
    {"recvmsg", SYS_recvmsg},
#endif
#ifdef SYS_poll
    {"poll", SYS_poll},
#endif
#ifdef SYS_epoll_wait
    {"epoll_wait", SYS_epoll_wait},
#endif
#ifdef SYS_nanosleep
    {"nanosleep", SYS_nanosleep},
#endif
#ifdef SYS_getpid
    {"getpid", SYS_getpid},
#endif
#ifdef SYS_stat
    {"stat", SYS_stat},
#endif
#ifdef SYS_unlink
    {"unlink", SYS_unlink},
#endif
#ifdef SYS_rename
    {"rename", SYS_rename},
#endif
#ifdef SYS_mkdir
    {"mkdir", SYS_mkdir},
#endif
#ifdef SYS_futex
    {"futex", SYS_futex},
#endif
#ifdef SYS_socket
    {"socket", SYS_socket},
#endif
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

}  // namespace tardy
