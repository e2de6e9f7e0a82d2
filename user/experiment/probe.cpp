// SPDX-License-Identifier: Apache-2.0
// The prober child: joins a cohort's cgroup and network namespace and runs a probe at a cadence.
#include "experiment/probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

// Debian's cpp-httplib is a compiled library built with these, and they change the layout of
// its classes: the header must see what the library saw (as in agent/metrics_http.cpp).
#define CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#include <httplib.h>

#include "sys/cgroup.hpp"
#include "sys/netns.hpp"

namespace tardy {
namespace {

// The prober's name (comm), so that a second prober in the cohort skips the first and its commands.
constexpr const char* kComm = "tardy-probe";
constexpr int kStartTimeoutMs = 5000;
// Pipe protocol, one line each: "E message" (cannot join the cgroup), "N note" (netns_note),
// "R" (ready), then "P at_ns ok ms detail" per attempt.
struct Plan {
    ProbeSpec spec;
    std::string host, host_header, path = "/";  // http
    int port = 80;
    std::vector<char*> argv;  // command, prepared before any fork (points into spec.run)
};

uint64_t mono_ns() { return std::chrono::nanoseconds(std::chrono::steady_clock::now().time_since_epoch()).count(); }

timespec to_ts(uint64_t ns) { return {time_t(ns / 1'000'000'000ULL), long(ns % 1'000'000'000ULL)}; }

Error bad_url(const std::string& u, const std::string& why) {
    return Error::user("probe: url '" + u + "': " + why + "; write http://HOST[:PORT][/PATH], IPv6 http://[::1]:80/");
}

Result<void> parse_url(const std::string& u, Plan& url) {
    if (u.rfind("http://", 0) != 0) return bad_url(u, u.rfind("https://", 0) == 0 ? "no https" : "not http://");
    std::string rest = u.substr(7, u.find('#') == std::string::npos ? std::string::npos : u.find('#') - 7);
    size_t end = rest.find_first_of("/?");
    std::string hp = rest.substr(0, end);
    if (end != std::string::npos) url.path = (rest[end] == '?' ? "/" : "") + rest.substr(end);
    if (hp.find('@') != std::string::npos) return bad_url(u, "user information is not supported");
    // host: "[v6]" or up to the only colon; then ":PORT" or nothing
    bool bracketed = !hp.empty() && hp[0] == '[';
    size_t host_end = bracketed ? hp.find(']') + 1 : hp.find(':');
    if (bracketed && host_end == 0) return bad_url(u, "no ']' after the IPv6 address");
    url.host = bracketed ? hp.substr(1, host_end - 2) : hp.substr(0, host_end);
    in6_addr a{};
    if (bracketed && inet_pton(AF_INET6, url.host.c_str(), &a) != 1) return bad_url(u, "not an IPv6 address in []");
    if (url.host.empty()) return bad_url(u, "no host");
    if (host_end < hp.size()) {
        std::string port = hp.substr(host_end);
        bool digits = port.size() > 1 && port.size() <= 6 && port[0] == ':' &&
                      port.find_first_not_of("0123456789", 1) == std::string::npos;
        url.port = digits ? std::atoi(port.c_str() + 1) : 0;
        if (url.port < 1 || url.port > 65535)
            return bad_url(u, bracketed || port[0] != ':' ? "junk after the host" : "port not 1..65535 (IPv6: [])");
    }
    url.host_header = bracketed ? "[" + url.host + "]" : url.host;
    if (url.port != 80) url.host_header += ":" + std::to_string(url.port);
    return ok();
}

// execvp's rule: a name with a '/' is a path, anything else a program in PATH.
bool runnable(const std::string& cmd) {
    auto exe = [](const std::string& f) {
        std::error_code ec;
        return access(f.c_str(), X_OK) == 0 && !std::filesystem::is_directory(f, ec);
    };
    if (cmd.find('/') != std::string::npos) return exe(cmd);
    std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "/usr/local/bin:/usr/bin:/bin");
    for (std::string dir; std::getline(path, dir, ':');)
        if (exe((dir.empty() ? "." : dir) + "/" + cmd)) return true;
    return false;
}

void send_line(int fd, const std::string& text) {
    std::string line = Error::one_line(text) + '\n';
    for (size_t off = 0; off < line.size();) {
        ssize_t n = write(fd, line.data() + off, line.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(0);  // the runner is gone (EPIPE): nobody reads the results
        off += size_t(n);
    }
}

void reap(pid_t pid) { while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) continue; }

// Keeps 0-2 on /dev/null and the pipe (fd 3), none of the runner's sockets, locks, BPF objects.
int tidy_fds(int wfd) {
    if (wfd != 3 && dup3(wfd, 3, O_CLOEXEC) < 0) _exit(1);  // the old number: closed below
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; null >= 0 && fd < 3; fd++)
        if (fd != null) dup2(null, fd);
    syscall(SYS_close_range, 4U, ~0U, 0U);  // Linux 5.9; tardy needs 5.17
    return 3;
}

std::string join_hint(int e) {
    if (e == ENOENT || e == ENOTDIR) return "no such cgroup directory (give one under the cgroup2 mount)";
    if (e == EACCES || e == EPERM) return "run tardy as root";
    if (e == EBUSY) return "controllers are enabled for its children, so it takes no process: name a leaf cgroup";
    if (e == EOPNOTSUPP) return "it takes no process (a threaded cgroup's child?): name a leaf domain cgroup";
    return "is it a cgroup v2 directory?";
}

// A prober, or a command a prober runs: not a process of the cohort.
bool ours(pid_t p) {
    for (int gen = 0; gen < 2 && p > 0; gen++) {  // the process, then its parent
        std::ifstream f("/proc/" + std::to_string(p) + "/stat");
        std::string s;
        std::getline(f, s);
        size_t open = s.find('('), close = s.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close + 4 > s.size()) return false;
        if (s.compare(open + 1, close - open - 1, kComm) == 0) return true;
        p = pid_t(std::atoi(s.c_str() + close + 4));  // "(comm) S PPID"
    }
    return false;
}

// Enters the network namespace of the first process of the cohort; "" on success, else the note.
std::string enter_cohort_netns(const std::string& cg) {
    std::vector<pid_t> cohort;
    for (pid_t p : CgroupFs("").procs(Cgroup{cg, "", 0}))
        if (p != getpid() && !ours(p)) cohort.push_back(p);
    if (cohort.empty())
        return "no process in cgroup " + cg + " to take the network namespace of: probing from tardy's own";
    std::string why = "its processes exited";
    for (const NetnsRef& ref : netns_of_pids(cohort)) {
        auto fd = open_netns(ref);
        if (fd && setns(fd->get(), CLONE_NEWNET) == 0) return "";
        why = fd ? std::string("setns: ") + std::strerror(errno) : fd.error().message;
    }
    return "cannot enter the network namespace of cgroup " + cg + " (" + why + "): probing from tardy's own";
}

// httplib says only "Connection" (errno: EINPROGRESS): one more connect, within the time left, tells why.
std::string why_no_connect(const Plan& url, uint64_t deadline) {
    addrinfo hints{AI_NUMERICSERV, AF_UNSPEC, SOCK_STREAM, 0, 0, nullptr, nullptr, nullptr}, *ai = nullptr;
    if (int e = getaddrinfo(url.host.c_str(), std::to_string(url.port).c_str(), &hints, &ai); e != 0)
        return "resolve " + url.host + ": " + gai_strerror(e);
    Fd s(socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int err = !s.valid() || connect(s.get(), ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
    freeaddrinfo(ai);
    uint64_t now = mono_ns();
    pollfd p{s.get(), POLLOUT, 0};
    timespec ts = to_ts(deadline > now ? deadline - now : 0);
    socklen_t len = sizeof err;
    if (err == EINPROGRESS && ppoll(&p, 1, &ts, nullptr) == 0) return "timeout";
    if (err == EINPROGRESS) getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    return err ? std::string("connect: ") + std::strerror(err) : "connect: cannot connect";
}

void probe_http(const Plan& plan, ProbeAttempt& r) {
    httplib::Client cli(plan.host, plan.port);
    timespec t = to_ts(plan.spec.timeout_ns);
    time_t sec = t.tv_sec, usec = t.tv_nsec / 1000;
    cli.set_connection_timeout(sec, usec);
    cli.set_read_timeout(sec, usec);
    cli.set_write_timeout(sec, usec);
    cli.set_keep_alive(false);  // a fresh connection each time: connects are what faults hit
    auto res = cli.Get(plan.path.c_str(), httplib::Headers{{"Host", plan.host_header}});
    const bool late = mono_ns() - r.at_mono_ns >= plan.spec.timeout_ns;
    if (res) {
        r.ok = res->status == plan.spec.expect_status;
        r.detail = (r.ok ? "" : "status ") + std::to_string(res->status);
        return;
    }
    if (res.error() == httplib::Error::Connection)
        r.detail = why_no_connect(plan, r.at_mono_ns + plan.spec.timeout_ns);
    else
        r.detail = late || res.error() == httplib::Error::ConnectionTimeout ? "timeout"
                   : res.error() == httplib::Error::Read ? "read: the connection closed without a response"
                                                         : "http: " + httplib::to_string(res.error());
}

// Waits for the command to exit, until `deadline`; true when it did (not reaped).
bool wait_exit(pid_t c, uint64_t deadline) {
    Fd pfd(int(syscall(SYS_pidfd_open, c, 0)));  // Linux 5.3; tardy needs 5.17
    for (;;) {
        siginfo_t si{};
        if (waitid(P_PID, id_t(c), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == c) return true;
        uint64_t now = mono_ns();
        if (now >= deadline) return false;
        pollfd p{pfd.get(), POLLIN, 0};
        timespec ts = to_ts(std::min<uint64_t>(deadline - now, pfd.valid() ? ~0ULL : 1'000'000));
        ppoll(&p, 1, &ts, nullptr);
    }
}

void probe_command(const Plan& plan, int* slot, ProbeAttempt& r, uint64_t start) {
    const pid_t prober = getpid();
    pid_t c = fork();
    if (c < 0) return void(r.detail = std::string("fork: ") + std::strerror(errno));
    if (c == 0) {
        // Async-signal-safe calls only, to exec. Dies with the prober; its group is killed whole.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != prober) _exit(127);
        setpgid(0, 0);
        std::atomic_ref<int>(*slot).store(getpid());
        signal(SIGPIPE, SIG_DFL);
        execvp(plan.argv[0], plan.argv.data());
        _exit(127);
    }
    setpgid(c, c);  // both sides, so the group exists before either goes on
    std::atomic_ref<int>(*slot).store(c);
    bool exited = wait_exit(c, start + plan.spec.timeout_ns);
    if (!exited) kill(-c, SIGKILL);
    siginfo_t si{};
    while (waitid(P_PID, id_t(c), &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
    }
    // The leader is an unreaped zombie (its group id not reusable): kill what it left in the group.
    kill(-c, SIGKILL);
    std::atomic_ref<int>(*slot).store(0);
    reap(c);
    r.ok = exited && si.si_code == CLD_EXITED && si.si_status == 0;
    r.detail = !exited ? "timeout" : (si.si_code == CLD_EXITED ? "exit " : "signal ") + std::to_string(si.si_status);
}

[[noreturn]] void run_probes(const Plan& plan, int wfd, int* slot) {
    uint64_t next = mono_ns();
    for (;;) {
        timespec ts = to_ts(next);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
        ProbeAttempt r{.at_mono_ns = mono_ns(), .detail = {}};
        plan.spec.kind == "http" ? probe_http(plan, r) : probe_command(plan, slot, r, r.at_mono_ns);
        uint64_t end = mono_ns();
        r.ms = double(end - r.at_mono_ns) / 1e6;
        if (r.ok && end - r.at_mono_ns > plan.spec.timeout_ns) r = {r.at_mono_ns, false, r.ms, "timeout"};
        if (r.detail.size() > 200) r.detail.resize(200);
        char head[96];
        std::snprintf(head, sizeof head, "P %llu %d %.3f ", (unsigned long long)r.at_mono_ns, r.ok ? 1 : 0, r.ms);
        send_line(wfd, head + r.detail);
        // A steady cadence: the next slot of start + k * every that is not already past.
        next += plan.spec.every_ns;
        if (next < end) next += (end - next + plan.spec.every_ns - 1) / plan.spec.every_ns * plan.spec.every_ns;
    }
}

// The prober child. The runner forks it before starting any thread, so this is a whole single-threaded
// copy that may allocate and use cpp-httplib (after a fork from threads, a lock held could deadlock it).
[[noreturn]] void prober_main(const Plan& plan, const std::string& cg, int wfd, pid_t runner, int* slot) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != runner) _exit(0);  // the runner died before the line above
    // Its own process group: the terminal's ^C and ^Z are for the runner, which decides.
    setpgid(0, 0);
    sigset_t none;  // the runner's signal mask and handlers are its own business
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < NSIG; s++) signal(s, s == SIGPIPE ? SIG_IGN : SIG_DFL);  // EPIPE, not death
    wfd = tidy_fds(wfd);
    prctl(PR_SET_NAME, kComm);
    try {
        int fd = open((cg + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
        int e = fd < 0 ? errno : 0;
        if (fd >= 0 && write(fd, "0", 1) != 1) e = errno;
        if (fd >= 0) close(fd);
        if (e) {
            send_line(wfd, "E probe: cannot join cgroup " + cg + ": " + std::strerror(e) + "; " + join_hint(e));
            _exit(1);
        }
        std::string note = enter_cohort_netns(cg);
        if (!note.empty()) send_line(wfd, "N " + note);
        send_line(wfd, "R");
        run_probes(plan, wfd, slot);
    } catch (...) {
        _exit(1);
    }
}

}  // namespace

Result<std::unique_ptr<Prober>> Prober::start(const ProbeSpec& spec, const std::string& cgroup_path) {
    Plan plan;
    plan.spec = spec;
    plan.spec.every_ns = std::max<uint64_t>(spec.every_ns, 1'000'000);  // 0 would spin
    plan.spec.timeout_ns = std::max<uint64_t>(spec.timeout_ns, 1'000'000);
    if (spec.kind == "http") {
        if (auto url = parse_url(spec.url, plan); !url) return url.error();
    } else if (spec.kind == "command") {
        if (spec.run.empty() || spec.run[0].empty()) return Error::user("probe: a command probe needs `run`");
        if (!runnable(spec.run[0]))
            return Error::user("probe: cannot run '" + spec.run[0] + "': not an executable, nor a program in PATH");
        for (auto& a : plan.spec.run) plan.argv.push_back(a.data());
        plan.argv.push_back(nullptr);
    } else {
        return Error::user("probe: unknown kind '" + spec.kind + "' (http or command)");
    }
    // One shared int: the process group of the command running now, so the destructor can
    // kill it (and whatever it started) without asking the prober.
    void* page = mmap(nullptr, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return Error::sys("probe: mmap", errno);
    int p[2] = {-1, -1};
    const pid_t runner = getpid();
    pid_t pid = pipe2(p, O_CLOEXEC) == 0 ? fork() : -1;
    if (pid < 0) {
        Error e = Error::sys(p[0] < 0 ? "probe: pipe" : "probe: fork", errno);
        if (p[0] >= 0) close(p[0]), close(p[1]);
        munmap(page, sizeof(int));
        return e;
    }
    if (pid == 0) {
        close(p[0]);
        prober_main(plan, cgroup_path, p[1], runner, static_cast<int*>(page));
    }
    close(p[1]);
    setpgid(pid, pid);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    std::unique_ptr<Prober> pr(new Prober(pid, Fd(p[0])));
    pr->cmd_pgid_ = static_cast<int*>(page);
    // The setup report: notes, then "R" or "E". Results after "R" stay in buf_ for drain().
    const uint64_t deadline = mono_ns() + uint64_t(kStartTimeoutMs) * 1'000'000ULL;
    for (;;) {
        size_t nl;
        while ((nl = pr->buf_.find('\n')) != std::string::npos) {
            std::string line = pr->buf_.substr(0, nl);
            pr->buf_.erase(0, nl + 1);
            if (line == "R") return pr;
            if (line.rfind("N ", 0) == 0) pr->netns_note_ = line.substr(2);
            if (line.rfind("E ", 0) == 0) return Error::user(line.substr(2));
        }
        uint64_t now = mono_ns();
        if (now >= deadline) return Error::other("probe: the prober did not start within 5 s in cgroup " + cgroup_path);
        pollfd pf{pr->fd(), POLLIN, 0};
        int n = poll(&pf, 1, int((deadline - now) / 1'000'000ULL) + 1);
        if (n < 0 && errno != EINTR) return Error::sys("probe: poll", errno);
        char buf[4096];
        ssize_t got = read(pr->fd(), buf, sizeof buf);
        if (got > 0) pr->buf_.append(buf, size_t(got));
        if (got == 0) return Error::other("probe: the prober exited while joining cgroup " + cgroup_path);
        if (got < 0 && errno != EAGAIN && errno != EINTR) return Error::sys("probe: read", errno);
    }
}

std::vector<ProbeAttempt> Prober::drain() {
    char buf[8192];
    for (;;) {
        ssize_t n = read(pipe_.get(), buf, sizeof buf);
        if (n > 0) buf_.append(buf, size_t(n));
        if (n == 0 || (n < 0 && errno != EINTR)) break;  // EAGAIN: nothing more now; 0: the prober is gone
    }
    std::vector<ProbeAttempt> out;
    size_t nl;
    while ((nl = buf_.find('\n')) != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (line.rfind("P ", 0) != 0) continue;
        unsigned long long at = 0;
        int ok = 0, used = 0;
        double ms = 0;
        if (std::sscanf(line.c_str(), "P %llu %d %lf %n", &at, &ok, &ms, &used) >= 3 && used > 0)
            out.push_back({at, ok != 0, ms, line.substr(size_t(used))});
    }
    return out;
}

bool Prober::alive() {
    if (!reaped_ && pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) != 0) reaped_ = true;  // exited (or not ours)
    return !reaped_ && pid_ > 0;
}

Prober::~Prober() {
    auto running = [this] { return cmd_pgid_ ? std::atomic_ref<int>(*cmd_pgid_).load() : 0; };
    // While the slot names a group, the prober has not reaped its leader: the id is still it.
    int first = running();
    if (first > 0) kill(-first, SIGKILL);
    if (!reaped_ && pid_ > 0 && kill(pid_, SIGKILL) == 0) reap(pid_);
    // A command started between the two looks died with the prober (PDEATHSIG); this takes its group.
    int second = running();
    if (second > 0 && second != first) kill(-second, SIGKILL);
    if (cmd_pgid_) munmap(cmd_pgid_, sizeof(int));
}

}  // namespace tardy
