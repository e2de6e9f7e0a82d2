// SPDX-License-Identifier: Apache-2.0
// The agent's life: start (lock, recovery, load, listen, arm), the event loop, the end.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/core.hpp"
#include "agent/metrics_http.hpp"
#include "agent/server.hpp"
#include "loader/pinned.hpp"
#include "model/request.hpp"
#include "sys/fd.hpp"
#include "sys/run_lock.hpp"

using nlohmann::json;

namespace tardy {
namespace {

// Undo what a previous agent left behind (it died without cleaning up).
void recover_journal(const Paths& p) {
    Journal j(p.journal());
    UndoSummary s = undo_all(j);
    for (const auto& d : s.undone) log("journal: " + d);
    for (const auto& e : s.problems) log("journal: " + e);
    if (s.set_aside) log("journal: set aside " + std::to_string(s.set_aside) + " unreadable entries in " + s.set_aside_path);
}

// The agent's log is its stderr (spawn_agent points it at agent.log): capped by moving it to
// agent.log.1 once it passes the cap (checked on every tick), so a long-lived agent cannot
// fill the disk: about twice the cap on disk at most. The cap is 4 MiB; TARDY_LOG_CAP_BYTES
// overrides it, for tests only (tests/integration/state_files_test.cpp), so that they need
// not write megabytes. It is not documented for users.
off_t log_cap() {
    static const off_t cap = [] {
        const char* env = std::getenv("TARDY_LOG_CAP_BYTES");
        char* end = nullptr;
        long long v = env ? std::strtoll(env, &end, 10) : 0;
        return env && *env && end && *end == '\0' && v > 0 ? static_cast<off_t>(v) : off_t{4} << 20;
    }();
    return cap;
}

void cap_log(const Paths& p) {
    struct stat st{}, log_st{};
    if (fstat(2, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < log_cap()) return;
    // Still our file, not a symlink put in its place: the rename below moves a name, never a target.
    if (lstat(p.log().c_str(), &log_st) != 0 || log_st.st_ino != st.st_ino || log_st.st_dev != st.st_dev) return;
    if (rename(p.log().c_str(), (p.log() + ".1").c_str()) != 0) return;
    int fd = open(p.log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    log("log moved to " + p.log() + ".1 at " + std::to_string(st.st_size) + " bytes");
}

// Tells the process that started us (spawn_agent) how the start went: "ready" or
// "error user|system MESSAGE", one line, then closes.
class StartStatus {
public:
    explicit StartStatus(int fd) : fd_(fd) {}
    ~StartStatus() { close_fd(); }
    void ready() { say("ready"); }
    int fail(const Error& e) {
        log(e.message);
        say(std::string("error ") + (e.is_user() ? "user " : "system ") + e.message);
        return e.is_user() ? 2 : 1;
    }

private:
    void say(const std::string& line) {
        if (fd_ < 0) return;
        std::string l = line + "\n";
        (void)!write(fd_, l.data(), l.size());
        close_fd();
    }
    void close_fd() {
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }
    int fd_;
};

// What the agent made in the file system, removed on every way out.
struct RunFiles {
    const Paths& p;
    bool pins = false, socket = false, pid = false;
    ~RunFiles() {
        if (pins) {
            unlink(p.control_pin().c_str());
            unlink(p.stalled_pin().c_str());
            rmdir(p.bpffs_dir.c_str());
        }
        if (socket) unlink(p.socket().c_str());
        if (pid) unlink(p.pid_file().c_str());
    }
};

// agent.pid, for people and scripts (kill never trusts it). A stale regular file is replaced;
// a symlink or anything else is refused with one line in the log, never followed or written
// through (issue 7). O_EXCL: nothing planted between the unlink and the open is opened either.
bool write_pid_file(const std::string& path) {
    struct stat st{};
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            log("not writing " + path + ": it is " + (S_ISLNK(st.st_mode) ? "a symlink" : "not a regular file") +
                ", which tardy never follows or writes through; remove it");
            return false;
        }
        unlink(path.c_str());
    }
    Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd.valid()) {
        log("not writing " + path + ": " + std::strerror(errno));
        return false;
    }
    std::string line = std::to_string(getpid()) + "\n";
    if (write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        log("write " + path + ": " + std::strerror(errno));
    return true;  // ours now, whatever it holds: removed when the agent ends
}

// Resumes what an earlier agent left stopped and recorded: before anything else.
void resume_left_stopped(const Paths& p) {
    auto m = open_stalled_map(p.stalled_pin());
    if (!m) return;
    if (int n = resume_recorded(m->fd.get()); n > 0)
        log("resumed " + std::to_string(n) + " process(es) an earlier agent left stopped");
}

}  // namespace

int run_agent(const AgentOptions& o) {
    const Paths& p = o.paths;
    StartStatus status(o.status_fd);
    if (auto v = validate_paths(p); !v) return status.fail(v.error());
    if (auto r = ensure_dir(p.run_dir); !r) return status.fail(r.error());
    auto lock = RunLock::acquire(p.lock_file());
    if (!lock) {
        if (lock.error().err == EWOULDBLOCK)
            return status.fail(Error::other("another agent (or `tardy kill`) holds " + p.lock_file()));
        return status.fail(lock.error());
    }
    // Released last, after every file below is gone: the next agent finds a clean slate.
    struct LockGuard {
        RunLock& lock;
        const std::string& path;
        ~LockGuard() { lock.remove_and_release(path); }
    } lock_guard{*lock, p.lock_file()};
    resume_left_stopped(p);
    recover_journal(p);
    if (auto r = ensure_bpffs_dir(p.bpffs_dir); !r) return status.fail(r.error());
    RunFiles files{p};
    files.pins = true;
    auto obj = TcObject::load({p.bpffs_dir, o.rng_seed, /*only_attachable=*/true, /*lazy_ingress=*/true});
    if (!obj) return status.fail(obj.error());
    Agent agent(o, std::move(*obj));

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    Fd sfd(signalfd(-1, &mask, SFD_CLOEXEC));
    Fd tfd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
    itimerspec its{{0, 100'000'000}, {0, 100'000'000}};  // 100 ms: expiry resolution
    timerfd_settime(tfd.get(), 0, &its, nullptr);
    Server* srv = nullptr;  // set below, before any client can be served
    auto server = Server::listen(p.socket(), [&](std::string_view line) {
        pid_t caller = srv ? srv->caller_pid() : 0;
        return handle_line(line, [&](const json& req) { return agent.handle(req, caller); });
    });
    if (!server) return status.fail(server.error());
    srv = server->get();
    // /metrics: the HTTP threads ask, the loop below renders between its other work (the
    // agent's state is the loop's alone), and hands the text back.
    MetricsBridge bridge;
    std::unique_ptr<MetricsServer> metrics;
    std::string metrics_at = o.metrics.empty() && getenv("TARDY_METRICS") ? getenv("TARDY_METRICS") : o.metrics;
    if (!metrics_at.empty()) {
        auto m = MetricsServer::start(metrics_at, [&bridge] { return bridge.ask(); });
        if (!m) return status.fail(m.error());
        metrics = std::move(*m);
        log("metrics on http://" + metrics_at + "/metrics");
    }
    files.socket = true;
    files.pid = write_pid_file(p.pid_file());
    agent.tick();
    // Armed last, after the lease is set and everything that can fail has: a fresh control
    // map is zeroed, i.e. disarmed. `tardy kill` removes the pin, so a new agent never
    // inherits a pulled switch; starting one is the explicit act of re-arming.
    agent.arm();
    log("ready on " + p.socket() + (o.exit_when_idle ? " (exits when idle)" : ""));
    status.ready();
    agent.last_activity_ns = mono_ns();  // the idle clock starts now: the caller has yet to ask

    int code = 0;
    std::vector<pollfd> fds;
    for (bool running = true; running;) {
        fds = {{sfd.get(), POLLIN, 0},
               {tfd.get(), POLLIN, 0},
               {agent.stalls().events_fd(), POLLIN, 0},
               {agent.stalls().timer_fd(), POLLIN, 0},
               {bridge.fd(), POLLIN, 0}};
        const size_t own = fds.size();
        (*server)->add_pollfds(fds);
        if (poll(fds.data(), fds.size(), (*server)->timeout_ms(mono_ns())) < 0) {
            if (errno == EINTR) continue;
            code = 1;
            break;
        }
        // Resumes first: a stalled process must not wait for anything else.
        if (fds[2].revents) agent.stalls().on_events();
        if (fds[3].revents) agent.stalls().on_timer();
        if (fds[0].revents) {
            signalfd_siginfo si{};
            (void)!read(sfd.get(), &si, sizeof si);
            log("signal " + std::to_string(si.ssi_signo) + ": ending every injection");
            running = false;
        }
        if (fds[1].revents) {
            uint64_t n;
            (void)!read(tfd.get(), &n, sizeof n);
            agent.tick();
            cap_log(p);  // an fstat per tick: nothing, and the log passes its cap by 100 ms of lines at most
            // Idle: stop taking connections, serve those already queued (below), and leave
            // once nobody is owed a reply. Closing the listener with connections still queued
            // would reset them: a request sent in the last moment read ECONNRESET.
            if (o.exit_when_idle && !(*server)->door_closed() && agent.idle() &&
                mono_ns() - agent.last_activity_ns > 2'000'000'000ULL)
                (*server)->close_door(mono_ns());
        }
        if (fds[4].revents) bridge.answer([&] { return agent.prometheus(); });
        // Clients last, and never blocking: see server.hpp.
        (*server)->service(fds.data() + own, fds.size() - own);
        (*server)->expire(mono_ns());
        if (running && (*server)->door_closed() && (*server)->clients() == 0) {
            if (agent.idle()) {
                log("no injection left; leaving");
                running = false;
            } else if (auto r = (*server)->reopen(p.socket()); r) {
                log("a request queued while it was leaving gave it work: staying");
            } else {
                log("cannot listen again (" + r.error().message + "): ending every injection");
                code = 1;
                running = false;
            }
        }
    }
    metrics.reset();  // its threads joined before the agent they ask goes
    agent.end_all();
    resume_left_stopped(p);  // the pin may hold processes of an earlier agent too
    return code;
}

}  // namespace tardy
