// SPDX-License-Identifier: Apache-2.0
// `tardy agent --metrics ADDR:PORT`: an HTTP server for Prometheus on its own threads. GET
// (or HEAD) /metrics answers 200 with render()'s text as text/plain; version=0.0.4; every
// other path 404; an exception from render() 500. render() is called on the server's
// threads, possibly two at once: the caller makes it thread-safe. cpp-httplib does the HTTP
// (in the .cpp only: its header is heavy).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <utility>

#include "model/error.hpp"

namespace tardy {

// "ADDR:PORT" (an IPv4 address), "[V6]:PORT" (an IPv6 address) or "PORT" (on 127.0.0.1);
// PORT 0..65535, 0 picks a free one. Returns the address (IPv6 without its brackets) and the
// port; a one-line Error::user naming the forms expected on anything else.
Result<std::pair<std::string, int>> parse_listen_address(const std::string& s);

class MetricsServer {
public:
    using Render = std::function<std::string()>;

    // Binds and listens on addr_port (parse_listen_address's forms) and serves until destroyed.
    // Fails with Error::user on a malformed address and Error::sys (naming the address and
    // errno) when it cannot bind, e.g. the port is taken (another process may not share it).
    static Result<std::unique_ptr<MetricsServer>> start(const std::string& addr_port, Render render);
    // Stops listening, ends the connections and joins every thread: at once, or within about
    // a second when a client is in the middle of sending its request.
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    int port() const;  // the port bound: the one asked for, or the free one picked for 0
    const std::string& address() const;

private:
    struct Impl;
    explicit MetricsServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Between the HTTP threads and the agent's loop, which alone touches the agent's state:
// ask() (an HTTP thread) wakes the loop through fd() and waits; the loop calls answer() with
// the renderer when fd() is readable. ask() throws after 5 s without an answer (a 500).
class MetricsBridge {
public:
    MetricsBridge();
    ~MetricsBridge();
    MetricsBridge(const MetricsBridge&) = delete;
    MetricsBridge& operator=(const MetricsBridge&) = delete;
    int fd() const { return efd_; }
    std::string ask();
    void answer(const std::function<std::string()>& render);

private:
    int efd_ = -1;
    std::mutex m_;
    std::condition_variable cv_;
    uint64_t asked_ = 0, answered_ = 0;
    std::string text_;
};

}  // namespace tardy
