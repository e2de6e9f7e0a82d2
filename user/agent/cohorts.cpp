// SPDX-License-Identifier: Apache-2.0
#include "agent/cohorts.hpp"

#include <algorithm>

#include "agent/log.hpp"

namespace tardy {

Result<CohortMetrics> Cohorts::record(uint64_t id) const {
    auto per = obj_->read({id});  // a record counts the cgroups below its own too
    if (!per) return per.error();
    if (auto it = per->find(id); it != per->end()) last_[id] = std::move(it->second);
    return last_[id];  // zero if never read: linked a moment ago
}

Result<std::vector<CohortMetrics>> Cohorts::readings(const std::vector<Injection::CohortRef>& cohorts) const {
    std::vector<CohortMetrics> out;
    for (const auto& c : cohorts) {
        auto r = record(c.cg.id);
        if (!r) return r.error();
        CohortMetrics m = std::move(*r);
        if (add_tardy_) add_tardy_(c.cg, m);
        out.push_back(std::move(m));
    }
    return out;
}

Result<void> Cohorts::relink() {
    // Every measured cgroup has links of its own (its record), nested ones too: a socket
    // under two measured cgroups runs the programs once for each.
    std::map<uint64_t, std::string> want;
    for (const auto& [n, o] : owners_)
        for (const auto& c : o.cohorts) want[c.cg.id] = c.cg.path;
    for (const auto& [id, path] : want) {
        if (links_.contains(id)) continue;
        auto l = obj_->attach(path);
        if (!l) return l.error();
        links_.emplace(id, std::move(*l));
    }
    std::erase_if(links_, [&](const auto& kv) { return !want.contains(kv.first); });
    std::erase_if(last_, [&](const auto& kv) { return !want.contains(kv.first); });
    return ok();
}

void Cohorts::refresh(uint64_t now_ns) {
    if (!obj_ || now_ns < next_refresh_ns_) return;
    next_refresh_ns_ = now_ns + 1'000'000'000ULL;
    for (const auto& [id, l] : links_) (void)record(id);
}

Result<void> Cohorts::measure(const std::string& owner, const std::vector<Injection::CohortRef>& cohorts) {
    if (!obj_) {
        auto o = MetricsObject::load();
        if (!o) return o.error();
        obj_ = std::move(*o);
    }
    owners_[owner] = Owner{cohorts, {}, mono_ns()};
    auto r = relink();
    if (r) {
        auto base = readings(cohorts);
        if (base) owners_[owner].base = std::move(*base);
        else r = base.error();
    }
    if (!r) forget(owner);
    return r;
}

void Cohorts::forget(const std::string& owner) {
    if (!owners_.erase(owner) || !obj_) return;
    (void)relink();
    if (owners_.empty()) {
        links_.clear();
        obj_.reset();  // the maps go with it
    }
}

Result<CohortReport> Cohorts::report(const std::string& owner) const {
    auto it = owners_.find(owner);
    if (it == owners_.end() || !obj_) return Error::user("'" + owner + "' is not measured");
    auto now = readings(it->second.cohorts);
    if (!now) return now.error();
    CohortReport rep;
    rep.name = owner;
    rep.seconds = double(mono_ns() - it->second.start_ns) / 1e9;
    for (size_t i = 0; i < it->second.cohorts.size(); i++) {
        const auto& c = it->second.cohorts[i];
        Cohort out{c.role, c.cg.rel, c.cg.id, (*now)[i]};
        if (i < it->second.base.size()) out.m.subtract(it->second.base[i]);
        rep.cohorts.push_back(std::move(out));
    }
    return rep;
}

std::vector<CohortReport> Cohorts::reports() const {
    std::vector<CohortReport> out;
    for (const auto& [n, o] : owners_)
        if (auto r = report(n)) out.push_back(std::move(*r));
    return out;
}

}  // namespace tardy
