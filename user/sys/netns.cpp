// SPDX-License-Identifier: Apache-2.0
#include "sys/netns.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

namespace fs = std::filesystem;

namespace tardy {
namespace {

uint64_t ino_of(const std::string& path) {
    struct stat st{};
    return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

}  // namespace

std::vector<NetnsRef> netns_of_pids(const std::vector<pid_t>& pids) {
    std::vector<NetnsRef> out;
    std::set<uint64_t> seen;
    for (pid_t p : pids) {
        std::string path = "/proc/" + std::to_string(p) + "/ns/net";
        uint64_t ino = ino_of(path);
        if (ino && seen.insert(ino).second) out.push_back({ino, path});
    }
    return out;
}

Result<NetnsRef> netns_by_name(const std::string& n) {
    std::string path = n.find('/') == std::string::npos ? "/run/netns/" + n : n;
    uint64_t ino = ino_of(path);
    if (!ino)
        return Error::user("--netns '" + n + "': no such network namespace; see `ip netns list` or give a path like /proc/PID/ns/net");
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::user("--netns '" + n + "': cannot open it: " + std::strerror(errno));
    // setns() with CLONE_NEWNET accepts only a network namespace file.
    if (!in_netns(fd.get(), [] { return ok(); }))
        return Error::user("--netns '" + n + "': not a network namespace file");
    return NetnsRef{ino, path};
}

Result<Fd> open_netns(const NetnsRef& ref) {
    Fd fd(open(ref.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::sys("open network namespace " + ref.path, errno);
    struct stat st{};
    if (fstat(fd.get(), &st) != 0 || st.st_ino != ref.ino)
        return Error::other("network namespace " + ref.path + " changed (its process exited?); try again");
    return fd;
}

Result<Fd> find_netns(uint64_t ino) {
    std::error_code ec;
    if (fs::exists("/run/netns", ec)) {
        for (const auto& e : fs::directory_iterator("/run/netns", ec)) {
            if (ino_of(e.path()) == ino) return open_netns({ino, e.path()});
        }
    }
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        std::string name = e.path().filename();
        if (name.empty() || name[0] < '0' || name[0] > '9') continue;
        std::string p = e.path().string() + "/ns/net";
        if (ino_of(p) == ino) {
            auto fd = open_netns({ino, p});
            if (fd) return fd;
        }
    }
    return Error::other("network namespace " + std::to_string(ino) + " is gone");
}

uint64_t current_netns_ino() { return ino_of("/proc/thread-self/ns/net"); }

Result<void> in_netns(int nsfd, const std::function<Result<void>()>& fn) {
    Result<void> r = ok();
    std::thread t([&] {
        // unshare(CLONE_FS) is not needed: only the network namespace changes, per thread.
        if (setns(nsfd, CLONE_NEWNET) != 0) {
            r = Error::sys("enter network namespace", errno);
            return;
        }
        r = fn();
    });
    t.join();
    return r;
}

std::vector<NetDevice> list_devices() {
    std::vector<NetDevice> out;
    struct if_nameindex* ifs = if_nameindex();
    if (!ifs) return out;
    Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    for (auto* i = ifs; i->if_index; ++i) {
        NetDevice d{static_cast<int>(i->if_index), i->if_name, false};
        struct ifreq ifr{};
        std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", i->if_name);
        // The socket lives in the calling thread's namespace, like the names.
        if (sock.valid() && ioctl(sock.get(), SIOCGIFFLAGS, &ifr) == 0)
            d.loopback = ifr.ifr_flags & IFF_LOOPBACK;
        out.push_back(d);
    }
    if_freenameindex(ifs);
    return out;
}

}  // namespace tardy
