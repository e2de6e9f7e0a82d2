// SPDX-License-Identifier: Apache-2.0
#include "agent/kill.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

#include "sys/holders.hpp"
#include "sys/journal.hpp"
#include "loader/pinned.hpp"
#include "sys/run_lock.hpp"

namespace tardy {
namespace {

constexpr int kTermGraceMs = 2000;
constexpr int kRounds = 8;

bool exists(const std::string& path) {
    struct stat st{};
    return lstat(path.c_str(), &st) == 0;
}

std::string label(pid_t pid, const Holdings& h) {
    if (h.lock && holds(pid, {h.lock, 0})) return "agent " + std::to_string(pid);
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(f, comm);
    return (comm == "tardy-watchdog" ? "watchdog " : "process ") + std::to_string(pid);
}

class KillSwitch {
public:
    explicit KillSwitch(const Paths& p) : p_(p) {}

    KillReport run() {
        if (auto v = validate_paths(p_, false); !v)
            problem(v.error().message + " (doing what can still be done)");
        // A bad bpffs path leaves the run directory's steps (lock, agent, journal, socket)
        // to do; a bad run directory leaves the maps' (disarm, resume, pins).
        if (check_run_dir(p_.run_dir, false))
            run_dir_ok_ = ensure_dir(p_.run_dir).ok();  // so that the lock can be taken
        else
            problem("skipped the run directory's steps (its lock, agent, journal, socket and pid file): " +
                    p_.run_dir + " is unusable");
        // One kill at a time: a kill holds agent.lock (and, for a moment, the control map)
        // while it works, and must not be taken for an agent by another. The second waits,
        // then finds the switch pulled, or a newer agent to end.
        std::optional<RunLock> serial;
        if (run_dir_ok_) {
            auto k = RunLock::acquire(p_.kill_lock(), 20000);
            if (k)
                serial.emplace(std::move(*k));
            else
                problem(k.error().message + ": another `tardy kill` did not finish within 20s");
        }
        disarm();
        for (int round = 0; round < kRounds; round++) {
            take_lock();
            auto pids = holders(holdings());
            if (lock_ && pids.empty()) break;
            if (!lock_ && pids.empty()) {
                // Held, but by nobody in /proc: a process on its way out (a SIGKILLed agent has
                // closed its files, and the kernel releases the lock a moment later). Wait for
                // it, up to about 2 s over the rounds, instead of giving up at once (seen: kill
                // right after SIGKILL of the agent said "could not take agent.lock").
                timespec ts{0, static_cast<long>(25'000'000L << std::min(round, 4))};
                nanosleep(&ts, nullptr);
                continue;
            }
            end_processes(pids);
        }
        if (!lock_ && run_dir_ok_) problem("could not take " + p_.lock_file() + ": a new agent may start while this runs");
        resume_stalled();
        undo_journal();
        remove_files();
        verify();
        if (lock_) lock_->remove_and_release(p_.lock_file());
        if (serial) serial->remove_and_release(p_.kill_lock());
        return std::move(rep_);
    }

private:
    void problem(const std::string& s) { rep_.problems.push_back(s); }
    void done(const std::string& s) { rep_.done.push_back(s); }

    Holdings holdings() const {
        return {lock_ ? std::optional<FileId>(lock_->id()) : RunLock::identify(p_.lock_file()), control_id_};
    }

    void disarm() {
        if (!exists(p_.control_pin())) return;
        auto m = open_control_map(p_.control_pin());
        if (!m) return problem(m.error().message);
        control_id_ = m->id;
        if (auto r = write_armed(m->fd.get(), 0); !r) return problem("disarm: " + r.error().message);
        done("disarmed the control map: every program passes traffic untouched");
    }

    void take_lock() {
        if (lock_ || !run_dir_ok_) return;
        auto l = RunLock::acquire(p_.lock_file(), 0);
        if (l) {
            lock_.emplace(std::move(*l));
            return;
        }
        if (l.error().is_user() && !symlink_removed_) {
            // A symlink in our place proves nothing about whoever holds its target: remove it.
            symlink_removed_ = unlink(p_.lock_file().c_str()) == 0;
            done("removed " + p_.lock_file() + ": it was a symlink (never followed)");
        }
    }

    // Only agents and watchdogs can hold these here: other kills wait for kill.lock first.
    // SIGTERM (and SIGCONT, which a stopped agent needs to act on it) through pidfds, each
    // after proving again that the process holds the lock or the control map; SIGKILL for
    // those still there after the grace time.
    void end_processes(const std::set<pid_t>& pids) {
        Holdings h = holdings();
        std::map<pid_t, Fd> live;
        std::map<pid_t, std::string> names;
        for (pid_t pid : pids) {
            Fd fd = pidfd_of(pid);
            if (!fd.valid() || !holds(pid, h)) continue;  // gone, or not ours after all
            names[pid] = label(pid, h);
            pidfd_signal(fd.get(), SIGTERM);
            pidfd_signal(fd.get(), SIGCONT);
            live.emplace(pid, std::move(fd));
        }
        uint64_t until = mono_now_ns() + kTermGraceMs * 1'000'000ULL;
        for (auto& [pid, fd] : live) {
            uint64_t now = mono_now_ns();
            int left = now < until ? static_cast<int>((until - now) / 1'000'000) : 0;
            if (pidfd_wait_exit(fd.get(), left)) {
                done("stopped " + names[pid]);
                continue;
            }
            pidfd_signal(fd.get(), SIGKILL);
            if (pidfd_wait_exit(fd.get(), 2000))
                done("killed " + names[pid] + " (SIGKILL: it did not end on SIGTERM)");
            else
                problem(names[pid] + " is still alive after SIGKILL");
        }
    }

    void resume_stalled() {
        if (!exists(p_.stalled_pin())) return;
        auto m = open_stalled_map(p_.stalled_pin());
        if (!m) return problem(m.error().message);
        if (int n = resume_recorded(m->fd.get()); n > 0) done("resumed " + std::to_string(n) + " stalled process(es)");
        if (int left = count_recorded(m->fd.get()); left > 0)
            problem(std::to_string(left) + " stalled process(es) still recorded in " + p_.stalled_pin());
    }

    void undo_journal() {
        if (!exists(p_.journal())) return;
        Journal j(p_.journal());
        UndoSummary s = undo_all(j);
        for (const auto& d : s.undone) done(d);
        for (const auto& e : s.problems) problem(e);
        if (s.set_aside)
            done("set aside " + std::to_string(s.set_aside) + " unreadable journal entr" +
                 (s.set_aside == 1 ? "y" : "ies") + " in " + s.set_aside_path + " (nothing could be undone from them)");
    }

    void remove_pin(const std::string& pin) {
        if (!exists(pin)) return;
        if (unlink(pin.c_str()) == 0)
            done("removed pin " + pin);
        else
            problem("remove pin " + pin + ": " + std::strerror(errno));
    }

    void remove_files() {
        // A foreign map under our name is left where it is (disarm said so).
        if (control_id_ || !exists(p_.control_pin())) remove_pin(p_.control_pin());
        if (open_stalled_map(p_.stalled_pin()).ok()) remove_pin(p_.stalled_pin());
        rmdir(p_.bpffs_dir.c_str());
        if (!lock_) return;  // an agent may be starting: its socket and pid file are its own
        remove_run_file(p_.socket(), S_IFSOCK);
        remove_run_file(p_.pid_file(), S_IFREG);
    }

    // Removed only when it is what tardy makes there; a symlink (or anything else) is left
    // alone and reported: it is never followed, and not ours to remove.
    void remove_run_file(const std::string& path, mode_t type) {
        struct stat st{};
        if (lstat(path.c_str(), &st) != 0) return;
        if ((st.st_mode & S_IFMT) == type) {
            unlink(path.c_str());
            return;
        }
        std::string what = S_ISLNK(st.st_mode) ? "a symlink"
                           : type == S_IFSOCK   ? "not a socket"
                                                : "not a regular file";
        problem("left " + path + " alone: it is " + what + ", which tardy never follows or writes through; remove it");
    }

    // "clean" is a claim checked here, not assumed from the steps above.
    void verify() {
        for (pid_t pid : holders(holdings()))
            problem("process " + std::to_string(pid) + " still holds tardy's lock or control map");
        if (exists(p_.control_pin())) {
            auto m = open_control_map(p_.control_pin());
            auto c = m ? read_control(m->fd.get()) : Result<tardy_control>(m.error());
            if (c && c->armed) problem("the control map " + p_.control_pin() + " is still armed");
        }
        if (exists(p_.stalled_pin())) {
            auto m = open_stalled_map(p_.stalled_pin());
            if (m && count_recorded(m->fd.get()) > 0) problem("stopped processes are still recorded");
        }
    }

    const Paths& p_;
    KillReport rep_;
    std::optional<RunLock> lock_;
    uint32_t control_id_ = 0;
    bool symlink_removed_ = false;
    bool run_dir_ok_ = false;
};

}  // namespace

KillReport pull_kill_switch(const Paths& p) { return KillSwitch(p).run(); }

}  // namespace tardy
