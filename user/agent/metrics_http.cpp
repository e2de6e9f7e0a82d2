// SPDX-License-Identifier: Apache-2.0
#include "agent/metrics_http.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <exception>
#include <thread>

// Debian's cpp-httplib is a compiled library (libcpp-httplib.so) built with these, and they
// change the layout of its classes (Request, Client): the header must see what the library
// saw (`pkg-config --cflags cpp-httplib`). tardy serves plain HTTP only.
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#endif
#include <httplib.h>

#include "model/prometheus.hpp"

namespace tardy {

namespace {

constexpr const char* kLoopback = "127.0.0.1";
constexpr size_t kThreads = 4;  // scrapers at once; more wait their turn
// A connection holds a thread (and the destructor) up to one of these: keep them short.
constexpr time_t kKeepAliveSeconds = 1, kReadSeconds = 1, kWriteSeconds = 2;

Error bad_address(const std::string& s) {
    return Error::user("metrics address '" + s +
                       "' is not ADDR:PORT (IPv4), [ADDR]:PORT (IPv6) or PORT (on 127.0.0.1), PORT 0..65535: "
                       "e.g. --metrics 127.0.0.1:9464");
}

bool parse_port(const std::string& s, int& port) {
    if (s.empty() || s.size() > 5) return false;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    if (v > 65535) return false;
    port = v;
    return true;
}

bool is_address(int family, const std::string& a) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(family, a.c_str(), buf) == 1;
}

std::string host_port(const std::string& host, int port) {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// httplib's default sets SO_REUSEPORT, which would let a second agent share the port and
// take half the scrapes; SO_REUSEADDR alone rebinds past TIME_WAIT and refuses a live owner.
void socket_options(int fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
}

}  // namespace

Result<std::pair<std::string, int>> parse_listen_address(const std::string& s) {
    int port = 0;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find("]:");
        if (close == std::string::npos) return bad_address(s);
        std::string host = s.substr(1, close - 1);
        if (!is_address(AF_INET6, host) || !parse_port(s.substr(close + 2), port)) return bad_address(s);
        return std::pair{host, port};
    }
    auto colon = s.rfind(':');
    if (colon == std::string::npos) {
        if (!parse_port(s, port)) return bad_address(s);
        return std::pair{std::string(kLoopback), port};
    }
    std::string host = s.substr(0, colon);
    if (!is_address(AF_INET, host) || !parse_port(s.substr(colon + 1), port)) return bad_address(s);
    return std::pair{host, port};
}

struct MetricsServer::Impl {
    httplib::Server http;
    std::thread thread;
    std::atomic<bool> done{false};
    std::string address;
    int port = 0;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& addr_port, Render render) {
    auto parsed = parse_listen_address(addr_port);
    if (!parsed) return parsed.error();
    auto [host, port] = parsed.value();
    auto impl = std::make_unique<Impl>();
    auto& http = impl->http;
    http.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
    http.set_socket_options(socket_options);
    http.set_keep_alive_timeout(kKeepAliveSeconds);
    http.set_read_timeout(kReadSeconds);
    http.set_write_timeout(kWriteSeconds);
    http.Get("/metrics", [render](const httplib::Request&, httplib::Response& res) {
        res.set_content(render(), kPrometheusContentType);
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content("tardy: cannot render the metrics: " + what + "\n", "text/plain; charset=utf-8");
    });

    errno = 0;
    int bound = port ? (http.bind_to_port(host, port, AI_NUMERICHOST) ? port : -1)
                     : http.bind_to_any_port(host, AI_NUMERICHOST);
    if (bound < 0) {
        int e = errno;
        std::string what = "listen for metrics on " + host_port(host, port);
        return e ? Error::sys(what, e) : Error::other("cannot " + what);
    }
    impl->address = host;
    impl->port = bound;

    Impl* raw = impl.get();
    raw->thread = std::thread([raw] {
        raw->http.listen_after_bind();
        raw->done = true;
    });
    // stop() does nothing until the loop runs: wait for it, so that the destructor can end it.
    while (!raw->http.is_running() && !raw->done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!raw->http.is_running()) {
        raw->thread.join();
        return Error::other("the metrics server on " + host_port(host, bound) + " stopped as it started");
    }
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::~MetricsServer() {
    if (!impl_) return;
    impl_->http.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

int MetricsServer::port() const { return impl_->port; }

const std::string& MetricsServer::address() const { return impl_->address; }

MetricsBridge::MetricsBridge() : efd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

MetricsBridge::~MetricsBridge() {
    if (efd_ >= 0) close(efd_);
}

std::string MetricsBridge::ask() {
    std::unique_lock lk(m_);
    uint64_t mine = ++asked_, one = 1;
    (void)!write(efd_, &one, sizeof one);
    if (!cv_.wait_for(lk, std::chrono::seconds(5), [&] { return answered_ >= mine; }))
        throw std::runtime_error("the agent did not answer within 5 s");
    return text_;
}

void MetricsBridge::answer(const std::function<std::string()>& render) {
    uint64_t n;
    (void)!read(efd_, &n, sizeof n);
    uint64_t upto;
    {
        std::lock_guard lk(m_);
        upto = asked_;
    }
    std::string text = render();
    {
        std::lock_guard lk(m_);
        text_ = std::move(text);
        answered_ = upto;
    }
    cv_.notify_all();
}

}  // namespace tardy
