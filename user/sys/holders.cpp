// SPDX-License-Identifier: Apache-2.0
#include "sys/holders.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace tardy {
namespace {

bool is_number(const char* s) {
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

// The map id in /proc/PID/fdinfo/FD of a BPF map fd, 0 otherwise.
uint32_t map_id_of(const std::string& fdinfo) {
    FILE* f = std::fopen(fdinfo.c_str(), "re");
    if (!f) return 0;
    char line[256];
    uint32_t id = 0;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "map_id: %u", &id) == 1) break;
    std::fclose(f);
    return id;
}

bool fd_matches(const std::string& proc_pid, const char* fd, const Holdings& h) {
    std::string link = proc_pid + "/fd/" + fd;
    if (h.lock) {
        struct stat st{};
        if (stat(link.c_str(), &st) == 0 && st.st_dev == h.lock->dev && st.st_ino == h.lock->ino) return true;
    }
    if (h.map_id) {
        char target[64];
        ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
        if (n > 0) {
            target[n] = 0;
            if (std::strcmp(target, "anon_inode:bpf-map") == 0 && map_id_of(proc_pid + "/fdinfo/" + fd) == h.map_id)
                return true;
        }
    }
    return false;
}

}  // namespace

bool holds(pid_t pid, const Holdings& h) {
    if (!h.lock && !h.map_id) return false;
    std::string base = "/proc/" + std::to_string(pid);
    DIR* d = opendir((base + "/fd").c_str());
    if (!d) return false;
    bool found = false;
    while (dirent* e = readdir(d)) {
        if (is_number(e->d_name) && fd_matches(base, e->d_name, h)) {
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

std::set<pid_t> holders(const Holdings& h) {
    std::set<pid_t> out;
    DIR* d = opendir("/proc");
    if (!d) return out;
    pid_t self = getpid();
    while (dirent* e = readdir(d)) {
        if (!is_number(e->d_name)) continue;
        pid_t pid = static_cast<pid_t>(std::atol(e->d_name));
        if (pid != self && holds(pid, h)) out.insert(pid);
    }
    closedir(d);
    return out;
}

Fd pidfd_of(pid_t pid) { return Fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))); }

bool pidfd_signal(int pidfd, int sig) { return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0; }

bool pidfd_wait_exit(int pidfd, int timeout_ms) {
    pollfd p{pidfd, POLLIN, 0};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        return r > 0;
    }
}

}  // namespace tardy
