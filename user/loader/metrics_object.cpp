// SPDX-License-Identifier: Apache-2.0
#include "loader/metrics_object.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>

#include "metrics.skel.h"
#include "model/tardy_abi.hpp"

namespace tardy {

Result<std::unique_ptr<MetricsObject>> MetricsObject::load() {
    std::unique_ptr<MetricsObject> obj(new MetricsObject());
    obj->skel_ = tardy_metrics__open();
    if (!obj->skel_) return Error::sys("open BPF object metrics.bpf.o", errno);
    if (int err = tardy_metrics__load(obj->skel_); err)
        return Error{ErrorKind::User,
                     std::string("cohort metrics need sock_ops programs with BTF socket access; loading them failed: ") +
                         std::strerror(-err) + " (see `tardy doctor`)",
                     -err};
    return obj;
}

MetricsObject::~MetricsObject() { tardy_metrics__destroy(skel_); }

Result<std::vector<CgroupLink>> MetricsObject::attach(const std::string& cgroup_path) {
    std::vector<CgroupLink> links;
    for (auto* p : {skel_->progs.tardy_metrics_sockops, skel_->progs.tardy_metrics_egress,
                    skel_->progs.tardy_metrics_ingress}) {
        auto l = CgroupLink::attach(p, cgroup_path);
        if (!l) return l.error();
        links.push_back(std::move(*l));
    }
    return links;
}

namespace {

int cpus() {
    int n = libbpf_num_possible_cpus();
    return n > 0 ? n : 1;
}

template <typename K, typename Fn>
void for_each_key(int fd, Fn fn) {
    K key{}, next{};
    K* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        fn(key);
    }
}

}  // namespace

Result<std::map<uint64_t, CohortMetrics>> MetricsObject::read(const std::set<uint64_t>& cgids) const {
    std::map<uint64_t, CohortMetrics> out;
    int n = cpus();
    int cfd = bpf_map__fd(skel_->maps.tardy_cohort_counts);
    std::vector<tardy_cohort_counts> per(n);
    for (uint64_t id : cgids) {
        if (bpf_map_lookup_elem(cfd, &id, per.data())) {
            if (errno == ENOENT) continue;
            return Error::sys("read cohort counters", errno);
        }
        CohortMetrics& m = out[id];
        for (const auto& c : per) {
            m.connects += c.connects;
            m.established += c.established;
            m.accepted += c.accepted;
            m.failed_refused += c.failed_refused;
            m.failed_timeout += c.failed_timeout;
            m.failed_abandoned += c.failed_abandoned;
            m.retransmits += c.retransmits;
            m.rtos += c.rtos;
            m.resets_sent += c.resets_sent;
            m.resets_received += c.resets_received;
            m.packets_out += c.packets_out;
            m.bytes_out += c.bytes_out;
            m.packets_in += c.packets_in;
            m.bytes_in += c.bytes_in;
        }
    }
    int hfd = bpf_map__fd(skel_->maps.tardy_cohort_hist);
    std::vector<uint64_t> counts(n);
    for_each_key<tardy_hist_key>(hfd, [&](const tardy_hist_key& k) {
        if (!cgids.contains(k.cgid) || bpf_map_lookup_elem(hfd, &k, counts.data())) return;
        uint64_t sum = 0;
        for (uint64_t c : counts) sum += c;
        if (!sum) return;
        CohortMetrics& m = out[k.cgid];
        (k.kind == TARDY_HIST_CONNECT ? m.connect_us : m.rtt_us).buckets[k.bucket] += sum;
    });
    return out;
}

void MetricsObject::prune(const std::set<uint64_t>& keep) {
    int cfd = bpf_map__fd(skel_->maps.tardy_cohort_counts), hfd = bpf_map__fd(skel_->maps.tardy_cohort_hist);
    std::vector<uint64_t> gone;
    for_each_key<uint64_t>(cfd, [&](uint64_t id) {
        if (!keep.contains(id)) gone.push_back(id);
    });
    for (uint64_t id : gone) (void)bpf_map_delete_elem(cfd, &id);
    std::vector<tardy_hist_key> hgone;
    for_each_key<tardy_hist_key>(hfd, [&](const tardy_hist_key& k) {
        if (!keep.contains(k.cgid)) hgone.push_back(k);
    });
    for (const auto& k : hgone) (void)bpf_map_delete_elem(hfd, &k);
}

}  // namespace tardy
