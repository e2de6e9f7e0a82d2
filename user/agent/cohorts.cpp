// SPDX-License-Identifier: Apache-2.0
#include "agent/cohorts.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "agent/log.hpp"

namespace tardy {

std::set<uint64_t> Cohorts::subtree(const std::string& path, uint64_t id) {
    std::set<uint64_t> ids{id};
    std::error_code ec;
    namespace fs = std::filesystem;
    for (fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
        if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
        struct stat st{};
        if (lstat(it->path().c_str(), &st) == 0) ids.insert(static_cast<uint64_t>(st.st_ino));
    }
    return ids;
}

Result<std::vector<CohortMetrics>> Cohorts::readings(const std::vector<Injection::CohortRef>& cohorts) const {
    std::vector<CohortMetrics> out;
    for (const auto& c : cohorts) {
        auto ids = subtree(c.cg.path, c.cg.id);
        auto per = obj_->read(ids);
        if (!per) return per.error();
        CohortMetrics m;
        for (const auto& [id, one] : *per) m.add(one);
        if (add_tardy_) add_tardy_(c.cg, m);
        out.push_back(std::move(m));
    }
    return out;
}

Result<void> Cohorts::relink() {
    std::map<uint64_t, std::string> with;
    for (const auto& [n, o] : owners_)
        for (const auto& c : o.cohorts) with[c.cg.id] = c.cg.path;
    auto want = topmost_cgroups(with);
    // New links first: a moment of a packet counted twice, never one of a cohort not measured.
    for (const auto& [id, path] : want) {
        if (links_.contains(id)) continue;
        auto l = obj_->attach(path);
        if (!l) return l.error();
        links_.emplace(id, std::move(*l));
    }
    std::erase_if(links_, [&](const auto& kv) { return !want.contains(kv.first); });
    return ok();
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
        return;
    }
    std::set<uint64_t> keep;
    for (const auto& [n, o] : owners_)
        for (const auto& c : o.cohorts) keep.merge(subtree(c.cg.path, c.cg.id));
    obj_->prune(keep);
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
