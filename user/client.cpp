#include "client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "fd.hpp"

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
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        return Error::sys("connect to the agent at " + p.socket(), errno);
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
        if (n < 0) return Error::sys("read from the agent", errno);
        if (n == 0) break;
        in.append(buf, n);
        if (in.back() == '\n') break;
    }
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) return Error::other("the agent sent a reply that is not JSON");
    return j;
}

bool agent_reachable(const Paths& p) { return connect_agent(p).ok(); }

Result<nlohmann::json> reply_or_error(const nlohmann::json& r) {
    if (r.value("ok", false)) return r;
    std::string msg = r.value("error", std::string("the agent refused the request"));
    return r.value("user", false) ? Error::user(msg) : Error::other(msg);
}

Result<void> spawn_agent(const Paths& p, const std::string& self_exe) {
    pid_t pid = fork();
    if (pid < 0) return Error::sys("fork the agent", errno);
    if (pid == 0) {
        // Double fork: the agent is re-parented to init and never becomes our zombie.
        setsid();
        if (fork() != 0) _exit(0);
        int nul = open("/dev/null", O_RDONLY);
        int log = open(p.log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        dup2(nul, 0);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        execl(self_exe.c_str(), self_exe.c_str(), "agent", "--exit-when-idle", static_cast<char*>(nullptr));
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    for (int i = 0; i < 500; i++) {  // up to 5 s: loading and verifying the BPF object
        if (agent_reachable(p)) return ok();
        timespec ts{0, 10'000'000};
        nanosleep(&ts, nullptr);
    }
    return Error::other("the agent did not start within 5s; see " + p.log());
}

}  // namespace tardy
