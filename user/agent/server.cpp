// SPDX-License-Identifier: Apache-2.0
#include "agent/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "model/wire.hpp"

namespace tardy {
namespace {

uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr uint64_t kAcceptPauseNs = 100'000'000;  // after EMFILE/ENFILE
constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxAcceptsPerCall = 256;  // the listen backlog is 64

// What a client over the limit reads before EOF, so it can say why; a fresh socket's send
// buffer is empty, so this small send does not wait.
// Versioned like every reply (model/wire.hpp).
static_assert(wire::kProtocolVersion == 7, "kBusy spells the protocol version");
constexpr char kBusy[] =
    "{\"ok\":false,\"user\":false,\"error\":\"the agent is busy with too many clients; retry\",\"v\":7}\n";

// The listening socket at `path`: see Server::listen.
Result<Fd> listen_at(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof a.sun_path) return Error::user("socket path too long: " + path);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    struct stat st{};
    if (lstat(path.c_str(), &st) == 0) {
        // The lock file proves no other agent owns it; anything but a socket is not ours to remove.
        if (!S_ISSOCK(st.st_mode)) return Error::user(path + " exists and is not a socket; remove it");
        if (unlink(path.c_str()) != 0 && errno != ENOENT) return Error::sys("remove stale socket " + path, errno);
    }
    Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s.valid()) return Error::sys("socket", errno);
    // The socket file takes its mode from the umask at bind: set it so that no other user
    // can connect in the window before chmod.
    mode_t old = umask(0177);
    int rc = bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    int err = errno;
    umask(old);
    if (rc != 0) return Error::sys("bind " + path, err);
    if (chmod(path.c_str(), 0600) != 0) return Error::sys("chmod " + path, errno);
    if (::listen(s.get(), 64) != 0) return Error::sys("listen " + path, errno);
    return s;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::listen(const std::string& path, Handler h) {
    auto s = listen_at(path);
    if (!s) return s.error();
    return std::unique_ptr<Server>(new Server(std::move(*s), std::move(h)));
}

void Server::close_door(uint64_t now) {
    if (door_closed_) return;
    // A Unix listener shut for reading refuses new connections at once (unix_stream_connect
    // checks RCV_SHUTDOWN under the listener's lock) but still hands out the queued ones:
    // after this, the backlog can only shrink.
    shutdown(listener_.get(), SHUT_RD);
    door_closed_ = true;
    accept_paused_until_ = 0;
    // accept_all stops after a bounded number per call; the backlog (64) is finite and can
    // no longer grow, so this ends.
    while (accept_all(now)) {
    }
}

Result<void> Server::reopen(const std::string& path) {
    auto s = listen_at(path);
    if (!s) return s.error();
    listener_ = std::move(*s);
    door_closed_ = false;
    return ok();
}

Server::Server(Fd listener, Handler h) : listener_(std::move(listener)), handler_(std::move(h)), buf_(kReadChunk) {}

Server::~Server() = default;  // the Fds close every client and the listener

void Server::add_pollfds(std::vector<pollfd>& out) const {
    if (!accept_paused_until_ && !door_closed_) out.push_back({listener_.get(), POLLIN, 0});
    for (const auto& c : clients_)
        out.push_back({c->fd.get(), static_cast<short>(c->replying ? POLLOUT : POLLIN), 0});
}

void Server::service(const pollfd* fds, size_t n) {
    // Which client each ready entry means, decided before anything closes or accepts: a
    // new connection may reuse the fd number of one closed in this call.
    std::vector<Client*> ready;
    bool accept = false;
    for (size_t i = 0; i < n; i++) {
        if (!fds[i].revents || fds[i].fd < 0) continue;
        if (fds[i].fd == listener_.get()) {
            accept = true;
            continue;
        }
        for (auto& c : clients_)
            if (c->fd.get() == fds[i].fd) ready.push_back(c.get());
    }
    for (Client* c : ready) {
        bool keep = c->replying ? flush(*c) : on_readable(*c);
        if (!keep) c->fd.reset();
    }
    std::erase_if(clients_, [](const std::unique_ptr<Client>& c) { return !c->fd.valid(); });
    if (accept) accept_all(mono_ns());
}

bool Server::accept_all(uint64_t now) {
    // All pending connections, but bounded: a client connecting in a loop cannot keep us here.
    for (int i = 0; i < kMaxAcceptsPerCall; i++) {
        Fd c(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!c.valid()) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) accept_paused_until_ = now + kAcceptPauseNs;
            return false;  // EAGAIN: none left
        }
        if (clients_.size() >= kMaxClients) {
            (void)!send(c.get(), kBusy, sizeof kBusy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            continue;  // closed here: a flood costs no fds beyond the limit
        }
        auto cl = std::make_unique<Client>();
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) cl->pid = cred.pid;
        cl->fd = std::move(c);
        cl->deadline_ns = now + kClientDeadlineNs;
        clients_.push_back(std::move(cl));
    }
    return true;
}

bool Server::on_readable(Client& c) {
    bool eof = false;
    size_t end = std::string::npos;
    // Bounded: each pass adds a chunk, and past kMaxLineBytes the client is closed.
    while (end == std::string::npos) {
        ssize_t r = recv(c.fd.get(), buf_.data(), buf_.size(), MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // more later
            return false;
        }
        if (r == 0) {
            eof = true;
            break;
        }
        size_t before = c.in.size();
        c.in.append(buf_.data(), static_cast<size_t>(r));
        end = c.in.find('\n', before);
        if ((end == std::string::npos ? c.in.size() : end) > kMaxLineBytes) return false;
    }
    if (eof) {
        if (c.in.empty()) return false;  // gone without a word
        end = c.in.size();               // a last line without '\n' is still a request
    }
    c.in.resize(end);  // one request per connection: anything after the line is ignored
    caller_pid_ = c.pid;
    try {
        c.out = handler_(c.in);
    } catch (...) {
        caller_pid_ = 0;
        return false;  // the handler's contract is not to throw; if it does, only this client pays
    }
    caller_pid_ = 0;
    c.in = std::string();
    c.replying = true;
    return flush(c);
}

bool Server::flush(Client& c) {
    while (c.sent < c.out.size()) {
        ssize_t w = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK;  // the rest on POLLOUT; else the client is gone
        }
        c.sent += static_cast<size_t>(w);
    }
    return false;  // all sent: close, which the client reads as the end of the reply
}

void Server::expire(uint64_t now) {
    if (accept_paused_until_ && accept_paused_until_ <= now) accept_paused_until_ = 0;
    std::erase_if(clients_, [now](const std::unique_ptr<Client>& c) { return c->deadline_ns <= now; });
}

int Server::timeout_ms(uint64_t now) const {
    uint64_t next = accept_paused_until_ ? accept_paused_until_ : UINT64_MAX;
    for (const auto& c : clients_) next = std::min(next, c->deadline_ns);
    if (next == UINT64_MAX) return -1;
    if (next <= now) return 0;
    uint64_t ms = (next - now + 999'999) / 1'000'000;
    return ms > static_cast<uint64_t>(INT_MAX) ? INT_MAX : static_cast<int>(ms);
}

}  // namespace tardy
