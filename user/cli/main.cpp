// SPDX-License-Identifier: Apache-2.0
// tardy: the command line. Thin: parsing and printing over the library.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <string>

#include "agent/agent.hpp"
#include "agent/client.hpp"
#include "lab/demo.hpp"
#include "cli/doctor.hpp"
#include "cli/list.hpp"
#include "cli/report.hpp"
#include "cli/run.hpp"
#include "cli/update.hpp"
#include "cli/stats.hpp"
#include "loader/file_object.hpp"
#include "loader/sock_object.hpp"
#include "loader/stall_object.hpp"
#include "agent/inject.hpp"
#include "agent/kill.hpp"
#include "agent/metrics_http.hpp"
#include "lab/probe.hpp"
#include "sys/qdisc.hpp"
#include "loader/tc_object.hpp"
#include "model/units.hpp"
#include "model/wire.hpp"
#include "loader/pinned.hpp"
#include "sys/paths.hpp"

using nlohmann::json;
using namespace tardy;

namespace {

std::string self_exe() {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, n) : "tardy";
}

int need_root() {
    if (geteuid() != 0) {
        std::fprintf(stderr, "tardy: this command needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); run it with sudo\n");
        return kExitUser;
    }
    return 0;
}

// Root, then a usable environment (checked only where the command needs it), then the
// processes left stopped by a dead agent are resumed: every state-touching command does this.
void resume_orphans(const Paths& p);
int ready_for_state(const Paths& p, bool check_paths) {
    if (int rc = need_root()) return rc;
    if (check_paths) {
        if (auto v = validate_paths(p); !v) return report(v.error());
    }
    resume_orphans(p);
    return 0;
}

int cmd_inject(const InjectArgs& a, const Paths& p) {
    auto r = build_inject_request(a);
    if (!r) return report(r.error());
    if (int rc = ready_for_state(p, true)) return rc;
    auto cgfs = CgroupFs::detect();
    if (!cgfs) return report(cgfs.error());
    auto req = prepare_inject(*r, *cgfs);
    if (!req) return report(req.error());
    // The socket and stall programs are left to the agent (inject.hpp): loading them here as
    // well would verify them twice (1.3 s of a 1.6 s inject in the VM).
    if (auto k = check_kernel_can(*r, false); !k) return report(k.error());
    auto rep = submit_inject(p, *req, self_exe());
    if (!rep) return report(rep.error());
    std::string devs;
    for (const auto& d : rep->devices) devs += (devs.empty() ? "" : ",") + d;
    std::printf("%s\n", rep->name.c_str());
    std::fprintf(stderr, "tardy: %s on %s%s for %s\n", describe(*r).c_str(), req->cgroup.rel.c_str(),
                 devs.empty() ? "" : (" via " + devs).c_str(), format_duration(r->for_ns).c_str());
    return 0;
}

int cmd_stop(const std::string& name, bool all, const Paths& p) {
    if (name.empty() == !all)
        return report(Error::user("name one injection (tardy stop NAME) or use --all"));
    if (!name.empty()) {
        if (auto v = validate_name(name); !v) return report(v.error());
    }
    if (int rc = ready_for_state(p, true)) return rc;
    if (!agent_reachable(p)) {
        if (all) {
            std::printf("no active injections\n");
            return 0;
        }
        return report(Error::user("no active injection named '" + name + "' (no agent is running)"));
    }
    auto rep = agent_call(p, wire::request(wire::Stop{name, all}));
    if (!rep) return report(rep.error());
    auto r = reply_or_error(*rep);
    if (!r) return report(r.error());
    auto stopped = wire::read_reply<wire::StopReply>(*r);
    if (!stopped) return report(stopped.error());
    for (const auto& n : stopped->stopped) std::printf("stopped %s\n", n.c_str());
    if (stopped->stopped.empty()) std::printf("no active injections\n");
    return 0;
}

int cmd_kill(const Paths& p) {
    KillReport rep = pull_kill_switch(p);
    for (const auto& d : rep.done) std::printf("%s\n", d.c_str());
    for (const auto& e : rep.problems) std::fprintf(stderr, "tardy kill: %s\n", e.c_str());
    if (rep.done.empty() && rep.clean()) std::printf("nothing to do: no agent, no pins, no journal\n");
    if (rep.clean()) std::printf("clean: no fault of tardy's is active\n");
    return rep.clean() ? 0 : 1;
}

// Every tardy command run as root first resumes processes whose stall is long overdue: their
// agent and watchdog are dead or frozen, and nobody else would.
void resume_orphans(const Paths& p) {
    if (geteuid() != 0) return;
    if (int n = resume_overdue(p.stalled_pin()); n > 0)
        std::fprintf(stderr, "tardy: resumed %d process(es) left stopped by a stall that nobody ended\n", n);
}

// An option given with an empty value ("--for ''") is a mistake, never "use the default".
int check_empty_values(const CLI::App& cmd) {
    for (const CLI::Option* o : cmd.get_options()) {
        if (o->get_type_size() == 0) continue;  // a flag
        for (const auto& v : o->results()) {
            if (v.empty()) {
                std::fprintf(stderr, "tardy: %s needs a value; see tardy %s --help\n", o->get_name().c_str(),
                             cmd.get_name().c_str());
                return kExitUser;
            }
        }
    }
    return 0;
}

int run(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
    // Nothing may escape: the kill switch in particular must report, never abort.
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tardy: internal error: %s\n", one_line(e.what()).c_str());
    } catch (...) {
        std::fprintf(stderr, "tardy: internal error\n");
    }
    return 1;
}

namespace {

int run(int argc, char** argv) {
    CLI::App app{"tardy: kernel-level latency and fault injection for cgroups (eBPF)", "tardy"};
    app.require_subcommand(0, 1);
    app.set_version_flag("--version", std::string("tardy 0.1.0"));
    app.footer(
        "Examples:\n"
        "  sudo tardy inject --cgroup system.slice/api.service --loss 5% --for 2m\n"
        "  sudo tardy inject --container 3f2a --delay 50ms --jitter 10ms --name slow-db\n"
        "  sudo tardy list\n"
        "  sudo tardy stats slow-db   # experiment vs control, measured in the kernel\n"
        "  sudo tardy stop slow-db\n"
        "  sudo tardy kill            # end every fault now, even with a hung agent\n"
        "State: TARDY_RUN_DIR (default /run/tardy), TARDY_BPFFS (default /sys/fs/bpf/tardy).");
    Paths paths = Paths::from_env();
    set_libbpf_log(-1);  // the CLI reports errors as one line; the agent logs libbpf's warnings

    InjectArgs ia;
    auto* inject = app.add_subcommand("inject", "Inject faults into a target cgroup's traffic");
    inject->add_option("--cgroup", ia.cgroup, "Target cgroup v2: path (absolute or below the mount) or numeric id");
    inject->add_option("--pid", ia.pid, "Target the cgroup of these processes (one cgroup): --pid 4242, --pid 4242,4243 "
                                        "or --pid 4242 4243")
        ->expected(1, CLI::detail::expected_max_vector_size)
        ->allow_extra_args()
        ->delimiter(',')
        ->multi_option_policy(CLI::MultiOptionPolicy::Join);
    inject->add_option("--container", ia.container,
                       "Target a container by id (full or unique prefix; docker, podman, containerd, CRI-O); with "
                       "--pod, one container of that pod");
    inject->add_option("--pod", ia.pod, "Target a Kubernetes pod by UID (full or unique prefix), on its node");
    inject->add_option("--delay", ia.delay, "Delay packets, e.g. 50ms: what the target sends, or receives with --direction ingress|both (needs the fq qdisc; ingress also the ifb device)");
    inject->add_option("--jitter", ia.jitter, "Vary the delay uniformly by +-DUR (needs --delay); see --distribution");
    inject->add_option("--distribution", ia.shape.distribution,
                       "Shape of the jitter, as netem's: uniform (default), normal, pareto or paretonormal (jitter is "
                       "then the spread, e.g. the standard deviation)");
    inject->add_option("--loss", ia.loss, "Drop this share of packets, e.g. 5% or 0.01% (egress; see --direction)");
    inject->add_option("--loss-burst", ia.shape.loss_burst,
                       "Make --loss come in bursts of N packets on average (a Gilbert-Elliott model), e.g. 4");
    inject->add_option("--loss-gemodel", ia.shape.loss_gemodel,
                       "netem's Gilbert-Elliott loss, instead of --loss: P[,R[,1-H[,1-K]]], e.g. 1%,25%");
    inject->add_option("--correlation", ia.shape.correlation,
                       "Tie each random draw (jitter, loss, duplicate, corrupt, reorder) to the one before, as netem's "
                       "correlation, e.g. 25%");
    inject->add_option("--duplicate", ia.shape.duplicate, "Send this share of egress packets twice, e.g. 1%");
    inject->add_option("--corrupt", ia.shape.corrupt,
                       "Damage this share of egress packets so that the receiver's checksum rejects them, e.g. 5% "
                       "(a veth's checksum offload is off while it runs)");
    inject->add_option("--reorder", ia.shape.reorder,
                       "Send this share of egress packets at once while the others wait --delay, e.g. 25%");
    inject->add_option("--reorder-gap", ia.shape.reorder_gap,
                       "With --reorder: the N-1 packets after one sent at once are always delayed (netem's gap), "
                       "e.g. 5");
    inject->add_option("--rate", ia.shape.rate,
                       "Limit the target's egress to this rate, e.g. 10mbit, 500kbit, 2mbps (bytes/s); paced, needs "
                       "the fq qdisc");
    inject->add_option("--dns", ia.shape.dns,
                       "Answer the target's DNS queries (UDP port 53) at once with an error, or never: "
                       "nxdomain|servfail|refused|timeout[:PCT], e.g. nxdomain:50%; no DNS server involved");
    inject->add_option("--dns-name", ia.shape.dns_name, "Only --dns queries for this domain and its subdomains");
    inject->add_option("--reset", ia.shape.reset,
                       "Reset this share of the target's TCP connections (chosen per connection) when the target "
                       "next sends data on them: both ends get a RST, its calls fail with ECONNRESET, e.g. 10%");
    inject->add_option("--fail", ia.fails,
                       "Fail a syscall: SYSCALL=ERRNO[:PCT], SYSCALL one of connect, sendmsg (sendto), bind, socket, "
                       "open (openat), read, write (repeatable), e.g. connect=ECONNREFUSED:25%");
    inject->add_option("--stall", ia.stalls,
                       "Stall a syscall: NAME=DUR[:PCT] (repeatable), e.g. write=50ms:10% (the process pauses); NAME "
                       "covers what libc calls (write: write, writev, pwrite64, pwritev, pwritev2)");
    inject->add_option("--on", ia.on, "Only stalls of calls on an fd of this kind: files or sockets");
    inject->add_option("--flows", ia.flows,
                       "Apply the packet faults to this share of flows only, each flow (5-tuple) hit for its whole "
                       "life or never, e.g. 10%");
    inject->add_option("--direction", ia.direction,
                       "Packet faults on what the target sends (egress, the default), receives (ingress: --loss "
                       "and --delay) or both");
    inject->add_flag("--setup-only", ia.setup_only,
                     "Packet faults on TCP connection setup only (SYN, SYN-ACK): --delay 300ms makes connect() "
                     "slower and leaves the connection fast");
    inject->add_option("--peer", ia.filter.peers,
                       "Only traffic and socket calls to this address or CIDR (repeatable, IPv4 or IPv6)");
    inject->add_option("--except-peer", ia.filter.except_peers,
                       "Never traffic or calls to this address or CIDR (repeatable; wins over --peer)");
    inject->add_option("--port", ia.filter.port, "Only traffic and socket calls to this remote port or range N-M");
    inject->add_option("--except-port", ia.filter.except_port, "Never traffic or calls to this remote port or range");
    inject->add_option("--proto", ia.filter.protos, "Only this protocol: tcp, udp or icmp (repeatable)");
    inject->add_option("--path", ia.path, "Only file faults and stalls of calls on files under this absolute path");
    inject->add_option("--control", ia.control,
                       "Measure this cgroup beside the target as the control cohort (see tardy stats)");
    inject->add_option("--control-pid", ia.control_pid, "The control cohort is the cgroup of this process");
    inject->add_option("--control-container", ia.control_container, "The control cohort is this container");
    inject->add_flag("--measure", ia.measure, "Measure the target for tardy stats without a control (--control implies it)");
    inject->add_option("--for", ia.for_dur, "End the fault after DUR (default 5m), kernel-enforced");
    inject->add_option("--name", ia.name, "Name for list/stop (default: inj-N)");
    inject->add_option("--device", ia.devices, "Attach on this device (repeatable; default: every non-loopback one)");
    inject->add_option("--netns", ia.netns, "Target network namespace: NAME under /run/netns or a path "
                                            "(default: those of the target's processes)");
    inject->add_flag("--force", ia.force,
                     "Allow the root cgroup or tardy's own cgroup as target, and a delay to replace a root qdisc "
                     "that someone configured (it is restored when the delay ends)");
    inject->footer("Units: ns, us, ms, s, m, h (250us, 1.5s); percentages with % (5%, 0.01%); rates as tc writes "
                   "them (10mbit, 1gbit, 2mbps).\n"
                   "Examples:\n"
                   "  sudo tardy inject --pid 4242 --loss 30% --for 1m --name flaky\n"
                   "  sudo tardy inject --pid 4242,4243 --stall write=20ms   # processes of one cgroup\n"
                   "  sudo tardy inject --pod 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0 --loss 5%   # on the pod's node\n"
                   "  sudo tardy inject --pod 0b1c2d3e --container containerd://3f2a --delay 20ms\n"
                   "  sudo tardy inject --cgroup app.slice/api.service --fail connect=ECONNREFUSED:20% "
                   "--peer 10.0.0.5 --port 5432\n"
                   "  sudo tardy inject --container 3f2a --fail sendmsg=ENETUNREACH --port 53   # DNS fails\n"
                   "  sudo tardy inject --cgroup shop.slice --delay 200ms --peer 10.0.0.5 --port 5432 --name slow-db\n"
                   "  sudo tardy inject --cgroup shop.slice --loss 5% --peer 10.0.0.7 --proto tcp --name lossy-cache\n"
                   "  sudo tardy inject --cgroup shop.slice --loss 100% --flows 10%   # one connection in ten dead\n"
                   "  sudo tardy inject --cgroup shop.slice --loss 20% --direction both --peer 10.0.0.7\n"
                   "  sudo tardy inject --cgroup shop.slice --delay 300ms --setup-only --port 443   # slow connects\n"
                   "  sudo tardy inject --cgroup shop.slice --delay 80ms --direction ingress --peer 10.0.0.5   # slow answers\n"
                   "  sudo tardy inject --cgroup shop.slice --delay 100ms --jitter 20ms --distribution normal\n"
                   "  sudo tardy inject --cgroup shop.slice --loss 5% --loss-burst 4   # bursts of 4 lost packets\n"
                   "  sudo tardy inject --cgroup shop.slice --rate 10mbit --duplicate 1%\n"
                   "  sudo tardy inject --cgroup shop.slice --corrupt 2% --peer 10.0.0.7   # bad checksums\n"
                   "  sudo tardy inject --cgroup shop.slice --delay 10ms --reorder 25% --correlation 50%\n"
                   "  sudo tardy inject --cgroup shop.slice --delay 10ms --reorder 100% --reorder-gap 5   # every 5th early\n"
                   "  sudo tardy inject --cgroup shop.slice --dns nxdomain --dns-name payments.internal\n"
                   "  sudo tardy inject --cgroup shop.slice --reset 10% --port 6379   # a tenth of redis links die\n"
                   "  sudo tardy inject --cgroup batch.slice --stall fsync=200ms:50%\n"
                   "  sudo tardy inject --cgroup db.slice --stall flush=100ms --path /var/lib/postgresql   # slow disk\n"
                   "  sudo tardy inject --pid 4242 --fail open=EIO:10% --path /var/lib/app   # needs the BPF LSM");

    bool list_json = false;
    auto* list = app.add_subcommand("list", "Show active injections, time left and counters");
    list->add_flag("--json", list_json, "Print JSON");

    std::string stop_name;
    bool stop_all = false;
    auto* stop = app.add_subcommand("stop", "End one injection (NAME) or all (--all)");
    stop->add_option("name", stop_name, "Injection name (see tardy list)");
    stop->add_flag("--all", stop_all, "End every injection");

    StatsArgs sa;
    auto* stats = app.add_subcommand("stats", "The cohorts of an injection: experiment vs control, measured in the kernel");
    stats->add_option("name", sa.name, "Injection or observation name (see tardy list)")->required();
    stats->add_flag("--json", sa.json, "Print JSON (with --watch: one line a second)");
    stats->add_flag("--watch", sa.watch, "Redraw every second, with the last minute; Ctrl-C ends");
    stats->footer("Examples:\n"
                  "  sudo tardy inject --cgroup shop.slice/canary.service --control shop.slice/base.service "
                  "--delay 100ms --name slow\n"
                  "  sudo tardy stats slow\n"
                  "  sudo tardy stats slow --watch\n"
                  "  sudo tardy stats slow --json | jq '.cohorts[].tcp.connect_ms.p99'");
    ObserveArgs oa;
    auto* observe = add_observe_command(app, oa);
    RunArgs ra;
    auto* runc = add_run_command(app, ra);
    UpdateArgs ua;
    auto* updatec = add_update_command(app, ua);

    auto* killc = app.add_subcommand("kill", "Kill switch: disarm every program, stop the agent, restore everything");

    bool doctor_json = false;
    auto* doctor = app.add_subcommand("doctor", "Say which faults this kernel can do, and why not");
    doctor->add_flag("--json", doctor_json, "Print JSON");

    AgentOptions ao{paths, false, 0, -1, ""};
    bool verbose = false;
    auto* agent = app.add_subcommand("agent", "Run the agent in the foreground (inject starts one when needed)");
    agent->add_flag("--exit-when-idle", ao.exit_when_idle, "Leave when the last injection ends");
    agent->add_option("--rng-seed", ao.rng_seed, "Seed loss decisions reproducibly (tests)");
    agent->add_option("--status-fd", ao.status_fd, "")->group("");  // spawn_agent's start report
    agent->add_flag("--verbose", verbose, "Log libbpf's messages");
    agent->add_option("--metrics", ao.metrics,
                      "Serve Prometheus metrics at http://ADDR:PORT/metrics (PORT alone: on 127.0.0.1); an agent that "
                      "inject starts takes TARDY_METRICS=ADDR:PORT");

    DemoOptions dopt;
    auto* demo = app.add_subcommand("demo", "Run the sandboxed experiment: control vs experiment cohort, kill switch");
    demo->add_flag("--json", dopt.json, "Print JSON");
    demo->add_option("--phase", dopt.phase_s, "Seconds to measure each phase (default 3)");

    ProbeArgs pa;
    auto* probe = app.add_subcommand("__probe", "");
    probe->group("");  // internal: the demo's and tests' client
    add_probe_options(probe, pa);
    EchoArgs ea;
    auto* echo = app.add_subcommand("__echo", "");
    echo->group("");
    add_echo_options(echo, ea);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string msg = e.what();
        if (dynamic_cast<const CLI::ExtrasError*>(&e) && argc > 1 && argv[1][0] != '-' && app.get_subcommands().empty())
            msg = std::string("unknown command '") + argv[1] + "'";
        std::fprintf(stderr, "tardy: %s; see tardy --help\n", one_line(msg).c_str());
        return kExitUser;
    }
    if (app.get_subcommands().empty()) {
        std::fprintf(stderr, "tardy: name a command: inject, update, list, stats, observe, run, stop, kill, doctor, agent or demo; see tardy --help\n");
        return kExitUser;
    }

    for (const auto* c : app.get_subcommands())
        if (int rc = check_empty_values(*c)) return rc;
    // Mistakes in the arguments first (inject and stop check theirs before calling
    // ready_for_state), then root, then the environment.
    if (*list || *killc) {
        if (int rc = ready_for_state(paths, list->parsed())) return rc;
    }
    if (*agent) {
        if (auto v = validate_paths(paths); !v) return report(v.error());
    }
    // A bad metrics address is the user's mistake, said before any agent starts.
    if (const char* m = getenv("TARDY_METRICS"); m && (*inject || *observe || *runc || *agent)) {
        if (auto a = parse_listen_address(m); !a) return report(Error::user("TARDY_METRICS: " + a.error().message));
    }
    if (*agent && !ao.metrics.empty()) {
        if (auto a = parse_listen_address(ao.metrics); !a) return report(a.error());
    }
    if (*inject) return cmd_inject(ia, paths);
    if (*list) return cmd_list(list_json, paths);
    if (*stop) return cmd_stop(stop_name, stop_all, paths);
    if (*updatec) {
        if (auto v = validate_paths(paths); !v) return report(v.error());
        return cmd_update(ua, paths);
    }
    if (*stats) {
        resume_orphans(paths);
        return cmd_stats(sa, paths);
    }
    if (*observe) {
        if (auto v = validate_paths(paths); !v) return report(v.error());
        resume_orphans(paths);
        return cmd_observe(oa, paths, self_exe());
    }
    if (*runc) {
        if (!ra.dry_run) {
            if (auto v = validate_paths(paths); !v) return report(v.error());
            if (geteuid() == 0) resume_orphans(paths);
        }
        return cmd_run(ra, paths, self_exe());
    }
    if (*killc) return cmd_kill(paths);
    if (*doctor) return run_doctor(doctor_json);
    if (*agent) {
        if (int rc = need_root()) return rc;
        if (ao.status_fd >= 0) fcntl(ao.status_fd, F_SETFD, FD_CLOEXEC);
        set_libbpf_log(verbose ? 2 : 0);
        return run_agent(ao);
    }
    if (*demo) {
        if (int rc = need_root()) return rc;
        return run_demo(dopt, self_exe());
    }
    if (*probe) return run_probe(pa);
    if (*echo) return run_echo(ea);
    return 0;
}

}  // namespace
