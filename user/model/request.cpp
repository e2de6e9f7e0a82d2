// SPDX-License-Identifier: Apache-2.0
#include "model/request.hpp"

#include <cctype>
#include <optional>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include "model/filter.hpp"
#include "model/request_fields.hpp"
#include "model/sock_faults.hpp"
#include "model/spec.hpp"
#include "model/syscalls.hpp"
#include "model/tardy_abi.hpp"

namespace tardy {
namespace {

using json = nlohmann::json;
using namespace request_fields;

std::string at(const std::string& where, size_t i) { return where + "[" + std::to_string(i) + "]"; }

// As the CLI's validate_name(), starting with a letter or digit: `tardy stop -x` would read
// a leading '-' as an option. Our own message: validate_name() echoes the whole name.
bool valid_name(const std::string& n) {
    return validate_name(n).ok() && std::isalnum(static_cast<unsigned char>(n[0]));
}
constexpr const char* kNameRule = "use 1 to 64 characters from [A-Za-z0-9._-], starting with a letter or digit";

// sock.faults or sock.file_faults: [{op, err, ppm}], one per operation.
Result<std::vector<SockFault>> check_faults(const json& sock, const char* key, bool file) {
    std::string where = std::string("sock.") + key;
    auto a = get_array(sock, key, where, file ? TARDY_FILE_MAX_FAULTS : TARDY_SOCK_MAX_FAULTS);
    if (!a) return a.error();
    std::vector<SockFault> out;
    if (!*a) return out;
    for (size_t i = 0; i < (*a)->size(); i++) {
        const json& x = (**a)[i];
        std::string w = at(where, i);
        TARDY_TRY(need_object(x, w, "{op, err, ppm}"));
        auto op = get_uint(x, "op", w + ".op", 1, file ? uint64_t{TARDY_FOP_WRITE} : uint64_t{TARDY_OP_SOCKET});
        if (!op) return op.error();
        auto err = get_uint(x, "err", w + ".err", 1, 4095);
        if (!err) return err.error();
        if (errno_from_text(std::to_string(*err)) != *err)
            return bad(w + ".err", std::to_string(*err) + " is not an errno");
        auto ppm = get_uint(x, "ppm", w + ".ppm", 1, TARDY_PPM);
        if (!ppm) return ppm.error();
        for (const auto& o : out)
            if (o.op == *op) return bad(w + ".op", "operation " + std::to_string(*op) + " appears twice");
        out.push_back({static_cast<uint32_t>(*op), static_cast<uint32_t>(*err), static_cast<uint32_t>(*ppm), file});
    }
    return out;
}

Result<SockFaults> check_sock(const json& req) {
    SockFaults f;
    const json* s = member(req, "sock");
    if (!s) return f;
    TARDY_TRY(need_object(*s, "sock", "{faults, file_faults, path}"));
    auto faults = check_faults(*s, "faults", false);
    if (!faults) return faults.error();
    auto files = check_faults(*s, "file_faults", true);
    if (!files) return files.error();
    f.faults = *faults;
    f.file_faults = *files;
    auto path = get_string(*s, "path", "sock.path", false);
    if (!path) return path.error();
    if (!path->empty()) {
        TARDY_TRY(check_abs_path(*path, "sock.path", TARDY_PATH_MAX));
        if (!f.any_file()) return bad("sock.path", "filters file faults; give sock.file_faults or leave it out");
    }
    return f;
}

Result<std::pair<uint16_t, uint16_t>> check_ports(const json& f, const char* lo_key, const char* hi_key) {
    auto lo = get_uint(f, lo_key, std::string("filter.") + lo_key, 0, 65535, 0);
    if (!lo) return lo.error();
    auto hi = get_uint(f, hi_key, std::string("filter.") + hi_key, 0, 65535, 0);
    if (!hi) return hi.error();
    if ((*lo || *hi) && (*lo == 0 || *lo > *hi))
        return bad(std::string("filter.") + lo_key, std::string("want 1 <= ") + lo_key + " <= " + hi_key +
                                                        ", or both 0 for none");
    return std::pair<uint16_t, uint16_t>(static_cast<uint16_t>(*lo), static_cast<uint16_t>(*hi));
}

// filter: {peers, except_peers, port_lo, port_hi, except_port_lo, except_port_hi, protos}
Result<Filter> check_filter(const json& req) {
    Filter f;
    const json* o = member(req, "filter");
    if (!o) return f;
    TARDY_TRY(need_object(*o, "filter", "{peers, except_peers, port_lo, port_hi, except_port_lo, except_port_hi, protos}"));
    size_t total = 0;
    for (const char* key : {"peers", "except_peers"}) {
        std::string where = std::string("filter.") + key;
        auto a = get_array(*o, key, where, TARDY_FILTER_MAX_PEERS);
        if (!a) return a.error();
        for (size_t i = 0; *a && i < (*a)->size(); i++) {
            const json& v = (**a)[i];
            if (!v.is_string()) return bad(at(where, i), "want a string, got " + shown(v));
            const auto& p = v.get_ref<const std::string&>();
            if (!parse_peer(p)) return bad(at(where, i), shown(v) + " is not an IPv4 or IPv6 address or prefix");
            (std::string(key) == "peers" ? f.peers : f.except_peers).push_back(p);
        }
        total += *a ? (*a)->size() : 0;
    }
    if (total > TARDY_FILTER_MAX_PEERS)
        return bad("filter.peers", "peers and except_peers together: at most " + std::to_string(TARDY_FILTER_MAX_PEERS));
    auto ports = check_ports(*o, "port_lo", "port_hi");
    if (!ports) return ports.error();
    std::tie(f.port_lo, f.port_hi) = *ports;
    auto except = check_ports(*o, "except_port_lo", "except_port_hi");
    if (!except) return except.error();
    std::tie(f.except_port_lo, f.except_port_hi) = *except;
    auto protos = get_uint(*o, "protos", "filter.protos", 0, TARDY_PROTO_TCP | TARDY_PROTO_UDP | TARDY_PROTO_ICMP, 0);
    if (!protos) return protos.error();
    f.protos = static_cast<uint32_t>(*protos);
    return f;
}

// stalls: [{name, delay_ns, ppm, on, path}]; the stall backend checks how on and path fit the calls.
Result<size_t> check_stalls(const json& req) {
    auto a = get_array(req, "stalls", "stalls", TARDY_STALL_MAX);
    if (!a) return a.error();
    if (!*a) return size_t{0};
    std::set<long> seen;
    for (size_t i = 0; i < (*a)->size(); i++) {
        const json& x = (**a)[i];
        std::string w = at("stalls", i);
        TARDY_TRY(need_object(x, w, "{name, delay_ns, ppm, on, path}"));
        auto name = get_string(x, "name", w + ".name", true);
        auto calls = stall_syscalls(name ? *name : "");
        if (!calls) return name ? bad(w + ".name", shown(json(*name)) + " is not a name --stall accepts") : name.error();
        for (long nr : calls->nrs)
            if (!seen.insert(nr).second) return bad(w + ".name", std::string(syscall_name(nr)) + " is stalled twice");
        auto d = get_uint(x, "delay_ns", w + ".delay_ns", 1, kMaxStallNs), ppm = get_uint(x, "ppm", w + ".ppm", 1, TARDY_PPM);
        if (!d || !ppm) return !d ? d.error() : ppm.error();
        auto on = get_string(x, "on", w + ".on", false), path = get_string(x, "path", w + ".path", false);
        if (!on || !path) return !on ? on.error() : path.error();
        if (*on != "" && *on != "files" && *on != "sockets") return bad(w + ".on", "want \"\", \"files\" or \"sockets\"");
        if (!path->empty()) TARDY_TRY(check_abs_path(*path, w + ".path", TARDY_PATH_MAX));
    }
    return (*a)->size();
}

Result<void> check_cgroup(const json& req, const std::string& w = "cgroup") {
    const json* cg = member(req, "cgroup");
    if (!cg) return bad(w, "missing");
    TARDY_TRY(need_object(*cg, w, "{path, rel, id}"));
    auto path = get_string(*cg, "path", w + ".path", true);
    if (!path) return path.error();
    TARDY_TRY(check_abs_path(*path, w + ".path", kMaxPath));
    auto rel = get_string(*cg, "rel", w + ".rel", true);
    if (!rel) return rel.error();
    auto id = get_uint(*cg, "id", w + ".id", 1, kMaxU64);
    if (!id) return id.error();
    return ok();
}

// The cohorts measured besides the target: "control" (one, with faults) or "observed" (with
// observe, no faults). Returns how many.
Result<size_t> check_cohorts(const json& req, bool observe) {
    auto a = get_array(req, "cohorts", "cohorts", 16);
    if (!a) return a.error();
    size_t n = *a ? (*a)->size() : 0, controls = 0;
    for (size_t i = 0; i < n; i++) {
        const json& x = (**a)[i];
        std::string w = at("cohorts", i);
        TARDY_TRY(need_object(x, w, "{role, cgroup}"));
        auto role = get_string(x, "role", w + ".role", true);
        if (!role) return role.error();
        if (*role != (observe ? "observed" : "control"))
            return bad(w + ".role", observe ? "an observation's cohorts are \"observed\"" : "want \"control\"");
        controls += *role == "control";
        TARDY_TRY(check_cgroup(x, w + ".cgroup"));
    }
    if (controls > 1) return bad("cohorts", "one control cohort per injection");
    return n;
}

Result<void> check_netns(const json& req, bool needed) {
    auto a = get_array(req, "netns", "netns", kMaxU64);
    if (!a) return a.error();
    if (needed && (!*a || (*a)->empty()))
        return bad("netns", "packet faults need the target's network namespaces: give at least one {ino, path}");
    for (size_t i = 0; *a && i < (*a)->size(); i++) {
        const json& x = (**a)[i];
        std::string w = at("netns", i);
        TARDY_TRY(need_object(x, w, "{ino, path}"));
        auto ino = get_uint(x, "ino", w + ".ino", 1, kMaxU64);
        if (!ino) return ino.error();
        auto path = get_string(x, "path", w + ".path", true);
        if (!path) return path.error();
        TARDY_TRY(check_abs_path(*path, w + ".path", kMaxPath));
    }
    return ok();
}

Result<void> check_devices(const json& req) {
    auto a = get_array(req, "devices", "devices", kMaxU64);
    if (!a) return a.error();
    for (size_t i = 0; *a && i < (*a)->size(); i++) {
        const json& d = (**a)[i];
        std::string w = at("devices", i);
        if (!d.is_string()) return bad(w, "want a device name, got " + shown(d));
        const auto& s = d.get_ref<const std::string&>();
        if (s.empty() || s.size() > 15 || s.find_first_of(std::string("/\0", 2)) != std::string::npos)
            return bad(w, shown(d) + " is not a network device name (1 to 15 bytes, no '/')");
    }
    return ok();
}

Result<void> check_inject(const json& req) {
    auto name = get_string(req, "name", "name", false);
    if (!name) return name.error();
    if (!name->empty() && !valid_name(*name)) return bad("name", shown(json(*name)) + ": " + kNameRule);
    TARDY_TRY(check_cgroup(req));
    auto net = check_net(req);
    if (!net) return net.error();
    auto sock = check_sock(req);
    if (!sock) return sock.error();
    auto stalls = check_stalls(req);
    if (!stalls) return stalls.error();
    auto filter = check_filter(req);
    if (!filter) return filter.error();
    if (!filter->empty()) {  // as build_inject_request() checks the command line
        if (sock->any_file()) return bad("filter", "applies to packet and socket faults and stalls on sockets only");
        for (size_t i = 0; i < *stalls; i++)
            if (req["stalls"][i].value("on", "") != "sockets")
                return bad("filter", "applies to stalls on sockets only (stalls[" + std::to_string(i) + "].on)");
        for (const auto& x : sock->faults)
            if (x.op == TARDY_OP_SOCKET && filter->addresses())
                return bad("filter", "peers and ports cannot apply to a socket() fault");
    }
    auto for_ns = get_uint(req, "for_ns", "for_ns", 1, kMaxForNs);
    if (!for_ns) return for_ns.error();
    TARDY_TRY(check_netns(req, net->any()));
    TARDY_TRY(check_devices(req));
    if (const json* f = member(req, "force"); f && !f->is_boolean())
        return bad("force", "want true or false, got " + shown(*f));
    for (const char* flag : {"measure", "observe", "bound"})
        if (const json* f = member(req, flag); f && !f->is_boolean())
            return bad(flag, "want true or false, got " + shown(*f));
    const json* obs = member(req, "observe");
    bool observe = obs && obs->get<bool>();
    auto cohorts = check_cohorts(req, observe);
    if (!cohorts) return cohorts.error();
    bool faults = net->any() || sock->any() || sock->any_file() || *stalls > 0;
    if (observe && faults) return bad("observe", "an observation injects nothing: give no fault with it");
    if (!observe && !faults)
        return Error::user("request has no fault: give net.delay_ns, net.loss_ppm, sock.faults, sock.file_faults "
                           "or stalls");
    return ok();
}

Result<void> check_update(const json& req) {
    auto name = get_string(req, "name", "name", true);
    if (!name) return name.error();
    if (!valid_name(*name)) return bad("name", shown(json(*name)) + ": " + kNameRule);
    auto net = check_net(req);
    if (!net) return net.error();
    auto sock = check_sock(req);
    if (!sock) return sock.error();
    if (member(req, "revision")) {
        auto rev = get_uint(req, "revision", "revision", 0, INT64_MAX);
        if (!rev) return rev.error();
    }
    if (!member(req, "for_ns")) return ok();
    auto for_ns = get_uint(req, "for_ns", "for_ns", 0, kMaxForNs);
    return for_ns ? ok() : Result<void>(for_ns.error());
}

Result<void> check_stop(const json& req) {
    if (const json* all = member(req, "all")) {
        if (!all->is_boolean()) return bad("all", "want true or false, got " + shown(*all));
        if (all->get<bool>()) return ok();
    }
    auto name = get_string(req, "name", "name", false);
    if (!name) return name.error();
    if (name->empty()) return Error::user("stop needs \"all\": true or the \"name\" of an injection");
    if (!valid_name(*name)) return bad("name", shown(json(*name)) + ": " + kNameRule);
    return ok();
}
}  // namespace

Result<void> validate_request(const nlohmann::json& req) {
    try {
        if (!req.is_object()) return Error::user("request is not a JSON object");
        if (const json* v = member(req, "v")) {
            if (!v->is_number_integer() || v->get<int64_t>() != kProtocolVersion)
                return wire::request_version_error(shown(*v));
        }
        const json* op = member(req, "op");
        if (!op) return bad("op", "missing; want inject, update, list, stop, stats or ping");
        if (!op->is_string()) return bad("op", "want a string, got " + shown(*op));
        const auto& o = op->get_ref<const std::string&>();
        if (o == "inject") return check_inject(req);
        if (o == "stop") return check_stop(req);
        if (o == "update") return check_update(req);
        if (o == "stats") {
            auto name = get_string(req, "name", "name", true);
            if (!name || !valid_name(*name)) return name ? bad("name", shown(json(*name)) + ": " + kNameRule) : name.error();
            const json* raw = member(req, "raw");  // a bool, as "bound" and the flags of inject
            return raw && !raw->is_boolean() ? bad("raw", "want true or false, got " + shown(*raw)) : ok();
        }
        if (o == "list" || o == "ping") return ok();
        return bad("op", "unknown request " + shown(*op) + "; want inject, update, list, stop, stats or ping");
    } catch (const std::exception& e) {  // a bug here must refuse the request, not end the agent
        return Error::other(std::string("request check failed: ") + e.what());
    }
}

}  // namespace tardy
