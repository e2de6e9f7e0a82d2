// SPDX-License-Identifier: Apache-2.0
#include "agent/client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "sys/fd.hpp"
#include "model/wire.hpp"

namespace tardy {
namespace {

Result<Fd> connect_agent(const Paths& p) {
    Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return Error::sys("socket", errno);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (p.socket().size() >= sizeof a.sun_path)
        return Error::user("TARDY_RUN_DIR is too long for a Unix socket path; use a shorter one");
    std::strcpy(a.sun_path, p.socket().c_str());
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        if (errno == EACCES || errno == EPERM)
            return Error::user("talking to the agent at " + p.socket() + " needs root; run it with sudo");
        return Error::sys("connect to the agent at " + p.socket(), errno);
    }
    return s;
}

}  // namespace

Result<nlohmann::json> agent_call(const Paths& p, const nlohmann::json& req, int timeout_ms) {
    auto s = connect_agent(p);
    if (!s) return s.error();
    std::string out = req.dump() + "\n";
    if (send(s->get(), out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
        return Error::sys("send to the agent", errno);
    std::string in;
    char buf[65536];
    for (;;) {
        pollfd pfd{s->get(), POLLIN, 0};
        int r = poll(&pfd, 1, timeout_ms);
        if (r == 0) return Error::other("the agent did not answer within " + std::to_string(timeout_ms / 1000) +
                                        "s; if it is hung, `tardy kill` ends every fault");
        if (r < 0) return Error::sys("wait for the agent", errno);
        ssize_t n = read(s->get(), buf, sizeof buf);
        if (n < 0 && errno == ECONNRESET)  // closed with our request unread: nothing of it was done
            return Error::other("the agent closed the connection without reading the request (it was ending, or "
                                "busy past its 2 s per client; see " + p.log() + "); nothing of it was done: retry");
        if (n < 0) return Error::sys("read from the agent", errno);
        if (n == 0) break;
        in.append(buf, n);
        if (in.back() == '\n') break;
    }
    if (in.empty())
        return Error::other("the agent exited before it answered (see " + p.log() + "); `tardy list` shows what is left");
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) return Error::other("the agent sent a reply that is not JSON");
    // First: a refusal from an agent of another version is about the version, whatever it says.
    TARDY_TRY(wire::check_reply_version(j));
    return j;
}

bool agent_reachable(const Paths& p) { return connect_agent(p).ok(); }

Result<nlohmann::json> reply_or_error(const nlohmann::json& r) {
    if (r.value("ok", false)) return r;
    std::string msg = r.value("error", std::string("the agent refused the request"));
    return r.value("user", false) ? Error::user(msg) : Error::other(msg);
}

namespace {

// One try; *held: the run lock was held by another agent (or `tardy kill`).
Result<void> spawn_once(const Paths& p, const std::string& self_exe, std::string* held) {
    int st_pipe[2];
    if (pipe2(st_pipe, O_CLOEXEC) != 0) return Error::sys("pipe", errno);
    Fd rd(st_pipe[0]), wr(st_pipe[1]);
    pid_t pid = fork();
    if (pid < 0) return Error::sys("fork the agent", errno);
    if (pid == 0) {
        // Double fork: the agent is re-parented to init and never becomes our zombie.
        setsid();
        pid_t grandchild = fork();
        if (grandchild < 0) {
            dprintf(wr.get(), "error system fork the agent: %s\n", strerror(errno));
            _exit(1);
        }
        if (grandchild != 0) _exit(0);
        int nul = open("/dev/null", O_RDONLY);
        int log = open(p.log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        dup2(nul, 0);
        dup2(log >= 0 ? log : nul, 1);
        dup2(log >= 0 ? log : nul, 2);
        dup2(wr.get(), 3);  // the start status: "ready" or why not
        execl(self_exe.c_str(), self_exe.c_str(), "agent", "--exit-when-idle", "--status-fd", "3",
              static_cast<char*>(nullptr));
        dprintf(3, "error system run %s: %s\n", self_exe.c_str(), strerror(errno));
        _exit(127);
    }
    wr.reset();
    int st = 0;
    waitpid(pid, &st, 0);
    std::string line;
    char buf[1024];
    // Up to 30 s: loading and verifying the BPF objects on a slow machine. Under software
    // emulation (the CI's VM, Debian 6.1) the TC object alone takes 6.7 s to verify and the
    // agent's whole start 8-12 s when the host is busy; on the host it is 0.1 s.
    for (;;) {
        pollfd pfd{rd.get(), POLLIN, 0};
        int r = poll(&pfd, 1, 30000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return Error::other("the agent did not start within 30s; see " + p.log());
        ssize_t n = read(rd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;  // a caller's signal handler (observe's Ctrl-C)
        if (n <= 0) {
            if (n < 0) return Error::sys("read the agent's start status", errno);
            break;
        }
        line.append(buf, n);
        if (line.find('\n') != std::string::npos) break;
    }
    if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
    if (line == "ready") return ok();
    if (line.rfind("error user ", 0) == 0) return Error::user(line.substr(11));
    if (line.rfind("error system ", 0) == 0) {
        std::string why = line.substr(13);
        if (why.rfind("another agent", 0) == 0) {
            *held = why;
            return ok();
        }
        return Error::other("the agent could not start: " + why);
    }
    return Error::other("the agent exited while starting; see " + p.log());
}

}  // namespace

Result<void> spawn_agent(const Paths& p, const std::string& self_exe) {
    std::string held;
    for (int attempt = 0; attempt < 4; attempt++) {
        held.clear();
        TARDY_TRY(spawn_once(p, self_exe, &held));
        if (held.empty()) return ok();
        // Another inject started one first: use that one once it answers. Or the holder is
        // an idle agent on its way out (it refuses connections while it finishes the
        // requests it had queued) or `tardy kill`: once it has let go, start ours.
        for (int i = 0; i < 150; i++) {
            if (agent_reachable(p)) return ok();
            timespec ts{0, 10'000'000};
            nanosleep(&ts, nullptr);
        }
    }
    return Error::other(held + "; it did not answer within 6s (is `tardy kill` at work?); try again");
}

}  // namespace tardy
