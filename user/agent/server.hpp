// SPDX-License-Identifier: Apache-2.0
// The agent's request socket, served from its single-threaded poll loop without ever
// blocking it: the lease, expiry and stall resumes share that loop, so no client (silent,
// slow, flooding, or not reading its reply) may hold it up.
//
// Protocol: a client connects, sends one line (at most kMaxLineBytes before its '\n'; EOF
// ends it too), gets the handler's reply and the connection is closed. Each client has one
// deadline (kClientDeadlineNs from accept) for all of that; past it, it is closed.
//
// Use from the loop:
//   std::vector<pollfd> fds = {...own fds...};
//   size_t first = fds.size();
//   server->add_pollfds(fds);
//   poll(fds.data(), fds.size(), min(own timeout, server->timeout_ms(now)));
//   ...own fds...
//   server->service(fds.data() + first, fds.size() - first);
//   server->expire(now);
// Times are CLOCK_MONOTONIC nanoseconds.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/error.hpp"
#include "sys/fd.hpp"

namespace tardy {

class Server {
public:
    // One request line in (without its '\n'), the reply out (sent as is: end it with '\n').
    // Called synchronously from service(); an exception from it closes that client.
    using Handler = std::function<std::string(std::string_view line)>;

    static constexpr size_t kMaxClients = 32;                      // beyond: accepted and closed at once
    static constexpr uint64_t kClientDeadlineNs = 2'000'000'000;  // accept to reply sent
    static constexpr size_t kMaxLineBytes = 1 << 20;

    // Listens on a Unix stream socket at `path` (mode 0600, non-blocking, close-on-exec),
    // replacing a stale socket there; refuses to replace anything that is not a socket.
    static Result<std::unique_ptr<Server>> listen(const std::string& path, Handler h);
    // Closes every client and the listening socket. Does not unlink the path: the owner does.
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Appends the listening socket and every client: POLLIN while reading a request,
    // POLLOUT while a reply is pending.
    void add_pollfds(std::vector<pollfd>& out) const;
    // Handles the entries add_pollfds() added (in the same order; matched by fd, so a
    // shorter or reordered slice does no harm): accepts, reads, answers, writes. Never blocks.
    void service(const pollfd* fds, size_t n);
    // Closes the clients whose deadline is at or before now.
    void expire(uint64_t now_mono_ns);
    // Milliseconds until the earliest deadline (rounded up), -1 when nothing is due.
    int timeout_ms(uint64_t now_mono_ns) const;
    size_t clients() const { return clients_.size(); }
    // Leaving without resetting anyone: stops taking connections (a connect() now fails with
    // ECONNREFUSED, which clients read as "no agent here" and start one) and accepts every
    // connection already queued, so each is served as usual. Once clients() is 0, nobody
    // is owed a reply. A connection queued at close() would instead read ECONNRESET.
    void close_door(uint64_t now_mono_ns);
    bool door_closed() const { return door_closed_; }
    // Listens at `path` again after close_door() (the agent turned out to have work).
    Result<void> reopen(const std::string& path);
    // While the handler runs: the pid of the process that connected (SO_PEERCRED, in this
    // process's pid namespace; 0 when unknown). 0 outside the handler.
    pid_t caller_pid() const { return caller_pid_; }

private:
    struct Client {
        Fd fd;
        uint64_t deadline_ns = 0;
        std::string in;   // the request so far
        std::string out;  // the reply, once the request is complete
        size_t sent = 0;
        bool replying = false;
        pid_t pid = 0;  // SO_PEERCRED at accept
    };

    Server(Fd listener, Handler h);
    bool accept_all(uint64_t now);  // true: stopped at its bound with more maybe queued
    bool on_readable(Client& c);  // false: close it
    bool flush(Client& c);        // false: close it (done or failed)

    Fd listener_;
    Handler handler_;
    std::vector<std::unique_ptr<Client>> clients_;
    bool door_closed_ = false;          // shut for reading: neither accepts nor is polled
    uint64_t accept_paused_until_ = 0;  // out of fds: retried then, not in a busy loop
    std::vector<char> buf_;
    pid_t caller_pid_ = 0;
};

}  // namespace tardy
