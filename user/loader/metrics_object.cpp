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

Result<std::map<uint64_t, CohortMetrics>> MetricsObject::read(const std::set<uint64_t>& cgids) const {
    std::map<uint64_t, CohortMetrics> out;
    int n = libbpf_num_possible_cpus();
    if (n <= 0) return Error::sys("count the possible CPUs", -n);
    int fd = bpf_map__fd(skel_->maps.tardy_cohort);
    std::vector<tardy_cohort_record> per(static_cast<size_t>(n));  // ~27 KiB a CPU
    for (uint64_t id : cgids) {
        if (bpf_map_lookup_elem(fd, &id, per.data())) {
            if (errno == ENOENT) continue;  // not linked: nothing measured there
            return Error::sys("read a cohort's record", errno);
        }
        CohortMetrics& m = out[id];
        for (const auto& r : per) {
            const auto& c = r.counts;
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
            for (uint32_t b = 0; b < TARDY_HIST_BUCKETS; b++) {
                if (uint64_t v = r.hist[TARDY_HIST_CONNECT][b]) m.connect_us.buckets[b] += v;
                if (uint64_t v = r.hist[TARDY_HIST_RTT][b]) m.rtt_us.buckets[b] += v;
            }
        }
    }
    return out;
}

}  // namespace tardy
