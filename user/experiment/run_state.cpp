// SPDX-License-Identifier: Apache-2.0
// A run's record: readings, judgements, breaches, and the journal, plan and progress made from them.
#include "experiment/run_state.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

#include "agent/log.hpp"
#include "model/compare.hpp"
#include "model/units.hpp"

namespace tardy {
namespace {

using json = nlohmann::json;

std::string iso(std::chrono::system_clock::time_point t) {
    std::time_t s = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return b;
}

json opt(const std::optional<double>& v) { return v && std::isfinite(*v) ? json(*v) : json(nullptr); }

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}

}  // namespace

RunState::RunState(const Experiment& x) : x_(x) {
    auto add = [&](std::string name, std::string kind, int step, uint64_t ns) {
        Phase p;
        p.name = std::move(name);
        p.kind = std::move(kind);
        p.step = step;
        p.planned_ns = ns;
        if (step >= 0) p.fault = x.method[step].text;
        phases.push_back(std::move(p));
    };
    if (x.baseline_ns) add("baseline", "baseline", -1, x.baseline_ns);
    for (size_t i = 0; i < x.method.size(); i++) add("step " + std::to_string(i + 1), "method", static_cast<int>(i), x.method[i].for_ns);
    if (x.recovery_ns) add("recovery", "recovery", -1, x.recovery_ns);
}

void RunState::started() {
    start_mono_ = mono_ns();
    start_wall_ = std::chrono::system_clock::now();
}

void RunState::set_cohorts(const std::string& e, const std::string& c) {
    exp_rel_ = e;
    ctl_rel_ = c;
}

double RunState::t_s(uint64_t mono) const {
    return mono > start_mono_ ? std::round(double(mono - start_mono_) / 1e6) / 1e3 : 0.0;
}

void RunState::begin_phase(size_t i, const Snapshot& s) {
    snaps_.push_back(s);
    Phase& p = phases[i];
    p.started = true;
    p.start = s.t;
    p.first_snap = p.last_snap = snaps_.size() - 1;
}

void RunState::end_phase(size_t i, bool completed) {
    Phase& p = phases[i];
    p.end = snaps_.empty() ? mono_ns() : snaps_[p.last_snap].t;
    p.completed = completed;
}

void RunState::end_open_phases() {
    for (size_t i = 0; i < phases.size(); i++)
        if (phases[i].started && !phases[i].end) end_phase(i, false);
}

void RunState::phase_fault_end(const std::string& injection, const json& counters) {
    for (auto& p : phases)
        if (p.injection == injection) {
            p.counters = counters;
            p.fault_end = mono_ns();
        }
}

size_t RunState::base_at(size_t phase, uint64_t t) const {
    const Phase& p = phases[phase];
    size_t b = p.first_snap;
    for (size_t k = p.first_snap; k < snaps_.size() && snaps_[k].t <= t; k++) b = k;
    return b;
}

std::optional<MetricValue> RunState::probe_value(int entry, bool control, uint64_t from, uint64_t to) const {
    uint64_t ok = 0, total = 0;
    for (const auto& pr : probes) {
        if (pr.entry != entry || pr.control != control) continue;
        for (const auto& r : pr.results)
            if (r.at_mono_ns >= from && r.at_mono_ns <= to) {
                total++;
                ok += r.ok;
            }
    }
    if (!total) return std::nullopt;
    return MetricValue{double(ok) / double(total), total};
}

std::vector<Judgement> RunState::judge_now(size_t phase, const Snapshot& s) {
    snaps_.push_back(s);
    phases[phase].last_snap = snaps_.size() - 1;
    json values = json::array();
    std::vector<Judgement> out;
    bool have_control = x_.control.has_value();
    for (const auto& e : x_.hypothesis) {
        uint64_t from = std::max(phases[phase].start, s.t > e.over_ns ? s.t - e.over_ns : 0);
        std::optional<MetricValue> ev, cv;
        if (e.probe) {
            ev = probe_value(e.id, false, from, s.t);
            if (have_control) cv = probe_value(e.id, true, from, s.t);
        } else {
            const Snapshot& b = snaps_[base_at(phase, from)];
            double secs = double(s.t - b.t) / 1e9;
            CohortMetrics de = s.exp, dc = s.ctl;
            de.subtract(b.exp);
            dc.subtract(b.ctl);
            ev = metric_value(e.metric, de, secs);
            if (have_control) cv = metric_value(e.metric, dc, secs);
        }
        Judgement j = judge(e, ev, cv);
        values.push_back({{"id", e.id}, {"experiment", opt(j.experiment)}, {"control", opt(j.control)},
                          {"limit", opt(j.limit)}, {"ok", j.judged ? json(j.ok) : json(nullptr)}});
        out.push_back(j);
    }
    samples_.push_back({{"t_s", t_s(s.t)}, {"phase", phase}, {"values", values}});
    return out;
}

void RunState::breach(size_t phase, int id, const std::string& text) {
    breaches_.push_back({{"t_s", t_s(snaps_.empty() ? mono_ns() : snaps_.back().t)}, {"phase", phase}, {"id", id}, {"text", text}});
}

void RunState::drain_probes() {
    for (auto& p : probes)
        for (auto& r : p.prober->drain()) p.results.push_back(std::move(r));
}

void RunState::stop_probes() {
    drain_probes();
    for (auto& p : probes) p.prober.reset();
}

void RunState::finish(const std::string& status, int exit_code, const std::string& reason) {
    end_mono_ = mono_ns();
    end_wall_ = std::chrono::system_clock::now();
    status_ = status;
    exit_code_ = exit_code;
    reason_ = reason;
}

CohortMetrics RunState::phase_diff(const Phase& p, bool control) const {
    CohortMetrics m;
    if (!p.started || snaps_.empty()) return m;
    const Snapshot &a = snaps_[p.first_snap], &b = snaps_[p.last_snap];
    m = control ? b.ctl : b.exp;
    m.subtract(control ? a.ctl : a.exp);
    return m;
}

// Experiment vs control over the method's phases (without a control: the experiment cohort
// during the method vs during the baseline).
json RunState::comparison() const {
    json out = json::array();
    bool vs_control = x_.control.has_value();
    const Phase* baseline = nullptr;
    for (const auto& p : phases)
        if (p.kind == "baseline" && p.started) baseline = &p;
    if (!vs_control && !baseline) return out;
    CohortMetrics em, cm;
    std::vector<std::pair<uint64_t, uint64_t>> method_spans, other_spans;
    for (const auto& p : phases) {
        if (p.kind != "method" || !p.started) continue;
        em.add(phase_diff(p, false));
        if (vs_control) cm.add(phase_diff(p, true));
        method_spans.push_back({p.start, p.end ? p.end : end_mono_});
    }
    if (method_spans.empty()) return out;
    if (!vs_control) {
        cm = phase_diff(*baseline, false);
        other_spans.push_back({baseline->start, baseline->end});
    } else {
        other_spans = method_spans;
    }
    auto in = [](const std::vector<std::pair<uint64_t, uint64_t>>& spans, uint64_t t) {
        for (const auto& [a, b] : spans)
            if (t >= a && t <= b) return true;
        return false;
    };
    for (const auto& e : x_.hypothesis) {
        std::vector<Weighted> de, dc;
        if (e.probe) {
            for (const auto& pr : probes) {
                if (pr.entry != e.id) continue;
                for (const auto& r : pr.results) {
                    Weighted w{r.ok ? 1.0 : 0.0, 1};
                    if (!pr.control && in(method_spans, r.at_mono_ns)) de.push_back(w);
                    if (vs_control ? pr.control && in(method_spans, r.at_mono_ns)
                                   : !pr.control && in(other_spans, r.at_mono_ns))
                        dc.push_back(w);
                }
            }
        } else {
            de = distribution(e.metric, em);
            dc = distribution(e.metric, cm);
            // Latencies and the failure ratio are compared per event even when one side has
            // none; only counts and rates fall back to one value per sampling interval.
            if (default_min_count(e.metric) == 0) {
                de.clear();
                dc.clear();
                // Counts and rates: one value per interval between readings.
                for (size_t k = 1; k < snaps_.size(); k++) {
                    const Snapshot &a = snaps_[k - 1], &b = snaps_[k];
                    double secs = double(b.t - a.t) / 1e9;
                    CohortMetrics x = b.exp, y = b.ctl;
                    x.subtract(a.exp);
                    y.subtract(a.ctl);
                    if (in(method_spans, a.t) && in(method_spans, b.t)) {
                        if (auto v = metric_value(e.metric, x, secs)) de.push_back({v->value, 1});
                        if (vs_control)
                            if (auto v = metric_value(e.metric, y, secs)) dc.push_back({v->value, 1});
                    }
                    if (!vs_control && in(other_spans, a.t) && in(other_spans, b.t))
                        if (auto v = metric_value(e.metric, x, secs)) dc.push_back({v->value, 1});
                }
            }
        }
        Comparison c = compare(de, dc);
        json j = to_json(c);
        j["id"] = e.id;
        j["metric"] = e.probe ? e.text() : e.metric;
        j["unit"] = e.unit();
        j["against"] = vs_control ? "control" : "baseline";
        j["text"] = describe(c, e.unit() == "ms" ? "ms" : "") + (vs_control ? "" : " (vs the baseline)");
        out.push_back(j);
    }
    return out;
}

json RunState::journal() const {
    json j;
    j["title"] = x_.title;
    j["description"] = x_.description;
    j["file"] = x_.file;
    j["status"] = status_;
    j["exit_code"] = exit_code_;
    j["reason"] = reason_;
    j["started"] = iso(start_wall_);
    j["ended"] = iso(end_wall_);
    j["duration_s"] = t_s(end_mono_);
    j["planned_s"] = double(x_.planned_ns()) / 1e9;
    j["cohorts"] = {{"experiment", {{"cgroup", exp_rel_}, {"as", x_.experiment.text()}}},
                    {"control", x_.control ? json{{"cgroup", ctl_rel_}, {"as", x_.control->text()}} : json(nullptr)}};
    j["window"] = x_.window ? json(describe(*x_.window)) : json(nullptr);
    j["hypothesis"] = json::array();
    for (const auto& e : x_.hypothesis)
        j["hypothesis"].push_back({{"id", e.id}, {"text", e.text()}, {"kind", e.probe ? "probe" : "metric"},
                                   {"unit", e.unit()}, {"line", e.line}, {"over_s", double(e.over_ns) / 1e9},
                                   {"min_count", e.min_count}});
    j["phases"] = json::array();
    for (const auto& p : phases) {
        json ph = {{"name", p.name}, {"kind", p.kind}, {"planned_s", double(p.planned_ns) / 1e9},
                   {"started", p.started}, {"completed", p.completed},
                   {"start_s", p.started ? json(t_s(p.start)) : json(nullptr)},
                   {"end_s", p.end ? json(t_s(p.end)) : json(nullptr)}};
        ph["fault"] = p.step >= 0 ? json{{"text", p.fault}, {"injection", p.injection}, {"counters", p.counters},
                                         {"line", x_.method[p.step].line},
                                         {"stopped_s", p.fault_end ? json(t_s(p.fault_end)) : json(nullptr)}}
                                  : json(nullptr);
        if (p.started) {
            ph["cohorts"] = json::array();
            ph["cohorts"].push_back(cohort_json(Cohort{"experiment", exp_rel_, 0, phase_diff(p, false)}));
            if (x_.control) ph["cohorts"].push_back(cohort_json(Cohort{"control", ctl_rel_, 0, phase_diff(p, true)}));
        }
        j["phases"].push_back(ph);
    }
    j["samples"] = samples_;
    j["breaches"] = breaches_;
    j["comparison"] = comparison();
    return j;
}

std::string RunState::plan(const std::vector<wire::Inject>& steps) const {
    Window zone = x_.window ? *x_.window : Window{};
    auto at = [&](uint64_t offset_ns) {
        return format_in_zone(zone, std::chrono::system_clock::now() +
                                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                            std::chrono::nanoseconds(offset_ns)));
    };
    std::string s = "Plan for " + x_.file + ": " + x_.title + "\n";
    s += "  experiment  " + x_.experiment.text() + " -> " + exp_rel_ + "\n";
    s += "  control     " + (x_.control ? x_.control->text() + " -> " + ctl_rel_ : std::string("none")) + "\n";
    if (x_.window && window_shut.empty()) s += "  window      " + describe(*x_.window) + ": open now, closes " + closes + "\n";
    if (x_.window && !window_shut.empty())
        s += "  window      " + describe(*x_.window) + ": SHUT now (" + window_shut + "); a run now would be refused\n";
    s += "  hypothesis\n";
    if (x_.hypothesis.empty()) s += "    (none: the run only applies the faults)\n";
    for (const auto& e : x_.hypothesis)
        s += "    [" + std::to_string(e.id) + "] " + e.text() + " (over the last " + format_duration(e.over_ns) +
             (e.min_count ? ", judged after " + std::to_string(e.min_count) + (e.min_count == 1 ? " event" : " events") : std::string()) + ")\n";
    uint64_t t = 0;
    for (const auto& p : phases) {
        s += "  " + at(t) + "  " + p.name + " for " + format_duration(p.planned_ns);
        if (p.step >= 0) s += ": " + p.fault + " (injection " + steps[p.step].name + ")";
        s += "\n";
        t += p.planned_ns;
    }
    s += "  " + at(t) + "  end\n";
    s += "Nothing was injected (dry run).\n";
    return s;
}

std::string RunState::progress_line(size_t phase, uint64_t left_ns, const std::vector<Judgement>& js) const {
    const Phase& p = phases[phase];
    std::string s = p.name + (p.step >= 0 ? " (" + p.fault + ")" : "") + ", " +
                    format_duration(left_ns / 1'000'000'000ULL * 1'000'000'000ULL) + " left";
    for (size_t k = 0; k < js.size() && k < x_.hypothesis.size(); k++) {
        const auto& e = x_.hypothesis[k];
        std::string v = js[k].experiment ? num(*js[k].experiment) : "-";
        if (js[k].control) v += " (control " + num(*js[k].control) + ")";
        s += " | " + (e.probe ? "probe " + e.probe->kind : e.metric) + " " + v +
             (!js[k].judged ? " waiting" : js[k].ok ? " ok" : " BREACH");
    }
    return s;
}

}  // namespace tardy
