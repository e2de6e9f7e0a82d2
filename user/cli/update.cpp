// SPDX-License-Identifier: Apache-2.0
// `tardy update`: the flags given merged into the injection's faults as `list` shows them,
// sent as one update; what is not given stays.
#include "cli/update.hpp"

#include <unistd.h>

#include <cstdio>
#include <optional>

#include "agent/client.hpp"
#include "cli/report.hpp"
#include "model/sock_faults.hpp"
#include "model/tardy_abi.hpp"
#include "model/spec.hpp"
#include "model/units.hpp"
#include "model/wire.hpp"

namespace tardy {

CLI::App* add_update_command(CLI::App& app, UpdateArgs& a) {
    auto* c = app.add_subcommand("update", "Change a live injection's faults in place: no gap, counters kept");
    c->add_option("name", a.name, "Injection name (see tardy list)")->required();
    c->add_option("--loss", a.loss, "New loss, e.g. 10% (0% ends the loss if another packet fault remains)");
    c->add_option("--delay", a.delay, "New delay, e.g. 200ms (an injection with a delay only)");
    c->add_option("--jitter", a.jitter, "New jitter, e.g. 20ms (at most the delay)");
    c->add_option("--distribution", a.shape.distribution, "New shape of the jitter: uniform, normal, pareto, paretonormal");
    c->add_option("--correlation", a.shape.correlation, "New correlation of the random draws, e.g. 25% (0% ends it)");
    c->add_option("--loss-burst", a.shape.loss_burst, "Make the loss come in bursts of N packets on average, e.g. 4");
    c->add_option("--loss-gemodel", a.shape.loss_gemodel, "New Gilbert-Elliott loss, netem's P[,R[,1-H[,1-K]]]");
    c->add_option("--duplicate", a.shape.duplicate, "New share of packets sent twice, e.g. 2% (0% ends it)");
    c->add_option("--corrupt", a.shape.corrupt, "New share of packets damaged, e.g. 5% (0% ends it)");
    c->add_option("--reorder", a.shape.reorder, "New share of packets that skip the delay, e.g. 25% (0% ends it)");
    c->add_option("--reorder-gap", a.shape.reorder_gap, "New netem gap of --reorder, e.g. 5 (give --reorder with it)");
    c->add_option("--rate", a.shape.rate, "New rate, e.g. 5mbit (an injection with a rate only)");
    c->add_option("--dns", a.shape.dns, "New DNS fault: nxdomain|servfail|refused|timeout[:PCT]");
    c->add_option("--dns-name", a.shape.dns_name, "With --dns: only queries for this domain");
    c->add_option("--reset", a.shape.reset, "New share of TCP connections reset, e.g. 20% (0% ends it)");
    c->add_option("--fail", a.fails,
                  "New syscall faults, replacing all of them: SYSCALL=ERRNO[:PCT] (repeatable; the same calls "
                  "as before)");
    c->add_option("--for", a.for_dur, "New deadline: DUR from now (kernel-enforced, for every fault of it)");
    c->footer("What is not given stays. The injection keeps its name, target, filters, direction, devices and\n"
              "counters; an update changes the size of its faults, not their kinds (a delay cannot appear or\n"
              "vanish, socket faults cannot be added to a packet injection): for that, stop it and inject anew.\n"
              "Examples:\n"
              "  sudo tardy inject --cgroup shop.slice --loss 5% --name lossy\n"
              "  sudo tardy update lossy --loss 20%            # worse, same counters\n"
              "  sudo tardy update slow-db --delay 500ms --jitter 50ms --for 10m\n"
              "  sudo tardy update lossy --loss 10% --loss-burst 8   # the same share, in longer bursts\n"
              "  sudo tardy update thin-pipe --rate 2mbit --duplicate 0%\n"
              "  sudo tardy update refusals --fail connect=ECONNREFUSED:50%");
    return c;
}

namespace {

// The shape flags merged into the injection's packet faults: what is given replaces, 0% ends
// a share, a new --loss without --loss-burst is independent loss again.
Result<void> merge_shape(const UpdateArgs& a, const NetFaults& cur, bool new_loss, NetFaults& net) {
    ShapeArgs s = a.shape;
    auto ends = [](std::string& v, uint32_t& field) {
        if (v == "0%") field = 0, v.clear();
    };
    ends(s.duplicate, net.duplicate_ppm);
    ends(s.corrupt, net.corrupt_ppm);
    ends(s.reorder, net.reorder_ppm);
    if (!net.reorder_ppm) net.reorder_gap = 0;  // the gap spaces reorders: none left to space
    ends(s.reset, net.reset_ppm);
    ends(s.correlation, net.corr_ppm);
    if (!s.rate.empty() && !cur.rate_bytes_per_s)
        return Error::user("injection '" + a.name + "' has no rate, and one cannot be added live (it needs fq on the "
                           "devices, set up when an injection starts); stop it and inject anew with --rate");
    if ((new_loss || !s.loss_gemodel.empty()) && s.loss_burst.empty())
        net.ge_p_ppm = net.ge_r_ppm = net.ge_bad_loss_ppm = net.ge_good_loss_ppm = 0;
    std::string loss;  // what --loss-burst shapes: the new loss, else the current one
    if (!s.loss_burst.empty() && net.loss_ppm) loss = format_ppm(net.loss_ppm);
    return apply_shape(s, loss, net);
}

// The flags merged into the injection's current faults (as `list` showed them, at its revision).
Result<wire::Update> merge(const UpdateArgs& a, const wire::InjectionInfo& cur, std::optional<uint32_t> loss,
                           std::optional<uint64_t> delay, std::optional<uint64_t> jitter,
                           std::optional<uint64_t> for_ns) {
    wire::Update u{a.name, cur.net, cur.sock, for_ns.value_or(0), static_cast<int64_t>(cur.revision)};
    if (loss) u.net.loss_ppm = *loss;
    if (delay) u.net.delay_ns = *delay;
    if (jitter) u.net.jitter_ns = *jitter;
    if ((delay || jitter) && cur.net.delay_ns == 0)
        return Error::user("injection '" + a.name + "' has no delay, and one cannot be added live (it needs fq on "
                           "the devices, set up when an injection starts); stop it and inject anew with --delay");
    if (u.net.jitter_ns > u.net.delay_ns)
        return Error::user("--jitter " + format_duration(u.net.jitter_ns) + " exceeds the delay " +
                           format_duration(u.net.delay_ns) + "; use jitter <= delay");
    if (auto s = merge_shape(a, cur.net, loss.has_value(), u.net); !s) return s.error();
    if (!a.fails.empty()) {
        auto f = build_sock_faults(a.fails, cur.sock.path);
        if (!f) return f.error();
        u.sock.faults = f->faults;
        u.sock.file_faults = f->file_faults;
    }
    return u;
}

}  // namespace

int cmd_update(const UpdateArgs& a, const Paths& p) {
    if (auto v = validate_name(a.name); !v) return report(v.error());
    if (a.loss.empty() && a.delay.empty() && a.jitter.empty() && a.fails.empty() && a.for_dur.empty() &&
        a.shape.empty())
        return report(Error::user("give what to change: --loss, --delay, --jitter, --rate, --duplicate, --fail, --for, "
                                  "... (see tardy update --help)"));
    // The flags on their own first: a typo is refused before the agent is asked anything.
    std::optional<uint32_t> loss;
    std::optional<uint64_t> delay, jitter, for_ns;
    if (!a.loss.empty()) {
        auto l = parse_percent_ppm(a.loss, "--loss");
        if (!l) return report(l.error());
        loss = *l;
    }
    if (!a.delay.empty()) {
        auto d = parse_duration_ns(a.delay, "--delay");
        if (!d) return report(d.error());
        if (*d == 0) return report(Error::user("--delay 0 ends nothing live; stop the injection to end its delay"));
        delay = *d;
    }
    if (!a.jitter.empty()) {
        auto j = parse_duration_ns(a.jitter, "--jitter");
        if (!j) return report(j.error());
        jitter = *j;
    }
    if (!a.for_dur.empty()) {
        auto f = parse_duration_ns(a.for_dur, "--for");
        if (!f) return report(f.error());
        if (*f == 0) return report(Error::user("--for 0 ends nothing; use tardy stop " + a.name));
        for_ns = *f;
    }
    for (const auto& spec : a.fails)  // each on its own; together, with the injection's --path, below
        if (auto f = parse_fail(spec); !f) return report(f.error());
    if (geteuid() != 0) return report(Error::user("tardy update needs root; run it with sudo"));
    // Read, merge, send with the revision merged into; another update in between makes the
    // agent refuse it (wire::kStaleUpdate), and the merge is done again on the new faults.
    wire::Update u;
    for (int attempt = 0;; attempt++) {
        auto rep = agent_call(p, wire::request(wire::List{}));
        if (!rep) return report(Error::user("no agent is running, so no injection named '" + a.name + "'"));
        auto r = reply_or_error(*rep);
        if (!r) return report(r.error());
        auto list = wire::read_reply<wire::ListReply>(*r);
        if (!list) return report(list.error());
        const wire::InjectionInfo* cur = nullptr;
        for (const auto& i : list->injections)
            if (i.name == a.name) cur = &i;
        if (!cur) return report(Error::user("no active injection named '" + a.name + "'; see tardy list"));
        auto merged = merge(a, *cur, loss, delay, jitter, for_ns);
        if (!merged) return report(merged.error());
        u = *merged;
        auto done = agent_call(p, wire::request(u));
        if (!done) return report(done.error());
        auto d = reply_or_error(*done);
        if (d) break;
        if (attempt >= 20 || d.error().message.find(wire::kStaleUpdate) == std::string::npos) return report(d.error());
    }
    std::fprintf(stderr, "tardy: %s now %s%s%s%s\n", a.name.c_str(), describe(u.net).c_str(),
                 u.net.any() && (u.sock.any() || u.sock.any_file()) ? "; " : "", describe(u.sock).c_str(),
                 for_ns ? (", for " + format_duration(*for_ns) + " from now").c_str() : "");
    return 0;
}

}  // namespace tardy
