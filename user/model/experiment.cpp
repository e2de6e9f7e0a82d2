// SPDX-License-Identifier: Apache-2.0
// Experiment files: YAML (yaml-cpp) to an Experiment, every value checked, errors with the
// file's line number.
#include "model/experiment.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "model/hypothesis.hpp"
#include "model/units.hpp"

namespace tardy {
namespace {

// A parse failure with its place; thrown inside this file only, caught by parse_experiment.
struct Bad {
    int line;
    std::string msg;
};

int line_of(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

[[noreturn]] void fail(const YAML::Node& n, const std::string& msg) { throw Bad{line_of(n), msg}; }

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

// The map at `n`, with only `allowed` keys.
void keys_in(const YAML::Node& n, const std::string& where, const std::vector<std::string>& allowed) {
    if (!n.IsMap()) fail(n, where + " must be a map (key: value lines); keys: " + join(allowed));
    for (const auto& kv : n) {
        std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "?";
        bool ok = false;
        for (const auto& a : allowed) ok |= a == k;
        if (!ok) fail(kv.first, "unknown key '" + k + "' in " + where + "; keys there: " + join(allowed));
    }
}

std::string scalar(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) fail(n, what + " must be a single value");
    return n.Scalar();
}

// A scalar or a list of scalars.
std::vector<std::string> scalars(const YAML::Node& n, const std::string& what) {
    std::vector<std::string> out;
    if (n.IsSequence()) {
        for (const auto& e : n) out.push_back(scalar(e, what + " entries"));
    } else {
        out.push_back(scalar(n, what));
    }
    return out;
}

uint64_t duration(const YAML::Node& n, const std::string& what, bool zero_ok = false) {
    auto d = parse_duration_ns(scalar(n, what), what);
    if (!d) fail(n, d.error().message);
    if (*d == 0 && !zero_ok) fail(n, what + ": 0 is no time; give e.g. 30s or leave it out");
    return *d;
}

double number(const YAML::Node& n, const std::string& what) {
    std::string s = scalar(n, what);
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v))
        fail(n, what + ": '" + s + "' is not a number; e.g. " + what + ": 0.01");
    return v;
}

CohortTarget cohort(const YAML::Node& n, const std::string& where) {
    keys_in(n, where, {"cgroup", "pid", "container", "pod"});
    CohortTarget c;
    c.line = line_of(n);
    int named = 0;
    for (const char* k : {"cgroup", "pid", "container", "pod"})
        if (n[k]) named++;
    bool pod_container = n["pod"] && n["container"];
    if (named - pod_container != 1)
        fail(n, where + " names a cohort by exactly one of cgroup, pid, container or pod (pod with container: one "
                        "container of that pod)");
    if (n["cgroup"]) c.target = {TargetRef::Kind::Cgroup, scalar(n["cgroup"], where + ".cgroup"), ""};
    if (n["pid"]) {
        std::string pids;
        for (const auto& p : scalars(n["pid"], where + ".pid")) pids += (pids.empty() ? "" : ",") + p;
        if (pids.find_first_not_of("0123456789,") != std::string::npos)
            fail(n["pid"], where + ".pid: '" + pids + "' is not a process id; e.g. pid: 4242");
        c.target = {TargetRef::Kind::Pid, pids, ""};
    }
    if (n["container"]) c.target = {TargetRef::Kind::Container, scalar(n["container"], where + ".container"), ""};
    if (n["pod"]) c.target = {TargetRef::Kind::Pod, scalar(n["pod"], where + ".pod"),
                              n["container"] ? n["container"].Scalar() : ""};
    if (c.target.value.empty()) fail(n, where + ": the cohort's name is empty");
    return c;
}

HypothesisEntry::Relative relative(const YAML::Node& n, const std::string& what) {
    std::string s = scalar(n, what);
    HypothesisEntry::Relative r;
    r.text = s;
    bool pct = !s.empty() && s.back() == '%';
    std::string num = pct ? s.substr(0, s.size() - 1) : s;
    char* end = nullptr;
    double v = std::strtod(num.c_str(), &end);
    if (num.empty() || (num[0] != '+' && num[0] != '-') || *end != '\0' || !std::isfinite(v))
        fail(n, what + ": '" + s + "' is not a change; write +20% (of the control's value), -10%, or +5 (in the "
                       "metric's unit)");
    if (pct)
        r.factor = 1 + v / 100;
    else
        r.offset = v;
    return r;
}

HypothesisEntry entry(const YAML::Node& n, int id, bool have_control) {
    HypothesisEntry e;
    e.id = id;
    e.line = line_of(n);
    std::string where = "steady_state[" + std::to_string(id) + "]";
    if (!n.IsMap()) fail(n, where + " must be a map with metric: or probe:");
    if (n["metric"]) {
        keys_in(n, where, {"metric", "max", "min", "max_vs_control", "min_vs_control", "over", "min_count"});
        e.metric = scalar(n["metric"], where + ".metric");
        if (!known_metric(e.metric))
            fail(n["metric"], where + ".metric: tardy does not measure '" + e.metric + "'; e.g. " +
                                  "tcp.connect_failure_ratio, tcp.connect_ms.p99, tcp.retransmits_per_s (docs/experiments.md lists them)");
        if (n["max"]) e.max = number(n["max"], "max");
        if (n["min"]) e.min = number(n["min"], "min");
        if (n["max_vs_control"]) e.max_vs_control = relative(n["max_vs_control"], "max_vs_control");
        if (n["min_vs_control"]) e.min_vs_control = relative(n["min_vs_control"], "min_vs_control");
        if (!e.max && !e.min && !e.max_vs_control && !e.min_vs_control)
            fail(n, where + ": no bound; give max, min, max_vs_control or min_vs_control");
        if ((e.max_vs_control || e.min_vs_control) && !have_control)
            fail(n, where + ": a bound relative to the control needs cohorts.control");
        e.min_count = default_min_count(e.metric);
    } else if (n["probe"]) {
        keys_in(n, where, {"probe", "url", "run", "every", "timeout", "expect_status", "min_success", "over", "min_count"});
        ProbeSpec p;
        p.kind = scalar(n["probe"], where + ".probe");
        if (p.kind == "http") {
            if (!n["url"]) fail(n, where + ": an http probe needs url: http://HOST:PORT/PATH");
            p.url = scalar(n["url"], "url");
            if (p.url.rfind("http://", 0) != 0 || p.url.size() <= 7)
                fail(n["url"], "url: '" + p.url + "' is not an http:// URL (https is not probed: give the plain " +
                                   "http endpoint of the health check)");
            if (n["run"]) fail(n["run"], "run: belongs to a command probe, not an http one");
            if (n["expect_status"]) {
                double s = number(n["expect_status"], "expect_status");
                if (s < 100 || s > 599 || s != std::floor(s)) fail(n["expect_status"], "expect_status: want 100..599");
                p.expect_status = static_cast<int>(s);
            }
        } else if (p.kind == "command") {
            if (!n["run"]) fail(n, where + ": a command probe needs run: [PROGRAM, ARGS...]");
            p.run = scalars(n["run"], "run");
            if (p.run.empty() || p.run[0].empty()) fail(n["run"], "run: name the program to run");
            if (n["url"] || n["expect_status"]) fail(n, where + ": url and expect_status belong to an http probe");
        } else {
            fail(n["probe"], where + ".probe: '" + p.kind + "' is not a probe; want http or command");
        }
        if (n["every"]) p.every_ns = duration(n["every"], "every");
        if (p.every_ns < 100'000'000ULL) fail(n["every"], "every: probes at most every 100ms; give e.g. 500ms");
        p.timeout_ns = n["timeout"] ? duration(n["timeout"], "timeout") : std::min<uint64_t>(p.every_ns, 5'000'000'000ULL);
        uint32_t ppm = 1'000'000;
        if (n["min_success"]) {
            auto m = parse_percent_ppm(scalar(n["min_success"], "min_success"), "min_success");
            if (!m) fail(n["min_success"], m.error().message);
            ppm = *m;
        }
        e.min = ppm / 1e6;
        e.probe = p;
        e.min_count = 1;
    } else {
        fail(n, where + " has neither metric: nor probe:");
    }
    if (n["over"]) e.over_ns = duration(n["over"], "over");
    if (n["min_count"]) {
        double c = number(n["min_count"], "min_count");
        if (c < 0 || c != std::floor(c) || c > 1e9) fail(n["min_count"], "min_count: want a whole number of events");
        e.min_count = static_cast<uint64_t>(c);
    }
    return e;
}

const std::vector<std::string> kFaultKeys = {"delay",     "jitter",      "loss",         "flows",       "fail",
                                             "stall",     "on",          "direction",    "setup_only",  "peer",
                                             "except_peer", "port",      "except_port",  "proto",       "path",
                                             "device",    "netns",       "distribution", "correlation", "loss_burst",
                                             "loss_gemodel", "duplicate", "reorder",     "rate",
                                             "dns",       "dns_name",    "reset",        "corrupt",
                                             "reorder_gap"};

MethodStep step(const YAML::Node& n, int i, const CohortTarget& target) {
    std::string where = "method[" + std::to_string(i) + "]";
    keys_in(n, where, {"fault", "for"});
    if (!n["fault"]) fail(n, where + " needs fault: {...} (the flags of tardy inject, e.g. {loss: 5%})");
    if (!n["for"]) fail(n, where + " needs for: DURATION (how long this fault runs, e.g. 2m)");
    MethodStep s;
    s.line = line_of(n);
    const YAML::Node f = n["fault"];
    keys_in(f, where + ".fault", kFaultKeys);
    InjectArgs& a = s.args;
    auto one = [&](const char* k, std::string& out) { if (f[k]) out = scalar(f[k], k); };
    auto many = [&](const char* k, std::vector<std::string>& out) { if (f[k]) out = scalars(f[k], k); };
    one("delay", a.delay);
    one("jitter", a.jitter);
    one("loss", a.loss);
    one("flows", a.flows);
    one("distribution", a.shape.distribution);
    one("correlation", a.shape.correlation);
    one("loss_burst", a.shape.loss_burst);
    one("loss_gemodel", a.shape.loss_gemodel);
    one("duplicate", a.shape.duplicate);
    one("reorder", a.shape.reorder);
    one("rate", a.shape.rate);
    one("dns", a.shape.dns);
    one("dns_name", a.shape.dns_name);
    one("reset", a.shape.reset);
    one("corrupt", a.shape.corrupt);
    one("reorder_gap", a.shape.reorder_gap);
    many("fail", a.fails);
    many("stall", a.stalls);
    one("on", a.on);
    one("direction", a.direction);
    if (f["setup_only"]) {
        std::string v = scalar(f["setup_only"], "setup_only");
        if (v != "true" && v != "false") fail(f["setup_only"], "setup_only: want true or false");
        a.setup_only = v == "true";
    }
    many("peer", a.filter.peers);
    many("except_peer", a.filter.except_peers);
    one("port", a.filter.port);
    one("except_port", a.filter.except_port);
    many("proto", a.filter.protos);
    one("path", a.path);
    many("device", a.devices);
    one("netns", a.netns);
    s.for_ns = duration(n["for"], "for");
    InjectArgs check = a;
    switch (target.target.kind) {
    case TargetRef::Kind::Cgroup: check.cgroup = target.target.value; break;
    case TargetRef::Kind::Pid: check.pid = target.target.value; break;
    case TargetRef::Kind::Container: check.container = target.target.value; break;
    case TargetRef::Kind::Pod: check.pod = target.target.value; check.container = target.target.container; break;
    }
    auto r = build_inject_request(check);
    if (!r) fail(f, where + ".fault: " + r.error().message);
    s.request = *r;
    s.request.for_ns = s.for_ns;
    s.text = describe(s.request);
    return s;
}

Experiment parse(const YAML::Node& root, const std::string& file) {
    Experiment x;
    x.file = file;
    if (!root.IsMap()) fail(root, "an experiment file is a map with title, cohorts, steady_state and method");
    keys_in(root, "the experiment",
            {"title", "description", "cohorts", "window", "steady_state", "baseline", "method", "recovery"});
    if (!root["title"]) fail(root, "missing title: say what the experiment checks, in one line");
    x.title = scalar(root["title"], "title");
    if (root["description"]) x.description = scalar(root["description"], "description");
    const YAML::Node c = root["cohorts"];
    if (!c) fail(root, "missing cohorts: give cohorts: {experiment: {cgroup: ...}, control: {cgroup: ...}}");
    keys_in(c, "cohorts", {"experiment", "control"});
    if (!c["experiment"]) fail(c, "missing cohorts.experiment: the cohort that gets the faults");
    x.experiment = cohort(c["experiment"], "cohorts.experiment");
    if (c["control"]) x.control = cohort(c["control"], "cohorts.control");
    if (const YAML::Node w = root["window"]) {
        keys_in(w, "window", {"days", "hours", "timezone", "except"});
        auto str = [&](const char* k) { return w[k] ? scalar(w[k], std::string("window.") + k) : std::string(); };
        std::vector<std::string> except;
        if (w["except"]) except = scalars(w["except"], "window.except");
        auto parsed = parse_window(str("days"), str("hours"), str("timezone"), except);
        if (!parsed) fail(w, parsed.error().message);
        x.window = *parsed;
    }
    if (const YAML::Node s = root["steady_state"]) {
        if (!s.IsSequence()) fail(s, "steady_state is a list of entries (- metric: ... or - probe: ...)");
        for (size_t i = 0; i < s.size(); i++) x.hypothesis.push_back(entry(s[i], static_cast<int>(i), x.control.has_value()));
    }
    if (root["baseline"]) x.baseline_ns = duration(root["baseline"], "baseline", true);
    if (root["recovery"]) x.recovery_ns = duration(root["recovery"], "recovery", true);
    const YAML::Node m = root["method"];
    if (!m) fail(root, "missing method: the fault steps, e.g. method: [{fault: {loss: 5%}, for: 1m}]");
    if (!m.IsSequence() || m.size() == 0) fail(m, "method is a list of steps, each {fault: {...}, for: DURATION}");
    for (size_t i = 0; i < m.size(); i++) x.method.push_back(step(m[i], static_cast<int>(i), x.experiment));
    return x;
}

}  // namespace

std::string CohortTarget::text() const {
    switch (target.kind) {
    case TargetRef::Kind::Cgroup: return "cgroup " + target.value;
    case TargetRef::Kind::Pid: return "pid " + target.value;
    case TargetRef::Kind::Container: return "container " + target.value;
    case TargetRef::Kind::Pod: return "pod " + target.value + (target.container.empty() ? "" : " container " + target.container);
    }
    return target.value;
}

uint64_t Experiment::planned_ns() const {
    uint64_t t = baseline_ns + recovery_ns;
    for (const auto& s : method) t += s.for_ns;
    return t;
}

Result<Experiment> parse_experiment(const std::string& text, const std::string& file) {
    try {
        YAML::Node root = YAML::Load(text);
        if (!root || root.IsNull()) return Error::user(file + ":1: the file is empty; see docs/experiments.md");
        return parse(root, file);
    } catch (const Bad& b) {
        return Error::user(file + ":" + std::to_string(b.line) + ": " + b.msg);
    } catch (const YAML::Exception& e) {
        return Error::user(file + ":" + std::to_string(e.mark.line >= 0 ? e.mark.line + 1 : 0) + ": not valid YAML: " + e.msg);
    } catch (const std::exception& e) {
        return Error::user(file + ": cannot read it: " + e.what());
    }
}

}  // namespace tardy
