// SPDX-License-Identifier: Apache-2.0
// user/server: the agent's request socket. No client, however slow, silent or numerous, may
// delay another or the loop it shares with the lease and expiry.
#include "agent/server.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "model/wire.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr size_t kBig = 4 << 20;  // far more than a socket buffer holds

std::string reply_to(std::string_view line) {
    // Made once: the loop's longest service() should measure the server, not this handler.
    static const std::string big = std::string(kBig - 1, 'b') + "\n";
    if (line == "big") return big;
    if (line == "boom") throw std::runtime_error("boom");
    return "reply:" + (line.size() > 100 ? std::to_string(line.size()) : std::string(line)) + "\n";
}

Fd connect_to(const std::string& path) {
    Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    return s;
}

bool send_all(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

struct Read {
    std::string data;
    bool eof = false;  // the server closed (EOF or reset)
};

Read read_until_eof(int fd, std::chrono::milliseconds limit) {
    Read r;
    auto end = Clock::now() + limit;
    std::vector<char> buf(1 << 16);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
        pollfd p{fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return r;
        ssize_t n = read(fd, buf.data(), buf.size());
        if (n <= 0) {
            r.eof = true;
            return r;
        }
        r.data.append(buf.data(), static_cast<size_t>(n));
    }
}

// One request as the CLI makes it; the reply and how long it took.
std::pair<std::string, Clock::duration> ask(const std::string& path, const std::string& line) {
    auto t0 = Clock::now();
    Fd c = connect_to(path);
    EXPECT_TRUE(send_all(c.get(), line + "\n"));
    Read r = read_until_eof(c.get(), 3s);
    EXPECT_TRUE(r.eof) << "no EOF after the reply to " << line;
    return {r.data, Clock::now() - t0};
}

// The agent's loop, in a thread: poll, service, expire. Records the longest service() call.
class Loop {
public:
    explicit Loop(std::unique_ptr<Server> s) : s_(std::move(s)), t_([this] { run(); }) {}
    ~Loop() {
        stop_ = true;
        t_.join();
    }
    size_t clients() const { return clients_; }
    Clock::duration longest_service() const { return Clock::duration(longest_.load()); }
    bool wait_clients(size_t n, std::chrono::milliseconds limit = 2s) const {
        for (auto end = Clock::now() + limit; Clock::now() < end; std::this_thread::sleep_for(5ms))
            if (clients_ == n) return true;
        return false;
    }

private:
    void run() {
        while (!stop_) {
            std::vector<pollfd> fds;
            s_->add_pollfds(fds);
            int to = s_->timeout_ms(mono_ns());
            poll(fds.data(), fds.size(), to < 0 || to > 20 ? 20 : to);
            auto t0 = Clock::now();
            s_->service(fds.data(), fds.size());
            s_->expire(mono_ns());
            longest_ = std::max(longest_.load(), (Clock::now() - t0).count());
            clients_ = s_->clients();
        }
    }
    std::unique_ptr<Server> s_;
    std::atomic<bool> stop_{false};
    std::atomic<size_t> clients_{0};
    std::atomic<Clock::rep> longest_{0};
    std::thread t_;  // last: starts once the rest is built
};

class ServerTest : public ::testing::Test {
protected:
    std::unique_ptr<Server> listen() {
        auto s = Server::listen(path_, reply_to);
        EXPECT_TRUE(s) << s.error().message;
        return s ? std::move(*s) : nullptr;
    }
    test::TempDir dir_;
    std::string path_ = dir_ / "agent.sock";
};

TEST_F(ServerTest, SlowAndSilentClientsDoNotDelayOthers) {
    Loop loop(listen());
    std::vector<Fd> silent;
    for (int i = 0; i < 10; i++) silent.push_back(connect_to(path_));
    std::atomic<bool> done{false};
    std::thread slowloris([&] {  // a byte every 100 ms, never a whole line before its deadline
        Fd c = connect_to(path_);
        for (int i = 0; i < 25 && !done; i++) {
            if (send(c.get(), "{", 1, MSG_NOSIGNAL) != 1) break;
            std::this_thread::sleep_for(100ms);
        }
    });
    ASSERT_TRUE(loop.wait_clients(11));
    for (int i = 0; i < 5; i++) {
        auto [reply, took] = ask(path_, "{\"op\":\"ping\"}");
        EXPECT_EQ(reply, "reply:{\"op\":\"ping\"}\n");
        EXPECT_LT(took, 500ms) << "request " << i;
        std::this_thread::sleep_for(100ms);
    }
    done = true;
    slowloris.join();
    EXPECT_LT(loop.longest_service(), 200ms);
}

TEST_F(ServerTest, ClientsOverTheLimitAreClosedAtOnce) {
    Loop loop(listen());
    std::vector<Fd> held;
    for (size_t i = 0; i < Server::kMaxClients; i++) held.push_back(connect_to(path_));
    ASSERT_TRUE(loop.wait_clients(Server::kMaxClients));
    auto t0 = Clock::now();
    Fd extra = connect_to(path_);
    Read r = read_until_eof(extra.get(), 1500ms);
    EXPECT_TRUE(r.eof);
    EXPECT_LT(Clock::now() - t0, 1s) << "closed at its deadline, not at once";
    EXPECT_NE(r.data.find("\"ok\":false"), std::string::npos) << r.data;
    EXPECT_EQ(nlohmann::json::parse(r.data, nullptr, false).value("v", 0), wire::kProtocolVersion) << r.data;
    EXPECT_EQ(loop.clients(), Server::kMaxClients);
    // A client that leaves frees its place at once.
    held.pop_back();
    ASSERT_TRUE(loop.wait_clients(Server::kMaxClients - 1));
    auto [reply, took] = ask(path_, "ping");
    EXPECT_EQ(reply, "reply:ping\n");
}

TEST_F(ServerTest, UnreadLargeReplyDoesNotBlockOthers) {
    (void)reply_to("big");  // its first call pays for making it, outside the loop
    Loop loop(listen());
    Fd greedy = connect_to(path_);
    ASSERT_TRUE(send_all(greedy.get(), "big\n"));
    std::this_thread::sleep_for(100ms);  // its reply is pending now, most of it unsent
    for (int i = 0; i < 3; i++) {
        auto [reply, took] = ask(path_, "ping");
        EXPECT_EQ(reply, "reply:ping\n");
        EXPECT_LT(took, 500ms);
    }
    EXPECT_LT(loop.longest_service(), 200ms);
    // Closed at its deadline with the reply unfinished.
    ASSERT_TRUE(loop.wait_clients(0, 4s));
    Read r = read_until_eof(greedy.get(), 2s);
    EXPECT_TRUE(r.eof);
    EXPECT_LT(r.data.size(), kBig);
}

TEST_F(ServerTest, DeadlineClosesSilentClients) {
    auto s = listen();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->timeout_ms(mono_ns()), -1);
    std::vector<Fd> silent;
    for (int i = 0; i < 3; i++) silent.push_back(connect_to(path_));
    std::vector<pollfd> fds;
    s->add_pollfds(fds);
    ASSERT_EQ(fds.size(), 1u);
    ASSERT_EQ(poll(fds.data(), fds.size(), 1000), 1);
    s->service(fds.data(), fds.size());
    ASSERT_EQ(s->clients(), 3u);
    fds.clear();
    s->add_pollfds(fds);
    EXPECT_EQ(fds.size(), 4u);
    for (size_t i = 1; i < fds.size(); i++) EXPECT_EQ(fds[i].events, POLLIN);

    uint64_t now = mono_ns();
    int to = s->timeout_ms(now);
    EXPECT_GT(to, 1500);
    EXPECT_LE(to, 2000);
    s->expire(now + 1'000'000'000);
    EXPECT_EQ(s->clients(), 3u);
    s->expire(now + Server::kClientDeadlineNs);
    EXPECT_EQ(s->clients(), 0u);
    EXPECT_EQ(s->timeout_ms(now), -1);
    for (auto& c : silent) EXPECT_TRUE(read_until_eof(c.get(), 500ms).eof);
}

TEST_F(ServerTest, RequestFraming) {
    Loop loop(listen());
    {  // in pieces
        Fd c = connect_to(path_);
        ASSERT_TRUE(send_all(c.get(), "pi"));
        std::this_thread::sleep_for(50ms);
        ASSERT_TRUE(send_all(c.get(), "ng\nignored after the line"));
        Read r = read_until_eof(c.get(), 2s);
        EXPECT_EQ(r.data, "reply:ping\n");
    }
    {  // EOF ends a last line without '\n'
        Fd c = connect_to(path_);
        ASSERT_TRUE(send_all(c.get(), "ping"));
        shutdown(c.get(), SHUT_WR);
        EXPECT_EQ(read_until_eof(c.get(), 2s).data, "reply:ping\n");
    }
    {  // exactly the limit is a request
        auto [reply, took] = ask(path_, std::string(Server::kMaxLineBytes, 'x'));
        EXPECT_EQ(reply, "reply:" + std::to_string(Server::kMaxLineBytes) + "\n");
    }
    {  // one byte more is closed without a reply, before its deadline
        auto t0 = Clock::now();
        Fd c = connect_to(path_);
        (void)send_all(c.get(), std::string(Server::kMaxLineBytes + 1, 'x'));
        Read r = read_until_eof(c.get(), 3s);
        EXPECT_TRUE(r.eof);
        EXPECT_EQ(r.data, "");
        EXPECT_LT(Clock::now() - t0, 1500ms);
    }
    {  // a handler that throws costs only its own client
        auto [reply, took] = ask(path_, "boom");
        EXPECT_EQ(reply, "");
        EXPECT_EQ(ask(path_, "ping").first, "reply:ping\n");
    }
}

TEST_F(ServerTest, ListenReplacesStaleSocketsOnly) {
    dir_.write("agent.sock", "not a socket");
    auto refused = Server::listen(path_, reply_to);
    ASSERT_FALSE(refused);
    EXPECT_TRUE(test::IsUserError(refused.error(), {"not a socket"}));
    EXPECT_EQ(test::read_file(path_), "not a socket");
    unlink(path_.c_str());

    {
        auto s = listen();  // leaves its socket behind: stale from here on
        ASSERT_TRUE(s);
    }
    struct stat st{};
    ASSERT_EQ(lstat(path_.c_str(), &st), 0) << "the owner unlinks, not the server";
    auto s = listen();
    ASSERT_TRUE(s);
    ASSERT_EQ(lstat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_FALSE(Server::listen(std::string(200, 'x'), reply_to));
}

// An idle agent leaves with close_door(): whoever had connected by then (accepted or still
// in the backlog) gets its reply, whoever connects after is refused (and starts an agent).
// Before, leaving closed the listener and a request still queued read ECONNRESET (CI, 6.12).
TEST_F(ServerTest, ClosingTheDoorServesTheQueuedAndRefusesTheRest) {
    auto s = listen();
    ASSERT_TRUE(s);
    std::vector<Fd> queued;
    for (int i = 0; i < 5; i++) {
        queued.push_back(connect_to(path_));
        ASSERT_TRUE(send_all(queued.back().get(), "q" + std::to_string(i) + "\n"));
    }
    s->close_door(mono_ns());
    EXPECT_TRUE(s->door_closed());
    EXPECT_EQ(s->clients(), 5u);  // all taken from the backlog
    Fd late(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    EXPECT_NE(connect(late.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(errno, ECONNREFUSED);
    std::vector<pollfd> fds;
    s->add_pollfds(fds);
    EXPECT_EQ(fds.size(), 5u);  // the listener is no longer polled (a shut listener is always readable)
    for (int round = 0; round < 10 && s->clients(); round++) {
        fds.clear();
        s->add_pollfds(fds);
        poll(fds.data(), fds.size(), 200);
        s->service(fds.data(), fds.size());
    }
    EXPECT_EQ(s->clients(), 0u);
    for (int i = 0; i < 5; i++) {
        Read r = read_until_eof(queued[i].get(), 500ms);
        EXPECT_EQ(r.data, "reply:q" + std::to_string(i) + "\n");
    }
    // Work came in after all: listening again at the same path.
    ASSERT_TRUE(s->reopen(path_));
    EXPECT_FALSE(s->door_closed());
    Loop loop(std::move(s));
    EXPECT_EQ(ask(path_, "again").first, "reply:again\n");
}

}  // namespace
}  // namespace tardy
