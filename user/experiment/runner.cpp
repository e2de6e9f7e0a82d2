// SPDX-License-Identifier: Apache-2.0
// `tardy run`'s loop: phases, samples, the hypothesis judged, faults put in and rolled back.
#include "experiment/runner.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>

#include "agent/client.hpp"
#include "agent/inject.hpp"
#include "agent/log.hpp"
#include "experiment/run_state.hpp"
#include "model/hypothesis.hpp"
#include "model/units.hpp"
#include "model/wire.hpp"
#include "sys/cgroup.hpp"

namespace tardy {
namespace {

using json = nlohmann::json;

// Blocks the signals that end a run and reads them from a signalfd; restores the mask after.
struct Signals {
    sigset_t set{}, old{};
    Fd fd;
    Signals() {
        sigemptyset(&set);
        for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
        sigprocmask(SIG_BLOCK, &set, &old);
        fd = Fd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    }
    ~Signals() {
        fd = Fd();
        // A signal that arrived while blocked and was not read would be delivered now: read it.
        timespec zero{};
        while (sigtimedwait(&set, nullptr, &zero) > 0) {
        }
        sigprocmask(SIG_SETMASK, &old, nullptr);
    }
    // The signal that arrived, 0 if none.
    int take() {
        signalfd_siginfo si{};
        return read(fd.get(), &si, sizeof si) == sizeof si ? static_cast<int>(si.ssi_signo) : 0;
    }
};

class Runner {
public:
    Runner(const Experiment& x, const RunOptions& o) : x_(x), o_(o), st_(x) {}
    RunOutcome go();

private:
    Result<void> prepare();
    Result<void> start_probes();
    Result<void> start_observation();
    Result<Snapshot> sample();
    void note_counters();
    // Runs phase `i` to its end; false when the run ended in it (outcome set).
    bool run_phase(size_t i, Signals& sig);
    void stop_step();
    void end(int code, const std::string& status, const std::string& reason);
    void progress(size_t phase, uint64_t left_ns, const std::vector<Judgement>& js, bool force_line);

    const Experiment& x_;
    RunOptions o_;
    RunState st_;
    wire::CgroupRef exp_, ctl_;
    std::vector<wire::Inject> steps_;
    std::string obs_name_;
    std::string step_name_;  // the live step injection, "" when none
    json step_counters_;
    uint64_t closes_mono_ = UINT64_MAX;
    uint64_t last_line_ns_ = 0;
    RunOutcome out_;
    bool ended_ = false;
};

void Runner::end(int code, const std::string& status, const std::string& reason) {
    if (ended_) return;
    ended_ = true;
    out_.exit_code = code;
    out_.status = status;
    out_.reason = reason;
}

Result<void> Runner::prepare() {
    if (x_.window) {
        auto w = window_at(*x_.window, std::chrono::system_clock::now());
        if (!w.open && o_.dry_run) {
            st_.closes.clear();
            st_.window_shut = w.why + "; it opens next " + format_in_zone(*x_.window, w.opens);
        } else if (!w.open)
            return Error::user("outside its window (" + describe(*x_.window) + "): " + w.why + "; it opens next " +
                               format_in_zone(*x_.window, w.opens));
        if (w.open) {
            auto left = w.closes - std::chrono::system_clock::now();
            closes_mono_ = mono_ns() + static_cast<uint64_t>(std::max<int64_t>(
                                           0, std::chrono::duration_cast<std::chrono::nanoseconds>(left).count()));
            st_.closes = format_in_zone(*x_.window, w.closes);
        }
    }
    auto cgfs = CgroupFs::detect();
    if (!cgfs) return cgfs.error();
    auto resolve = [&](const CohortTarget& c, const char* role) -> Result<wire::CgroupRef> {
        auto cg = cgfs->resolve(c.target);
        if (!cg) return Error::user(x_.file + ":" + std::to_string(c.line) + ": cohorts." + role + ": " + cg.error().message);
        if (cg->rel == "/") return Error::user(x_.file + ":" + std::to_string(c.line) + ": cohorts." + role +
                                               " is the root cgroup, which holds every process on the host");
        return wire::CgroupRef{cg->path, cg->rel, cg->id};
    };
    auto e = resolve(x_.experiment, "experiment");
    if (!e) return e.error();
    exp_ = *e;
    if (x_.control) {
        auto c = resolve(*x_.control, "control");
        if (!c) return c.error();
        ctl_ = *c;
        if (ctl_.id == exp_.id) return Error::user("the control cohort is the experiment cohort; give another cgroup");
        // A cgroup's metrics count its descendants: nested cohorts would measure each other.
        auto within = [](const std::string& a, const std::string& b) { return a.size() > b.size() && a.compare(0, b.size(), b) == 0 && a[b.size()] == '/'; };
        if (within(ctl_.rel, exp_.rel) || within(exp_.rel, ctl_.rel))
            return Error::user(x_.file + ":" + std::to_string(x_.control->line) + ": cohorts: the control " + ctl_.rel +
                               (within(ctl_.rel, exp_.rel) ? " is inside the experiment " : " holds the experiment ") + exp_.rel +
                               "; give two cgroups side by side (siblings)");
    }
    st_.set_cohorts(exp_.rel, x_.control ? ctl_.rel : "");
    std::string base = "run-" + std::to_string(getpid());
    obs_name_ = base;
    for (size_t i = 0; i < x_.method.size(); i++) {
        const auto& s = x_.method[i];
        auto req = prepare_inject(s.request, *cgfs);
        if (!req) return Error::user(x_.file + ":" + std::to_string(s.line) + ": method[" + std::to_string(i) + "]: " +
                                     req.error().message);
        req->name = base + "-" + std::to_string(i + 1);
        req->for_ns = s.for_ns;
        req->bound = true;
        req->cohorts.clear();
        req->measure = false;
        steps_.push_back(*req);
        if (!o_.dry_run || geteuid() == 0) {
            if (auto k = check_kernel_can(s.request); !k)
                return Error::user(x_.file + ":" + std::to_string(s.line) + ": method[" + std::to_string(i) + "]: " +
                                   k.error().message);
        }
    }
    return ok();
}

Result<void> Runner::start_probes() {
    for (const auto& e : x_.hypothesis) {
        if (!e.probe) continue;
        auto p = Prober::start(*e.probe, exp_.path);
        if (!p) return Error::user("steady_state[" + std::to_string(e.id) + "] in the experiment cohort: " + p.error().message);
        st_.probes.push_back({e.id, false, std::move(*p), {}});
        if (x_.control) {
            auto q = Prober::start(*e.probe, ctl_.path);
            if (!q) return Error::user("steady_state[" + std::to_string(e.id) + "] in the control cohort: " + q.error().message);
            st_.probes.push_back({e.id, true, std::move(*q), {}});
        }
    }
    return ok();
}

Result<void> Runner::start_observation() {
    wire::Inject req;
    req.name = obs_name_;
    req.cgroup = exp_;
    req.observe = true;
    req.bound = true;
    req.for_ns = x_.planned_ns() + 60'000'000'000ULL;  // bound to this process; the margin is for slow steps
    req.cohorts.push_back({"observed", exp_});
    if (x_.control) req.cohorts.push_back({"observed", ctl_});
    auto rep = submit_inject(o_.paths, req, o_.self_exe);
    if (!rep) return rep.error();
    return ok();
}

Result<Snapshot> Runner::sample() {
    auto rep = agent_call(o_.paths, wire::request(wire::Stats{obs_name_, true}), 5000);
    if (!rep) return rep.error();
    auto r = reply_or_error(*rep);
    if (!r) return r.error();
    Snapshot s;
    s.t = mono_ns();
    const json* raw = r->contains("raw") ? &(*r)["raw"] : nullptr;
    if (!raw || !raw->is_array()) return Error::other("the agent sent no raw cohort metrics");
    for (const auto& c : *raw) {
        auto m = metrics_from_raw(c.value("metrics", json::object()));
        if (!m) return m.error();
        std::string cg = c.value("cgroup", "");
        if (cg == exp_.rel) s.exp = *m;
        else if (x_.control && cg == ctl_.rel) s.ctl = *m;
    }
    return s;
}

// The live step's counters, read while it runs: it may end by its own --for a moment before
// the runner stops it, and its counters go with it.
void Runner::note_counters() {
    if (step_name_.empty()) return;
    auto rep = agent_call(o_.paths, wire::request(wire::List{}), 5000);
    if (!rep) return;
    auto r = reply_or_error(*rep);
    if (!r) return;
    for (const auto& i : r->value("injections", json::array()))
        if (i.value("name", "") == step_name_) step_counters_ = i.value("counters", json::object());
}

void Runner::stop_step() {
    if (step_name_.empty()) return;
    (void)agent_call(o_.paths, wire::request(wire::Stop{step_name_, false}), 5000);
    st_.phase_fault_end(step_name_, step_counters_);
    step_name_.clear();
}

void Runner::progress(size_t phase, uint64_t left_ns, const std::vector<Judgement>& js, bool force_line) {
    if (o_.quiet) return;
    std::string line = st_.progress_line(phase, left_ns, js);
    uint64_t now = mono_ns();
    if (o_.progress_tty) {
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        if (force_line) std::fprintf(stderr, "\n");
    } else if (force_line || now - last_line_ns_ >= 10'000'000'000ULL) {
        std::fprintf(stderr, "%s\n", line.c_str());
        last_line_ns_ = now;
    }
    std::fflush(stderr);
}

bool Runner::run_phase(size_t i, Signals& sig) {
    Phase& ph = st_.phases[i];
    // The phase's first reading comes before its fault: its interval holds all of the fault.
    auto first = sample();
    if (!first) {
        end(kRunAborted, "aborted", "cannot read the cohorts' metrics: " + first.error().message);
        return false;
    }
    st_.begin_phase(i, *first);
    if (ph.step >= 0) {
        step_counters_ = json::object();
        auto rep = submit_inject(o_.paths, steps_[ph.step], o_.self_exe);
        if (!rep) {
            end(kRunRefused, "refused", "method[" + std::to_string(ph.step) + "] (" + ph.fault + "): " + rep.error().message);
            return false;
        }
        step_name_ = rep->name;
        ph.injection = rep->name;
    }
    uint64_t deadline = ph.start + ph.planned_ns;
    progress(i, ph.planned_ns, {}, true);
    uint64_t next_sample = ph.start + o_.sample_ns;
    for (;;) {
        uint64_t now = mono_ns();
        uint64_t wake = std::min({deadline, next_sample, closes_mono_});
        std::vector<pollfd> fds{{sig.fd.get(), POLLIN, 0}};
        for (const auto& p : st_.probes) fds.push_back({p.prober->fd(), POLLIN, 0});
        int ms = wake > now ? static_cast<int>((wake - now + 999'999) / 1'000'000) : 0;
        (void)poll(fds.data(), fds.size(), ms);
        if (int s = sig.take()) {
            end(kRunAborted, "aborted", std::string("stopped by ") + strsignal(s));
            out_.signalled = true;
            return false;
        }
        st_.drain_probes();
        now = mono_ns();
        if (now < wake && now < deadline) continue;  // probe results only: judged at the next sample
        next_sample = std::max(next_sample + o_.sample_ns, now + o_.sample_ns / 2);
        auto snap = sample();
        if (!snap) {
            end(kRunAborted, "aborted", "the observation of the cohorts ended (tardy kill or stop?): " + snap.error().message);
            return false;
        }
        note_counters();
        auto js = st_.judge_now(i, *snap);
        for (size_t k = 0; k < js.size(); k++) {
            if (js[k].ok) continue;
            const auto& e = x_.hypothesis[k];
            std::string what = "steady_state[" + std::to_string(e.id) + "] " + e.text() + ": " + js[k].why;
            st_.breach(i, e.id, what);
            if (ph.kind == "baseline") {
                end(kRunBaselineNotMet, "baseline_not_met", "during the baseline, before any fault: " + what);
            } else {
                stop_step();  // at once, before anything else
                end(kRunDeviated, "deviated", "in " + ph.name + ": " + what + (ph.step >= 0 ? "; the fault was rolled back" : ""));
            }
            progress(i, 0, js, true);
            return false;
        }
        if (snap->t >= closes_mono_) {
            end(kRunAborted, "aborted", "the window closed (" + st_.closes + ")");
            return false;
        }
        progress(i, deadline > snap->t ? deadline - snap->t : 0, js, false);
        if (snap->t >= deadline) break;
    }
    return true;
}

RunOutcome Runner::go() {
    st_.started();
    if (auto r = prepare(); !r) {
        end(kRunRefused, "refused", r.error().message);
        st_.finish(out_.status, out_.exit_code, out_.reason);
        out_.journal = st_.journal();
        return out_;
    }
    if (o_.dry_run) {
        std::printf("%s", st_.plan(steps_).c_str());
        end(kRunHeld, "planned", "dry run: nothing injected");
        return out_;
    }
    // Probers fork before anything else runs: no thread of ours exists yet.
    if (auto r = start_probes(); !r) {
        end(kRunRefused, "refused", r.error().message);
    } else {
        Signals sig;
        if (auto o = start_observation(); !o) {
            end(kRunRefused, "refused", "cannot measure the cohorts: " + o.error().message);
        } else {
            for (size_t i = 0; i < st_.phases.size() && !ended_; i++) {
                bool go_on = run_phase(i, sig);
                stop_step();
                if (!go_on) break;
                st_.end_phase(i, true);
            }
            // A signal that came after the last reading still aborts: its sender wants the run
            // to stop, and a suite must not go on to the next file.
            if (int s = ended_ ? 0 : sig.take()) {
                end(kRunAborted, "aborted", std::string("stopped by ") + strsignal(s));
                out_.signalled = true;
            }
            if (!ended_) end(kRunHeld, "held", "the steady state held through every phase");
            stop_step();
            st_.end_open_phases();
            (void)agent_call(o_.paths, wire::request(wire::Stop{obs_name_, false}), 5000);
        }
        if (sig.take()) out_.signalled = true;  // after the verdict: it stands, but a suite stops
    }
    st_.stop_probes();
    st_.finish(out_.status, out_.exit_code, out_.reason);
    out_.journal = st_.journal();
    if (!o_.quiet && o_.progress_tty) std::fprintf(stderr, "\n");
    return out_;
}

}  // namespace

RunOutcome run_experiment(const Experiment& x, const RunOptions& o) {
    try {
        Runner r(x, o);
        return r.go();
    } catch (const std::exception& e) {
        RunOutcome out;
        out.exit_code = kRunAborted;
        out.status = "aborted";
        out.reason = std::string("internal error: ") + e.what();
        return out;
    }
}

}  // namespace tardy
