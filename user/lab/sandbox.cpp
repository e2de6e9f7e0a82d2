// SPDX-License-Identifier: Apache-2.0
#include "lab/sandbox.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sys/cgroup.hpp"
#include "sys/process.hpp"

namespace fs = std::filesystem;

namespace tardy {
namespace {

Result<void> ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_cmd(argv);
    if (!r) return r.error();
    if (r->status != 0) {
        std::string cmd;
        for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
        std::string e = r->err;
        while (!e.empty() && e.back() == '\n') e.pop_back();
        return Error::other("`" + cmd + "` failed: " + e);
    }
    return ok();
}

// Several `ip` commands in one run (`ip [-n NS] -batch FILE`): each run of `ip` is a process
// start, 0.15-0.2 s under software emulation, and a sandbox took a dozen of them.
// With force, every line is tried even after one failed.
Result<void> ip_batch(const std::string& ns, const std::vector<std::string>& lines, bool force = false) {
    char path[] = "/tmp/tardy-ip-batch.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return Error::sys("create a batch file for ip", errno);
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    Result<void> r = written ? ok() : Error::sys("write a batch file for ip", errno);
    std::vector<std::string> args;
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    if (force) args.push_back("-force");
    args.insert(args.end(), {"-batch", path});
    if (r) r = ip(args);
    unlink(path);
    return r;
}

Result<void> write_file(const std::string& path, const std::string& v) {
    std::ofstream f(path);
    f << v << std::flush;
    if (!f) return Error::sys("write " + path, errno);
    return ok();
}

void sleep_ms(int ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1'000'000L};
    nanosleep(&ts, nullptr);
}

}  // namespace

void remove_cgroup_tree(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return;
    std::vector<fs::path> dirs{path};
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_directory(ec)) dirs.push_back(it->path());
    for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) {
        for (int i = 0; i < 100; i++) {
            if (fs::exists(*d / "cgroup.kill")) (void)write_file(*d / "cgroup.kill", "1");
            std::ifstream procs(*d / "cgroup.procs");
            pid_t p;
            bool any = false;
            while (procs >> p) {
                kill(p, SIGKILL);
                any = true;
            }
            if (!any && rmdir(d->c_str()) == 0) break;
            sleep_ms(10);
        }
    }
}

Result<std::unique_ptr<Sandbox>> Sandbox::create(const Options& o) {
    std::unique_ptr<Sandbox> s(new Sandbox(o));
    if (auto r = s->build(); !r) return r.error();  // the destructor removes the half-built rest
    return s;
}

Result<void> Sandbox::build() {
    auto cgfs = CgroupFs::detect();
    if (!cgfs) return cgfs.error();
    mount_ = cgfs->mount();
    const std::string a = netns_a_name(), b = netns_b_name();
    for (const auto& ns : {a, b})
        if (fs::exists("/run/netns/" + ns)) return Error::other("network namespace " + ns + " exists already");
    // Each namespace is noted as made as soon as it may exist: the destructor removes what a
    // failure half-built.
    made_ns_a_ = made_ns_b_ = true;
    TARDY_TRY(ip_batch("", {"netns add " + a, "netns add " + b,
                            "link add " + device_a() + " netns " + a + " type veth peer name " + device_b() +
                                " netns " + b}));
    // The addresses after the links are up: IPv6 addresses added to a device that is down
    // made the first neighbour solicitation go unanswered, and every test's first IPv6 second
    // lost (queued 1 s, the solicitation's retransmit time; ~70 echoes of a 15 ms probe).
    TARDY_TRY(ip_batch(a, {"link set lo up", "link set " + device_a() + " up",
                           "addr add 198.18.0.1/24 dev " + device_a(),
                           "addr add fd00:7a7d::1/64 dev " + device_a() + " nodad"}));
    TARDY_TRY(ip_batch(b, {"link set lo up", "link set " + device_b() + " up",
                           "addr add 198.18.0.2/24 dev " + device_b(),
                           "addr add fd00:7a7d::2/64 dev " + device_b() + " nodad"}));

    root_ = mount_ + "/" + o_.name;
    exp_ = root_ + "/exp";
    ctl_ = root_ + "/ctl";
    for (const auto& d : {root_, exp_, ctl_})
        if (mkdir(d.c_str(), 0755) != 0) return Error::sys("create cgroup " + d, errno);

    int out = -1;
    auto echo = spawn_cmd({o_.self_exe, "__echo", "--netns", "/run/netns/" + b, "--port", std::to_string(o_.port)},
                          &out);
    if (!echo) return echo.error();
    pids_.push_back(*echo);
    char buf[16] = {};
    ssize_t n = read(out, buf, sizeof buf - 1);  // "ready" once both sockets listen
    close(out);
    if (n <= 0) return Error::other("the sandbox echo server did not start");

    for (const auto& cg : {exp_, ctl_}) {
        auto res = spawn_cmd({"ip", "netns", "exec", a, "sleep", "86400"}, nullptr);
        if (!res) return res.error();
        pids_.push_back(*res);
        TARDY_TRY(write_file(cg + "/cgroup.procs", std::to_string(*res)));
    }
    // `ip netns exec` enters the namespace before it execs sleep: wait for that (up to 10 s:
    // under software emulation 1 s was not always enough).
    for (int i = 0; i < 2000; i++) {
        bool all = true;
        for (size_t k = 1; k < pids_.size(); k++) {
            std::error_code ec;
            auto l = fs::read_symlink("/proc/" + std::to_string(pids_[k]) + "/exe", ec);
            all &= !ec && l.filename() != "ip";
        }
        if (all) break;
        sleep_ms(5);
    }
    return ok();
}

Sandbox::~Sandbox() {
    for (pid_t p : pids_) stop_process(p, 500);
    if (!root_.empty()) remove_cgroup_tree(root_);
    std::vector<std::string> del;
    if (made_ns_a_) del.push_back("netns del " + netns_a_name());
    if (made_ns_b_) del.push_back("netns del " + netns_b_name());
    if (!del.empty()) (void)ip_batch("", del, /*force=*/true);
}

std::string Sandbox::cgroup_rel(Cohort c) const { return cgroup(c).substr(mount_.size()); }

Result<ProbeResult> Sandbox::probe(Cohort c, const std::string& proto, bool ipv6, int count, int interval_ms,
                                   int timeout_ms, double stream_seconds, int stream_sndbuf) const {
    auto r = run_cmd({o_.self_exe, "__probe", "--cgroup", cgroup(c), "--netns", netns_a(), "--proto", proto, "--to",
                      server(ipv6), "--port", std::to_string(o_.port), "--count", std::to_string(count),
                      "--interval-ms", std::to_string(interval_ms), "--timeout-ms", std::to_string(timeout_ms),
                      "--seconds", std::to_string(stream_seconds), "--sndbuf", std::to_string(stream_sndbuf)});
    if (!r) return r.error();
    if (r->status != 0) return Error::other("probe failed: " + r->err);
    auto j = nlohmann::json::parse(r->out, nullptr, false);
    if (j.is_discarded()) return Error::other("probe printed no JSON: " + r->out);
    ProbeResult pr;
    pr.sent = j["sent"];
    for (const auto& x : j["rtt_ms"])
        pr.rtt_ms.push_back(x.is_null() ? std::nullopt : std::optional<double>(x.get<double>()));
    pr.sent_at_ms = j.value("sent_at_ms", std::vector<double>{});
    pr.stream_mbps = j.value("stream_mbps", 0.0);
    pr.duplicates = j.value("duplicates", 0);
    return pr;
}

}  // namespace tardy
