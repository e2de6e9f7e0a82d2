// SPDX-License-Identifier: Apache-2.0
#include "model/spec.hpp"

#include <algorithm>

#include "model/tardy_abi.hpp"

#include "model/syscalls.hpp"
#include "model/units.hpp"

namespace tardy {

Result<void> validate_name(const std::string& name) {
    if (name.empty() || name.size() > 64)
        return Error::user("--name '" + name + "': use 1 to 64 characters from [A-Za-z0-9._-]");
    for (char c : name) {
        bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
        if (!okc)
            return Error::user("--name '" + name + "': use only letters, digits, '.', '_' and '-'");
    }
    if (name[0] == '-' || name[0] == '.' || name[0] == '_')
        return Error::user("--name '" + name + "': start with a letter or a digit (it must not look like an option)");
    return ok();
}

Result<StallSpec> parse_stall(const std::string& spec) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
        return Error::user("--stall '" + spec + "': write SYSCALL=DUR[:PCT], e.g. write=50ms:10%");
    std::string sys = spec.substr(0, eq), rest = spec.substr(eq + 1), pct;
    auto calls = stall_syscalls(sys);
    if (!calls) return calls.error();
    StallSpec st;
    st.name = calls->name;
    st.nrs = calls->nrs;
    if (auto colon = rest.find(':'); colon != std::string::npos) {
        pct = rest.substr(colon + 1);
        rest = rest.substr(0, colon);
    }
    auto d = parse_duration_ns(rest, "--stall " + sys);
    if (!d) return d.error();
    if (*d < 1'000'000 || *d > 60'000'000'000ULL)
        return Error::user("--stall " + spec + ": use a stall from 1ms to 60s");
    st.delay_ns = *d;
    if (!pct.empty()) {
        auto p = parse_percent_ppm(pct, "--stall " + sys);
        if (!p) return p.error();
        if (*p == 0) return Error::user("--stall " + spec + ": 0% stalls nothing; give a positive percentage");
        st.ppm = *p;
    }
    return st;
}

Result<void> scope_stalls(std::vector<StallSpec>& stalls, const std::string& on, const std::string& path) {
    if (on.empty() && path.empty()) return ok();
    std::string opt = on.empty() ? "--path" : "--on";
    if (stalls.empty()) return Error::user(opt + " needs a --stall of a call on an fd, e.g. --stall write=50ms " + opt + " ...");
    if (!on.empty() && on != "files" && on != "sockets")
        return Error::user("--on '" + on + "': use files (regular files, directories, block devices) or sockets");
    if (!path.empty() && on == "sockets")
        return Error::user("--path names files; --on sockets never meets one: leave one of them out");
    if (!path.empty() && (path[0] != '/' || path.size() >= TARDY_PATH_MAX))
        return Error::user("--path '" + path + "': give an absolute path under " + std::to_string(TARDY_PATH_MAX) +
                           " characters, e.g. /var/lib/app");
    for (auto& st : stalls) {
        auto calls = stall_syscalls(st.name);
        if (calls && !calls->fd_first)
            return Error::user("--stall " + st.name + ": " + opt + " judges the fd a call acts on, and " + st.name +
                               " takes none (it names no open file); stall it in an injection without --on/--path");
        st.on = on.empty() ? "" : on;
        st.path = path;
        while (st.path.size() > 1 && st.path.back() == '/') st.path.pop_back();
    }
    return ok();
}

std::string describe(const std::vector<StallSpec>& stalls) {
    std::string s;
    for (const auto& st : stalls) {
        if (!s.empty()) s += ", ";
        s += "stall " + st.name + " " + format_duration(st.delay_ns);
        if (st.ppm != 1'000'000) s += " " + format_ppm(st.ppm);
    }
    if (!stalls.empty() && !stalls[0].on.empty()) s += " on " + stalls[0].on;
    if (!stalls.empty() && !stalls[0].path.empty()) s += " under " + stalls[0].path;
    return s;
}

void to_json(nlohmann::json& j, const StallSpec& s) {
    j = {{"name", s.name}, {"delay_ns", s.delay_ns}, {"ppm", s.ppm}, {"on", s.on}, {"path", s.path}};
}
void from_json(const nlohmann::json& j, StallSpec& s) {
    s.name = j.at("name");
    auto calls = stall_syscalls(s.name);
    s.nrs = calls ? calls->nrs : std::vector<long>{};
    s.delay_ns = j.at("delay_ns");
    s.ppm = j.at("ppm");
    s.on = j.value("on", std::string());
    s.path = j.value("path", std::string());
}

namespace {

// --direction and --setup-only: where the packet faults apply.
Result<void> scope_net(const InjectArgs& a, NetFaults& net) {
    if (!a.direction.empty()) {
        if (a.direction == "egress")
            net.scope = TARDY_SCOPE_EGRESS;
        else if (a.direction == "ingress")
            net.scope = TARDY_SCOPE_INGRESS;
        else if (a.direction == "both")
            net.scope = TARDY_SCOPE_EGRESS | TARDY_SCOPE_INGRESS;
        else
            return Error::user("--direction '" + a.direction + "': use egress (packets the target sends), ingress "
                               "(packets it receives) or both");
        if (!net.any())
            return Error::user("--direction says which packets the packet faults hit; give --loss or --delay with it");
        if (net.ingress() &&
            (net.duplicate_ppm || net.rate_bytes_per_s || net.dns_rcode || net.reset_ppm || net.corrupt_ppm))
            return Error::user(std::string(net.reset_ppm          ? "--reset"
                                           : net.dns_rcode        ? "--dns"
                                           : net.rate_bytes_per_s ? "--rate"
                                           : net.corrupt_ppm      ? "--corrupt"
                                                                  : "--duplicate") +
                               " applies to the packets the target sends: use --direction egress for it "
                               "(ingress takes --loss and --delay)");
    }
    if (a.setup_only) {
        if (!net.any())
            return Error::user("--setup-only limits packet faults to TCP connection setup; give --delay or --loss "
                               "with it");
        if (net.reset_ppm)
            return Error::user("--reset acts on established connections and --setup-only on their setup; put "
                               "them in two injections");
        net.scope |= TARDY_SCOPE_SETUP;
    }
    return ok();
}

}  // namespace

Result<InjectRequest> build_inject_request(const InjectArgs& a) {
    InjectRequest r;
    // --pod UID --container ID is one target: a container of that pod.
    bool pod_container = !a.pod.empty() && !a.container.empty();
    int targets = !a.cgroup.empty() + !a.pid.empty() + !a.container.empty() + !a.pod.empty() - pod_container;
    if (targets != 1)
        return Error::user("name exactly one target: --cgroup PATH|ID, --pid PID[,PID...], --container ID or "
                           "--pod UID [--container ID]");
    if (!a.cgroup.empty()) r.target = {TargetRef::Kind::Cgroup, a.cgroup, ""};
    if (!a.pid.empty()) r.target = {TargetRef::Kind::Pid, a.pid, ""};
    // PIDs joined by ',': checked for form here, before root is needed (sys/cgroup parses them).
    if (!a.pid.empty() && (a.pid.find_first_not_of("0123456789,") != std::string::npos || a.pid.front() == ',' ||
                           a.pid.back() == ',' || a.pid.find(",,") != std::string::npos))
        return Error::user("--pid '" + a.pid + "': not a process id; give PIDs of one cgroup, e.g. --pid 4242, "
                           "--pid 4242,4243 or --pid 4242 4243");
    if (!a.container.empty()) r.target = {TargetRef::Kind::Container, a.container, ""};
    if (!a.pod.empty()) r.target = {TargetRef::Kind::Pod, a.pod, a.container};
    int controls = !a.control.empty() + !a.control_pid.empty() + !a.control_container.empty();
    if (controls > 1)
        return Error::user("name one control cohort: --control CGROUP, --control-pid PID or --control-container ID");
    if (!a.control.empty()) r.control = TargetRef{TargetRef::Kind::Cgroup, a.control, ""};
    if (!a.control_pid.empty()) {
        if (a.control_pid.find_first_not_of("0123456789") != std::string::npos)
            return Error::user("--control-pid '" + a.control_pid + "': not a process id; e.g. --control-pid 4242");
        r.control = TargetRef{TargetRef::Kind::Pid, a.control_pid, ""};
    }
    if (!a.control_container.empty()) r.control = TargetRef{TargetRef::Kind::Container, a.control_container, ""};
    r.measure = a.measure || r.control.has_value();

    if (!a.delay.empty()) {
        auto d = parse_duration_ns(a.delay, "--delay");
        if (!d) return d.error();
        r.net.delay_ns = *d;
    }
    if (!a.jitter.empty()) {
        if (a.delay.empty())
            return Error::user("--jitter needs --delay: jitter varies a delay (e.g. --delay 50ms --jitter 10ms)");
        auto j = parse_duration_ns(a.jitter, "--jitter");
        if (!j) return j.error();
        if (*j > r.net.delay_ns)
            return Error::user("--jitter " + a.jitter + " exceeds --delay " + a.delay +
                               ": a packet cannot leave before it was sent; use jitter <= delay");
        r.net.jitter_ns = *j;
    }
    if (r.net.delay_ns + r.net.jitter_ns > TARDY_MAX_DELAY_NS)
        return Error::user("--delay plus --jitter is over 5s: fq would drop such packets; use less");
    if (!a.delay.empty() && r.net.delay_ns == 0)
        return Error::user("--delay 0: nothing to inject; give a positive duration or leave it out");
    if (!a.loss.empty()) {
        auto l = parse_percent_ppm(a.loss, "--loss");
        if (!l) return l.error();
        r.net.loss_ppm = *l;
        if (*l == 0)
            return Error::user("--loss 0%: nothing to inject; give a positive percentage or leave it out");
    }
    TARDY_TRY(apply_shape(a.shape, a.loss, r.net));
    if (!a.flows.empty()) {
        auto f = parse_percent_ppm(a.flows, "--flows");
        if (!f) return f.error();
        if (*f == 0) return Error::user("--flows 0%: no flow would be hit; give a positive percentage or leave it out");
        if (!r.net.any())
            return Error::user("--flows picks the flows that packet faults hit; give --delay or --loss with it");
        r.net.flows_ppm = *f == TARDY_PPM ? 0 : *f;
    }
    TARDY_TRY(scope_net(a, r.net));
    // --path filters file faults, stalls of calls on an fd, or both.
    bool file_fails = false;
    for (const auto& f : a.fails)
        if (auto one = parse_fail(f)) file_fails |= one->file;
    if (!a.path.empty() && !file_fails && a.stalls.empty())
        return Error::user("--path filters file faults (open, read, write) and stalls; packet faults and socket calls "
                           "filter with --peer, --port and --proto");
    auto sock = build_sock_faults(a.fails, a.stalls.empty() || file_fails ? a.path : "");
    if (!sock) return sock.error();
    r.sock = *sock;
    auto filter = build_filter(a.filter);
    if (!filter) return filter.error();
    r.filter = *filter;
    if (a.setup_only && r.filter.protos && !(r.filter.protos & TARDY_PROTO_TCP))
        return Error::user("--setup-only hits TCP connection setup, and --proto leaves TCP out; add --proto tcp or "
                           "drop --setup-only");
    if (!r.filter.empty()) {
        // One filter for every fault of the injection: a fault it cannot apply to is refused.
        std::string opts = r.filter.options();
        std::string own = "; put it in an injection of its own";
        if (!r.sock.file_faults.empty())
            return Error::user(opts + " cannot apply to the file fault " + describe(SockFaults{{}, r.sock.file_faults, ""}) +
                               ": file faults filter with --path" + own);
        if (!a.stalls.empty() && (a.on == "files" || !a.path.empty()))
            return Error::user(opts + " picks sockets by their remote end, and " + (a.path.empty() ? "--on files" : "--path") +
                               " picks files: put the file stalls in an injection of their own");
        for (const auto& f : r.sock.faults)
            if (f.op == TARDY_OP_SOCKET && r.filter.addresses())
                return Error::user(opts + " cannot apply to --fail socket=" + errno_name(f.err) +
                                   ": socket() has no address to filter on" + own);
    }
    for (const auto& st : a.stalls) {
        auto one = parse_stall(st);
        if (!one) return one.error();
        for (const auto& other : r.stalls)
            for (long nr : one->nrs)
                if (std::find(other.nrs.begin(), other.nrs.end(), nr) != other.nrs.end())
                    return Error::user("--stall " + st + ": --stall " + other.name + " already covers " +
                                       syscall_name(nr) + "; give each syscall one --stall");
        r.stalls.push_back(*one);
    }
    if (r.stalls.size() > TARDY_STALL_MAX)
        return Error::user("too many --stall options; at most " + std::to_string(TARDY_STALL_MAX));
    TARDY_TRY(scope_stalls(r.stalls, a.on, a.stalls.empty() ? "" : a.path));
    if (!r.filter.empty() && !r.stalls.empty()) {
        // A filtered stall judges the socket a call acts on: its peer, port and protocol.
        for (auto& st : r.stalls) {
            auto calls = stall_syscalls(st.name);
            if (calls && !calls->fd_first)
                return Error::user(r.filter.options() + " cannot apply to --stall " + st.name + ": it acts on no "
                                   "socket; put it in an injection of its own");
            st.on = "sockets";
        }
    }
    if (!r.net.any() && !r.sock.any() && !r.sock.any_file() && r.stalls.empty())
        return Error::user("no fault given: add --delay DUR, --loss PCT, --rate RATE, --duplicate PCT, --fail "
                           "SYSCALL=ERRNO or --stall SYSCALL=DUR");
    if (!r.net.any() && (!a.devices.empty() || !a.netns.empty()))
        return Error::user("--device and --netns choose where packet faults apply; give --delay, --loss, --rate or "
                           "--duplicate, or leave them out");
    if (!r.net.egress() && !r.net.delay_ns && (!a.devices.empty() || !a.netns.empty()))
        return Error::user("--device and --netns choose where egress faults and delays apply; ingress loss acts on "
                           "the packets the target's sockets receive, on any device: leave them out");
    if (!a.for_dur.empty()) {
        auto f = parse_duration_ns(a.for_dur, "--for");
        if (!f) return f.error();
        if (*f < 1'000'000)
            return Error::user("--for " + a.for_dur + ": too short; use at least 1ms");
        r.for_ns = *f;
    }
    if (!a.name.empty()) {
        TARDY_TRY(validate_name(a.name));
        r.name = a.name;
    }
    for (const auto& d : a.devices) {
        if (d.empty() || d.size() >= 16 || d.find('/') != std::string::npos)
            return Error::user("--device '" + d + "': not a network device name");
    }
    r.devices = a.devices;
    r.netns = a.netns;
    r.force = a.force;
    return r;
}

std::string describe(const NetFaults& f) {
    std::string s;
    if (f.delay_ns) {
        s += "delay " + format_duration(f.delay_ns);
        if (f.jitter_ns) s += "±" + format_duration(f.jitter_ns);
        if (f.jitter_ns && f.dist != TARDY_DIST_UNIFORM) s += " " + dist_name(f.dist);
    }
    if (f.loss_ppm) {
        if (!s.empty()) s += ", ";
        s += "loss " + format_ppm(f.loss_ppm) + describe_loss(f);
    }
    s += describe_shape(f);
    if (s.starts_with(", ")) s.erase(0, 2);
    if (s.empty()) return s;
    if (f.flows_ppm) s += " on " + format_ppm(f.flows_ppm) + " of flows";
    if (f.scope & TARDY_SCOPE_SETUP) s += " at TCP connection setup";
    if (f.ingress()) s += f.egress() ? " both ways" : " on ingress";
    return s;
}

std::string describe(const InjectRequest& r) {
    std::string out;
    for (const auto& part : {describe(r.net), describe(r.sock), describe(r.stalls)})
        if (!part.empty()) out += (out.empty() ? "" : "; ") + part;
    if (auto f = describe(r.filter); !f.empty()) out += " " + f;
    return out;
}

void to_json(nlohmann::json& j, const NetFaults& f) {
    j = {{"delay_ns", f.delay_ns}, {"jitter_ns", f.jitter_ns}, {"loss_ppm", f.loss_ppm}, {"flows_ppm", f.flows_ppm},
         {"scope", f.scope}};
    // For people and scripts reading `list --json`; the agent reads scope.
    j["direction"] = f.ingress() ? (f.egress() ? "both" : "ingress") : "egress";
    j["setup_only"] = (f.scope & TARDY_SCOPE_SETUP) != 0;
    shape_to_json(j, f);
}

void from_json(const nlohmann::json& j, NetFaults& f) {
    f.delay_ns = j.value("delay_ns", uint64_t{0});
    f.jitter_ns = j.value("jitter_ns", uint64_t{0});
    f.loss_ppm = j.value("loss_ppm", uint32_t{0});
    f.flows_ppm = j.value("flows_ppm", uint32_t{0});
    f.scope = j.value("scope", uint32_t{TARDY_SCOPE_EGRESS});
    shape_from_json(j, f);
}

}  // namespace tardy
