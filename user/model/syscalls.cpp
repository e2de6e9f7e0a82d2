#include "model/syscalls.hpp"

#include <sys/syscall.h>

namespace tardy {
namespace {

struct Sys {
    const char* name;
    long nr;
};
const Sys kSyscalls[] = {
    {"read", SYS_read},         {"write", SYS_write},       {"pread64", SYS_pread64},   {"pwrite64", SYS_pwrite64},
    {"readv", SYS_readv},       {"writev", SYS_writev},     {"open", SYS_open},         {"openat", SYS_openat},
    {"close", SYS_close},       {"fsync", SYS_fsync},       {"fdatasync", SYS_fdatasync}, {"connect", SYS_connect},
    {"accept", SYS_accept},     {"accept4", SYS_accept4},   {"sendto", SYS_sendto},     {"recvfrom", SYS_recvfrom},
    {"sendmsg", SYS_sendmsg},   {"recvmsg", SYS_recvmsg},   {"poll", SYS_poll},         {"epoll_wait", SYS_epoll_wait},
    {"nanosleep", SYS_nanosleep}, {"getpid", SYS_getpid},   {"stat", SYS_stat},         {"unlink", SYS_unlink},
    {"rename", SYS_rename},     {"mkdir", SYS_mkdir},       {"futex", SYS_futex},       {"socket", SYS_socket},
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
