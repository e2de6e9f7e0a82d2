// SPDX-License-Identifier: Apache-2.0
// Network namespaces: found from a target's processes or by name, entered per thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "sys/fd.hpp"

namespace tardy {

struct NetnsRef {
    uint64_t ino = 0;   // the namespace's identity (nsfs inode)
    std::string path;   // how to open it: /proc/PID/ns/net or /run/netns/NAME
};

// One reference per distinct namespace among these processes (vanished ones are skipped).
std::vector<NetnsRef> netns_of_pids(const std::vector<pid_t>& pids);

// "NAME" (as `ip netns` names it, under /run/netns) or an absolute path to an nsfs file.
Result<NetnsRef> netns_by_name(const std::string& name_or_path);

// Opens a namespace and checks it is still the one recorded.
Result<Fd> open_netns(const NetnsRef& ref);

// Finds a way into a namespace known only by inode: a process in it or a name under
// /run/netns. Error when none is left (then nothing in it survived either).
Result<Fd> find_netns(uint64_t ino);

uint64_t current_netns_ino();

// Runs fn on a fresh thread that has entered the namespace, so the caller's stays as is.
Result<void> in_netns(int nsfd, const std::function<Result<void>()>& fn);

struct NetDevice {
    int ifindex = 0;
    std::string name;
    bool loopback = false;
};
std::vector<NetDevice> list_devices();  // of the calling thread's namespace

}  // namespace tardy
