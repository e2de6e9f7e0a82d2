// SPDX-License-Identifier: Apache-2.0
#include "loader/stall_object.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "sys/fd.hpp"
#include "loader/generation.hpp"
#include "loader/percpu.hpp"
#include "loader/pinned.hpp"
#include "stall.skel.h"

namespace tardy {
namespace {

int on_event(void* ctx, void* data, size_t size) {
    auto* self = static_cast<std::function<void(const tardy_stall_event&)>*>(ctx);
    if (size >= sizeof(tardy_stall_event) && *self) (*self)(*static_cast<const tardy_stall_event*>(data));
    return 0;
}

}  // namespace

Result<std::unique_ptr<StallObject>> StallObject::load(const std::string& pin_dir, uint64_t rng_seed, bool walk_always) {
    std::unique_ptr<StallObject> o(new StallObject());
    LIBBPF_OPTS(bpf_object_open_opts, oo);
    if (!pin_dir.empty()) oo.pin_root_path = pin_dir.c_str();
    o->skel_ = tardy_stall__open_opts(&oo);
    if (!o->skel_) return Error::sys("open BPF object stall.bpf.o", errno);
    o->skel_->rodata->cfg_rng_seed = rng_seed;
    o->skel_->rodata->cfg_walk_always = walk_always;
    // The calls whose address argument a filtered stall reads (bpf/stall.bpf.c).
    o->skel_->rodata->cfg_nr_connect = SYS_connect;
    o->skel_->rodata->cfg_nr_sendto = SYS_sendto;
    if (pin_dir.empty()) {
        bpf_map__set_pin_path(o->skel_->maps.tardy_control, nullptr);
        bpf_map__set_pin_path(o->skel_->maps.tardy_stalled, nullptr);
    }
    if (int err = tardy_stall__load(o->skel_); err)
        return Error{ErrorKind::User,
                     std::string("stalls need BTF raw tracepoints, task storage and bpf_send_signal_thread; loading "
                                 "them failed: ") + std::strerror(-err) + " (see `tardy doctor`)",
                     -err};
    o->rb_ = ring_buffer__new(bpf_map__fd(o->skel_->maps.tardy_stall_events), on_event, &o->on_stop_, nullptr);
    if (!o->rb_) return Error::sys("ring buffer of stalls", errno);
    return o;
}

StallObject::~StallObject() {
    detach();
    ring_buffer__free(rb_);
    tardy_stall__destroy(skel_);
}

Result<void> StallObject::attach() {
    if (!enter_) {
        enter_ = bpf_program__attach(skel_->progs.tardy_sys_enter);
        if (!enter_) return Error::sys("attach the sys_enter tracepoint program", errno);
    }
    if (!exit_) {
        exit_ = bpf_program__attach(skel_->progs.tardy_sys_exit);
        if (!exit_) return Error::sys("attach the sys_exit tracepoint program", errno);
    }
    return ok();
}

void StallObject::detach() {
    bpf_link__destroy(enter_);
    bpf_link__destroy(exit_);
    enter_ = exit_ = nullptr;
}

Result<void> StallObject::put_rule(uint64_t cgid, const tardy_stall_rule& r) {
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tardy_stall_rules), &cgid, &r, BPF_ANY))
        return Error::sys("write stall rule", errno);
    bump_generation(control_fd());
    return ok();
}

Result<void> StallObject::delete_rule(uint64_t cgid) {
    if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.tardy_stall_rules), &cgid) && errno != ENOENT)
        return Error::sys("delete stall rule", errno);
    bump_generation(control_fd());
    return ok();
}

Result<tardy_stall_counters> StallObject::counters(uint32_t slot) const {
    return sum_percpu<tardy_stall_counters>(bpf_map__fd(skel_->maps.tardy_stall_counters), slot, [](auto& s, const auto& c) { s.seen += c.seen; s.stalled += c.stalled; }, "stall counters");
}

Result<void> StallObject::reset_counters(uint32_t slot) {
    return zero_percpu<tardy_stall_counters>(bpf_map__fd(skel_->maps.tardy_stall_counters), slot, "stall counters");
}

int StallObject::events_fd() const { return ring_buffer__epoll_fd(rb_); }

void StallObject::consume(const std::function<void(const tardy_stall_event&)>& on_stop) {
    on_stop_ = on_stop;
    ring_buffer__consume(rb_);
}

void StallObject::resume(uint32_t tgid) {
    // Forget first: if the process is stopped again at once, its new record must survive.
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.tardy_stalled), &tgid);
    kill(static_cast<pid_t>(tgid), SIGCONT);
}

Result<void> StallObject::exempt(uint32_t tgid) {
    __u8 one = 1;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tardy_exempt), &tgid, &one, BPF_ANY))
        return Error::sys("exempt process " + std::to_string(tgid) + " from stalls", errno);
    return ok();
}

int StallObject::stalled_fd() const { return bpf_map__fd(skel_->maps.tardy_stalled); }
int StallObject::control_fd() const { return bpf_map__fd(skel_->maps.tardy_control); }

namespace {

[[noreturn]] void watchdog_main(const std::string& root_procs) {
    constexpr int kPipe = 3, kControl = 4, kStalled = 5;
    prctl(PR_SET_NAME, "tardy-watchdog");
    setsid();  // out of the agent's process group
    if (!root_procs.empty()) {
        int f = open(root_procs.c_str(), O_WRONLY | O_CLOEXEC);
        if (f >= 0) {
            (void)!write(f, "0", 1);  // "0": the writing process
            close(f);
        }
    }
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) {
        (void)!write(adj, "-1000", 5);
        close(adj);
    }
    signal(SIGTERM, SIG_IGN);  // `tardy kill` ends the agent, resumes, and then we end
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    bool agent_gone = false;
    uint64_t last_lease = 0;
    for (;;) {
        if (!agent_gone) {
            pollfd p{kPipe, POLLIN, 0};
            if (poll(&p, 1, 100) > 0) {
                char c;
                agent_gone = read(kPipe, &c, 1) <= 0;  // EOF: every write end closed, the agent is gone
            }
        } else {
            timespec ts{0, 50'000'000};
            nanosleep(&ts, nullptr);
        }
        uint64_t now = mono_now_ns();
        auto c = read_control(kControl);
        bool can_stop = c && c->armed && (c->lease_deadline_ns == 0 || now < c->lease_deadline_ns);
        if (!agent_gone) {
            if (c) last_lease = c->lease_deadline_ns;
            resume_recorded(kStalled, now > kWatchdogGraceNs ? now - kWatchdogGraceNs : 0);
            continue;
        }
        // The agent is gone, but the programs it attached can still stop a process until
        // the kernel has released them and the lease it last renewed has passed: keep
        // resuming until then (a process re-entering its stalled call is stopped again).
        resume_recorded(kStalled);
        bool lease_over = !can_stop || (last_lease && now > last_lease + 100'000'000ULL);
        if (lease_over && count_recorded(kStalled) == 0) _exit(0);
    }
}

}  // namespace

Result<pid_t> start_watchdog(int control_fd, int stalled_fd, const std::string& root_procs) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return Error::sys("pipe for the watchdog", errno);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return Error::sys("fork the watchdog", errno);
    }
    if (pid == 0) {
        // Keep only the pipe and the two maps: holding the agent's lock or socket would
        // make it look like the agent.
        int c = fcntl(control_fd, F_DUPFD_CLOEXEC, 10), s = fcntl(stalled_fd, F_DUPFD_CLOEXEC, 10);
        dup2(p[0], 3);
        dup2(c, 4);
        dup2(s, 5);
        syscall(SYS_close_range, 6U, ~0U, 0U);
        watchdog_main(root_procs);
    }
    close(p[0]);
    // Moved out of the agent's cgroup by the agent too, before any stall rule exists: once
    // this returns, a kill of the agent's cgroup cannot take the watchdog with it, whether or
    // not the child has run yet (it moves itself as well, for a watchdog started otherwise).
    if (!root_procs.empty()) {
        int f = open(root_procs.c_str(), O_WRONLY | O_CLOEXEC);
        std::string id = std::to_string(pid);
        if (f >= 0) {
            (void)!write(f, id.data(), id.size());
            close(f);
        }
    }
    // The agent keeps the write end (CLOEXEC) for its lifetime: its end is our EOF.
    return pid;
}

}  // namespace tardy
