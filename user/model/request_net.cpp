// SPDX-License-Identifier: Apache-2.0
// The "net" object of an inject or update request: packet faults and their shapes.
#include "model/request.hpp"

#include "model/net_shape.hpp"
#include "model/request_fields.hpp"
#include "model/spec.hpp"
#include "model/tardy_abi.hpp"

namespace tardy::request_fields {

namespace {

// The shapes (model/net_shape.hpp), each within what the programs can act on.
Result<void> check_shape(const json& n, NetFaults& f) {
    struct Field {
        const char* key;
        uint32_t* out;
        uint64_t hi;
    };
    for (auto [key, out, hi] : {Field{"dist", &f.dist, TARDY_DISTS - 1}, Field{"corr_ppm", &f.corr_ppm, TARDY_PPM},
                                Field{"ge_p_ppm", &f.ge_p_ppm, TARDY_PPM}, Field{"ge_r_ppm", &f.ge_r_ppm, TARDY_PPM},
                                Field{"ge_bad_loss_ppm", &f.ge_bad_loss_ppm, TARDY_PPM},
                                Field{"ge_good_loss_ppm", &f.ge_good_loss_ppm, TARDY_PPM},
                                Field{"duplicate_ppm", &f.duplicate_ppm, TARDY_PPM},
                                Field{"reorder_ppm", &f.reorder_ppm, TARDY_PPM},
                                Field{"reset_ppm", &f.reset_ppm, TARDY_PPM},
                                Field{"corrupt_ppm", &f.corrupt_ppm, TARDY_PPM},
                                Field{"reorder_gap", &f.reorder_gap, TARDY_PPM}}) {
        auto v = get_uint(n, key, std::string("net.") + key, 0, hi, 0);
        if (!v) return v.error();
        *out = static_cast<uint32_t>(*v);
    }
    auto rate = get_uint(n, "rate_bytes_per_s", "net.rate_bytes_per_s", 0, 12'500'000'000ULL, 0);
    if (!rate) return rate.error();
    if (*rate && *rate < 8000) return bad("net.rate_bytes_per_s", "below 8000 (64kbit); want 0 or 8000 and more");
    f.rate_bytes_per_s = *rate;
    auto rcode = get_uint(n, "dns_rcode", "net.dns_rcode", 0, TARDY_DNS_TIMEOUT, 0);
    if (!rcode) return rcode.error();
    if (*rcode && *rcode != 2 && *rcode != 3 && *rcode != 5 && *rcode != TARDY_DNS_TIMEOUT)
        return bad("net.dns_rcode", "want 0, 2 (SERVFAIL), 3 (NXDOMAIN), 5 (REFUSED) or 256 (no answer)");
    f.dns_rcode = static_cast<uint32_t>(*rcode);
    auto dppm = get_uint(n, "dns_ppm", "net.dns_ppm", f.dns_rcode ? 1 : 0, TARDY_PPM, 0);
    if (!dppm) return dppm.error();
    f.dns_ppm = static_cast<uint32_t>(*dppm);
    auto dname = get_string(n, "dns_name", "net.dns_name", false);
    if (!dname) return dname.error();
    if (!dname->empty() && (!f.dns_rcode || !dns_wire_name(*dname)))
        return bad("net.dns_name", "want a domain such as example.com, with dns_rcode set");
    f.dns_name = *dname;
    if (f.ge_p_ppm && !f.ge_r_ppm) return bad("net.ge_r_ppm", "0 with ge_p_ppm set: the bad state would never end");
    if (f.reorder_ppm && !f.delay_ns) return bad("net.reorder_ppm", "needs delay_ns: the rest must wait");
    if (f.reorder_gap > 1 && !f.reorder_ppm) return bad("net.reorder_gap", "needs reorder_ppm");
    if (f.dist != TARDY_DIST_UNIFORM && f.delay_ns + 4 * f.jitter_ns > TARDY_MAX_DELAY_NS)
        return bad("net", "delay_ns plus 4 x jitter_ns is over 5s");
    if ((f.scope & TARDY_SCOPE_INGRESS) &&
        (f.duplicate_ppm || f.reorder_ppm || f.rate_bytes_per_s || f.dns_rcode || f.reset_ppm || f.corrupt_ppm))
        return bad("net.scope", "ingress takes loss and delay only");
    if ((f.scope & TARDY_SCOPE_SETUP) && f.reset_ppm) return bad("net.reset_ppm", "not with a setup-only scope");
    return ok();
}

}  // namespace

Result<NetFaults> check_net(const json& req) {
    const json* n = member(req, "net");
    if (!n) return bad("net", "missing; want an object (may be {})");
    TARDY_TRY(need_object(*n, "net", "{delay_ns, jitter_ns, loss_ppm, flows_ppm, scope, ...}"));
    NetFaults f;
    auto delay = get_uint(*n, "delay_ns", "net.delay_ns", 0, TARDY_MAX_DELAY_NS, 0);
    if (!delay) return delay.error();
    auto jitter = get_uint(*n, "jitter_ns", "net.jitter_ns", 0, TARDY_MAX_DELAY_NS, 0);
    if (!jitter) return jitter.error();
    if (*jitter > *delay) return bad("net.jitter_ns", "exceeds net.delay_ns; use jitter <= delay");
    if (*delay + *jitter > TARDY_MAX_DELAY_NS) return bad("net", "delay_ns plus jitter_ns is over 5s");
    auto loss = get_uint(*n, "loss_ppm", "net.loss_ppm", 0, TARDY_PPM, 0);
    if (!loss) return loss.error();
    f.delay_ns = *delay;
    f.jitter_ns = *jitter;
    f.loss_ppm = static_cast<uint32_t>(*loss);
    auto flows = get_uint(*n, "flows_ppm", "net.flows_ppm", 0, TARDY_PPM - 1, 0);
    if (!flows) return flows.error();
    f.flows_ppm = static_cast<uint32_t>(*flows);
    auto scope = get_uint(*n, "scope", "net.scope", 0, TARDY_SCOPE_EGRESS | TARDY_SCOPE_INGRESS | TARDY_SCOPE_SETUP,
                          TARDY_SCOPE_EGRESS);
    if (!scope) return scope.error();
    f.scope = static_cast<uint32_t>(*scope);
    if (!(f.scope & (TARDY_SCOPE_EGRESS | TARDY_SCOPE_INGRESS)))
        return bad("net.scope", "names no direction; set bit 1 (egress), 2 (ingress) or both");
    TARDY_TRY(check_shape(*n, f));
    return f;
}

}  // namespace tardy::request_fields
