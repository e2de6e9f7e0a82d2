// SPDX-License-Identifier: Apache-2.0
#include "model/sock_faults.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include "model/units.hpp"

namespace tardy {
namespace {

struct OpName {
    const char* name;
    uint32_t op;
};
constexpr OpName kOps[] = {{"connect", TARDY_OP_CONNECT}, {"sendmsg", TARDY_OP_SENDMSG}, {"sendto", TARDY_OP_SENDMSG},
                           {"bind", TARDY_OP_BIND},       {"socket", TARDY_OP_SOCKET}};
constexpr OpName kFileOps[] = {{"open", TARDY_FOP_OPEN}, {"openat", TARDY_FOP_OPEN}, {"read", TARDY_FOP_READ},
                               {"write", TARDY_FOP_WRITE}};
constexpr uint32_t kMaxErrno = 133;  // EHWPOISON: the last errno Linux defines

bool parse_uint(const std::string& s, uint32_t& out) {
    auto [p, e] = std::from_chars(s.data(), s.data() + s.size(), out);
    return e == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

uint32_t errno_from_text(const std::string& text) {
    uint32_t n = 0;
    if (parse_uint(text, n)) return n >= 1 && n <= kMaxErrno && strerrorname_np(static_cast<int>(n)) ? n : 0;
    for (uint32_t e = 1; e <= kMaxErrno; e++) {
        const char* name = strerrorname_np(static_cast<int>(e));
        if (name && text == name) return e;
    }
    return 0;
}

std::string errno_name(uint32_t err) {
    const char* n = strerrorname_np(static_cast<int>(err));
    return n ? n : std::to_string(err);
}

const char* op_name(uint32_t op) {
    for (const auto& o : kOps)
        if (o.op == op) return o.name;
    return "?";
}

static const char* file_op_name(uint32_t op) {
    for (const auto& o : kFileOps)
        if (o.op == op) return o.name;
    return "?";
}

Result<SockFault> parse_fail(const std::string& spec) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
        return Error::user("--fail '" + spec + "': write SYSCALL=ERRNO[:PCT], e.g. connect=ECONNREFUSED:25%");
    std::string sys = spec.substr(0, eq), rest = spec.substr(eq + 1);
    SockFault f;
    for (const auto& o : kOps)
        if (sys == o.name) f.op = o.op;
    for (const auto& o : kFileOps) {
        if (sys == o.name) {
            f.op = o.op;
            f.file = true;
        }
    }
    if (!f.op)
        return Error::user("--fail " + sys + ": unknown syscall; use connect, sendmsg (sendto), bind, socket, "
                           "open (openat), read or write");
    std::string err = rest, pct;
    if (auto colon = rest.find(':'); colon != std::string::npos) {
        err = rest.substr(0, colon);
        pct = rest.substr(colon + 1);
    }
    f.err = errno_from_text(err);
    if (!f.err)
        return Error::user("--fail " + spec + ": unknown errno '" + err + "'; use a name like ECONNREFUSED or a number 1-133");
    if (!pct.empty()) {
        auto p = parse_percent_ppm(pct, "--fail " + sys);
        if (!p) return p.error();
        if (*p == 0) return Error::user("--fail " + spec + ": 0% fails nothing; give a positive percentage");
        f.ppm = *p;
    }
    return f;
}

Result<SockFaults> build_sock_faults(const std::vector<std::string>& fails, const std::string& path) {
    SockFaults f;
    for (const auto& s : fails) {
        auto one = parse_fail(s);
        if (!one) return one.error();
        auto& list = one->file ? f.file_faults : f.faults;
        for (const auto& other : list)
            if (other.op == one->op)
                return Error::user("--fail " + s + ": that syscall is already failed by another --fail; give one per syscall");
        list.push_back(*one);
    }
    if (f.file_faults.size() > TARDY_FILE_MAX_FAULTS) return Error::user("too many file --fail options");
    if (!path.empty()) {
        if (f.file_faults.empty())
            return Error::user("--path filters file faults (open, read, write); socket faults filter with --peer and --port");
        if (path[0] != '/' || path.size() >= TARDY_PATH_MAX)
            return Error::user("--path '" + path + "': give an absolute path prefix under " +
                               std::to_string(TARDY_PATH_MAX) + " characters, e.g. /var/lib/app");
        f.path = path;
        while (f.path.size() > 1 && f.path.back() == '/') f.path.pop_back();
    }
    if (f.faults.size() > TARDY_SOCK_MAX_FAULTS) return Error::user("too many --fail options");
    return f;
}

Result<tardy_sock_rule> encode(const SockFaults& f, const Filter& filter, uint32_t slot, uint64_t expires_ns) {
    tardy_sock_rule r{};
    r.expires_ns = expires_ns;
    r.slot = slot;
    r.n_faults = static_cast<uint32_t>(f.faults.size());
    for (size_t i = 0; i < f.faults.size() && i < TARDY_SOCK_MAX_FAULTS; i++)
        r.faults[i] = {f.faults[i].op, f.faults[i].err, f.faults[i].ppm, 0};
    auto tf = encode(filter);
    if (!tf) return tf.error();
    r.filter = *tf;
    return r;
}

Result<tardy_file_rule> encode_file(const SockFaults& f, uint32_t slot, uint64_t expires_ns) {
    tardy_file_rule r{};
    r.expires_ns = expires_ns;
    r.slot = slot;
    r.n_faults = static_cast<uint32_t>(f.file_faults.size());
    for (size_t i = 0; i < f.file_faults.size() && i < TARDY_FILE_MAX_FAULTS; i++)
        r.faults[i] = {f.file_faults[i].op, f.file_faults[i].err, f.file_faults[i].ppm, 0};
    if (f.path.size() >= TARDY_PATH_MAX) return Error::user("--path too long");
    r.prefix_len = static_cast<uint32_t>(f.path.size());
    std::memcpy(r.prefix, f.path.data(), f.path.size());
    return r;
}

std::string describe(const SockFaults& f) {
    std::string s;
    for (const auto& x : f.file_faults) {
        if (!s.empty()) s += ", ";
        s += std::string(file_op_name(x.op)) + "=" + errno_name(x.err);
        if (x.ppm != TARDY_PPM) s += " " + format_ppm(x.ppm);
    }
    if (!f.path.empty()) s += " under " + f.path;
    for (const auto& x : f.faults) {
        if (!s.empty()) s += ", ";
        s += std::string(op_name(x.op)) + "=" + errno_name(x.err);
        if (x.ppm != TARDY_PPM) s += " " + format_ppm(x.ppm);
    }
    return s;
}

void to_json(nlohmann::json& j, const SockFaults& f) {
    j = nlohmann::json{{"faults", nlohmann::json::array()}, {"file_faults", nlohmann::json::array()}, {"path", f.path}};
    for (const auto& x : f.faults) j["faults"].push_back({{"op", x.op}, {"err", x.err}, {"ppm", x.ppm}});
    for (const auto& x : f.file_faults) j["file_faults"].push_back({{"op", x.op}, {"err", x.err}, {"ppm", x.ppm}});
}

void from_json(const nlohmann::json& j, SockFaults& f) {
    f = {};
    for (const auto& x : j.value("faults", nlohmann::json::array()))
        f.faults.push_back({x.at("op"), x.at("err"), x.at("ppm"), false});
    for (const auto& x : j.value("file_faults", nlohmann::json::array()))
        f.file_faults.push_back({x.at("op"), x.at("err"), x.at("ppm"), true});
    f.path = j.value("path", std::string());
}

}  // namespace tardy
