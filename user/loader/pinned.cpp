// SPDX-License-Identifier: Apache-2.0
#include "loader/pinned.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace tardy {
namespace {

bool is_map_fd(int fd) {
    char target[64];
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) return false;
    target[n] = 0;
    return std::strcmp(target, "anon_inode:bpf-map") == 0;
}

Result<PinnedMap> open_pinned(const std::string& pin, const std::string& what, uint32_t type, uint32_t key_size,
                              uint32_t value_size) {
    PinnedMap m;
    m.fd = Fd(bpf_obj_get(pin.c_str()));
    if (!m.fd.valid()) return Error::sys("open " + what + " " + pin, errno);
    TARDY_TRY(check_map(m.fd.get(), what + " " + pin, type, key_size, value_size));
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(m.fd.get(), &info, &len) == 0) m.id = info.id;
    return m;
}

}  // namespace

uint64_t mono_now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + ts.tv_nsec;
}

Result<void> check_map(int fd, const std::string& what, uint32_t type, uint32_t key_size, uint32_t value_size) {
    if (!is_map_fd(fd)) return Error::other(what + " is not a BPF map; left alone");
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return Error::sys("inspect " + what, errno);
    if (info.type != type || info.key_size != key_size || info.value_size != value_size)
        return Error::other(what + " is not tardy's (map type " + std::to_string(info.type) + ", key " +
                            std::to_string(info.key_size) + " B, value " + std::to_string(info.value_size) +
                            " B); left alone");
    return ok();
}

Result<PinnedMap> open_control_map(const std::string& pin) {
    return open_pinned(pin, "control map", BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(tardy_control));
}

Result<PinnedMap> open_stalled_map(const std::string& pin) {
    return open_pinned(pin, "stalled map", BPF_MAP_TYPE_HASH, sizeof(__u32), sizeof(__u64));
}

Result<tardy_control> read_control(int map_fd) {
    __u32 key = 0;
    tardy_control c{};
    if (bpf_map_lookup_elem(map_fd, &key, &c) != 0) return Error::sys("read the control map", errno);
    return c;
}

Result<void> write_armed(int map_fd, uint32_t armed) {
    auto c = read_control(map_fd);
    if (!c) return c.error();
    c->armed = armed;
    __u32 key = 0;
    if (bpf_map_update_elem(map_fd, &key, &*c, BPF_ANY) != 0) return Error::sys("write the control map", errno);
    return ok();
}

int resume_recorded(int fd, uint64_t due_before_ns) {
    std::vector<std::pair<__u32, __u64>> due;
    __u32 key = 0, next = 0;
    void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        __u64 d = 0;
        if (bpf_map_lookup_elem(fd, &next, &d) == 0) due.emplace_back(next, d);
        key = next;
        prev = &key;
    }
    int n = 0;
    for (auto [tgid, d] : due) {
        if (d >= due_before_ns) continue;
        // Forget first: a new stop of the same process records itself again after this.
        bpf_map_delete_elem(fd, &tgid);
        kill(static_cast<pid_t>(tgid), SIGCONT);
        n++;
    }
    return n;
}

int count_recorded(int fd) {
    int n = 0;
    __u32 key = 0, next = 0;
    void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0 && n < 1'000'000) {
        n++;
        key = next;
        prev = &key;
    }
    return n;
}

int resume_overdue(const std::string& stalled_pin, uint64_t grace_ns) {
    if (access(stalled_pin.c_str(), F_OK) != 0) return 0;
    auto m = open_stalled_map(stalled_pin);
    if (!m) return 0;
    uint64_t now = mono_now_ns();
    return now > grace_ns ? resume_recorded(m->fd.get(), now - grace_ns) : 0;
}

}  // namespace tardy
