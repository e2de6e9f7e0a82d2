// SPDX-License-Identifier: Apache-2.0
// The fault backends: packets at TC, socket calls at cgroup hooks, file calls at BPF LSM
// hooks, and syscall stalls (with their resumer). Each loads its BPF object on first use.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <vector>

#include "agent/backend.hpp"
#include "agent/devices.hpp"
#include "loader/file_object.hpp"
#include "loader/sock_object.hpp"
#include "loader/stall_object.hpp"
#include "loader/tc_object.hpp"
#include "sys/fd.hpp"
#include "sys/paths.hpp"

namespace tardy {

struct BackendEnv {
    const Paths& paths;
    uint64_t rng_seed;
    TcObject& tc;  // also holds the control map every backend's programs read
};

class TcBackend : public Backend {
public:
    TcBackend(BackendEnv env, DeviceManager& devices) : env_(env), devices_(devices) {}
    const char* name() const override { return "packets"; }
    bool used_by(const Injection& inj) const override { return inj.net.any(); }
    bool shares_cgroup() const override { return true; }  // up to TARDY_RULES_PER_CGROUP
    Result<void> add(Injection& inj) override;
    Result<void> remove(Injection& inj) override;
    Result<void> update(const Injection& inj, const Injection& next) override;
    void count(const Injection& inj, FaultCounters& c) const override;

private:
    Result<void> take_devices(Injection& inj);
    void release_devices(Injection& inj);
    static tardy_rule make_rule(const Injection& inj, const tardy_filter& filter);
    // Writes the cgroup's rule set as sets_ has it (deletes it when empty).
    Result<void> write_set(uint64_t cgid);
    void forget(const Injection& inj);  // its slot out of sets_
    // Links the ingress program to the topmost cgroups that have ingress rules, and unlinks
    // it from the others: on a cgroup and its ancestor it would run twice for one packet.
    Result<void> link_ingress();
    BackendEnv env_;
    DeviceManager& devices_;
    struct SetEntry {
        uint32_t slot;
        bool parse;    // the rule filters, draws flows or looks for SYN: its set must read headers
        bool ingress;  // the rule applies to received packets
    };
    std::map<uint64_t, std::vector<SetEntry>> sets_;  // cgroup id -> its rules, oldest first
    std::map<uint64_t, std::string> cg_paths_;        // cgroup id -> its directory, for sets_
    std::map<uint64_t, CgroupLink> ingress_links_;    // cgroup id -> the ingress program's link
    uint32_t next_seed_ = 0;
};

class SockBackend : public Backend {
public:
    explicit SockBackend(BackendEnv env) : env_(env) {}
    const char* name() const override { return "socket calls"; }
    bool used_by(const Injection& inj) const override { return inj.sock.any(); }
    Result<void> add(Injection& inj) override;
    Result<void> remove(Injection& inj) override;
    Result<void> update(const Injection& inj, const Injection& next) override;
    void count(const Injection& inj, FaultCounters& c) const override;

private:
    BackendEnv env_;
    std::unique_ptr<SockObject> obj_;
};

class FileBackend : public Backend {
public:
    explicit FileBackend(BackendEnv env) : env_(env) {}
    const char* name() const override { return "file calls"; }
    bool used_by(const Injection& inj) const override { return inj.sock.any_file(); }
    Result<void> add(Injection& inj) override;
    Result<void> remove(Injection& inj) override;
    Result<void> update(const Injection& inj, const Injection& next) override;
    void unused() override;
    void count(const Injection& inj, FaultCounters& c) const override;

private:
    BackendEnv env_;
    std::unique_ptr<FileObject> obj_;
};

// Stalls and their resumer: the ring buffer of stops, a timer at the next due time, and the
// watchdog that resumes what the agent does not (stall_object.hpp).
class StallBackend : public Backend {
public:
    explicit StallBackend(BackendEnv env);
    const char* name() const override { return "stalls"; }
    bool used_by(const Injection& inj) const override { return !inj.stalls.empty(); }
    Result<void> add(Injection& inj) override;
    Result<void> remove(Injection& inj) override;
    Result<void> update(const Injection& inj, const Injection& next) override;
    void unused() override;
    void count(const Injection& inj, FaultCounters& c) const override;

    int events_fd() const { return obj_ ? obj_->events_fd() : -1; }
    int timer_fd() const { return timer_.get(); }
    void on_events();
    void on_timer();

private:
    Result<void> load();
    void arm_timer();
    void resume_all();
    BackendEnv env_;
    std::unique_ptr<StallObject> obj_;
    std::multimap<uint64_t, uint32_t> resumes_;  // due (CLOCK_MONOTONIC ns) -> tgid
    Fd timer_;
    pid_t watchdog_ = 0;
};

}  // namespace tardy
