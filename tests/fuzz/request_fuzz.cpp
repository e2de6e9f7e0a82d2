// SPDX-License-Identifier: Apache-2.0
// Fuzz targets for cgroup directory names (container ids), inject flags and the agent's
// request lines.
#include "fuzz.hpp"

namespace tardy::fuzz {
namespace {

// ---- cgroup names and inject flags ------------------------------------------------------------

bool all_lower_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

void fuzz_container_id(std::string_view in) {
    std::string n(in);
    std::string id = container_id_of(n);
    if (id.empty()) return;
    CHECK(id.size() == 64 && all_lower_hex(id), "container id is not 64 hex: " + id, in);
    bool shape = n == id;
    for (const char* p : {"docker-", "cri-containerd-", "crio-", "libpod-"}) shape |= n == p + id + ".scope";
    CHECK(shape, "container id from an unexpected name", in);
    CHECK(!n.starts_with("crio-conmon-"), "conmon scope taken for a container", in);
}

void fuzz_inject(std::string_view in) {
    // Fields separated by '\x01': cgroup pid container delay jitter loss for name netns devices...
    std::vector<std::string> f;
    size_t start = 0;
    for (size_t i = 0; i <= in.size(); ++i)
        if (i == in.size() || in[i] == '\x01') {
            f.emplace_back(in.substr(start, i - start));
            start = i + 1;
        }
    f.resize(std::max<size_t>(f.size(), 9));
    InjectArgs a;
    a.cgroup = f[0];
    a.pid = f[1];
    a.container = f[2];
    a.delay = f[3];
    a.jitter = f[4];
    a.loss = f[5];
    a.for_dur = f[6];
    a.name = f[7];
    a.netns = f[8];
    // The rest are devices, or filter flags by a prefix: P: --peer, X: --except-peer,
    // O: --port, E: --except-port, R: --proto, F: --flows.
    for (size_t i = 9; i < f.size(); ++i) {
        const std::string& x = f[i];
        std::string v = x.size() >= 2 ? x.substr(2) : "";
        if (x.starts_with("P:")) a.filter.peers.push_back(v);
        else if (x.starts_with("X:")) a.filter.except_peers.push_back(v);
        else if (x.starts_with("O:")) a.filter.port = v;
        else if (x.starts_with("E:")) a.filter.except_port = v;
        else if (x.starts_with("R:")) a.filter.protos.push_back(v);
        else if (x.starts_with("F:")) a.flows = v;
        // netem's shapes: D: --distribution, C: --correlation, B: --loss-burst, G: --loss-gemodel,
        // U: --duplicate, Q: --reorder, W: --reorder-gap, T: --rate, Z: --reset, X: --corrupt.
        else if (x.starts_with("D:")) a.shape.distribution = v;
        else if (x.starts_with("C:")) a.shape.correlation = v;
        else if (x.starts_with("B:")) a.shape.loss_burst = v;
        else if (x.starts_with("G:")) a.shape.loss_gemodel = v;
        else if (x.starts_with("U:")) a.shape.duplicate = v;
        else if (x.starts_with("Q:")) a.shape.reorder = v;
        else if (x.starts_with("T:")) a.shape.rate = v;
        else if (x.starts_with("Z:")) a.shape.reset = v;
        else if (x.starts_with("X:")) a.shape.corrupt = v;
        else if (x.starts_with("W:")) a.shape.reorder_gap = v;
        else a.devices.push_back(x);
    }
    auto r = build_inject_request(a);
    if (!r) {
        check_error(r.error(), in, "");
        return;
    }
    int targets = !a.cgroup.empty() + !a.pid.empty() + !a.container.empty();
    CHECK(targets == 1, "accepted without exactly one target", in);
    CHECK(r->net.any(), "accepted without a fault", in);
    CHECK(r->net.jitter_ns <= r->net.delay_ns, "jitter over delay", in);
    CHECK(r->net.delay_ns + r->net.jitter_ns <= 5'000'000'000ULL, "delay + jitter over 5s", in);
    CHECK(r->net.loss_ppm <= 1'000'000, "loss over 100%", in);
    CHECK(r->for_ns >= 1'000'000, "--for under 1ms", in);
    CHECK(r->name.empty() || validate_name(r->name), "invalid name accepted", in);
    CHECK(r->name.size() <= 64, "long name", in);
    for (const auto& d : r->devices) CHECK(!d.empty() && d.size() < 16 && !has(d, "/"), "bad device accepted", in);
    if (!a.delay.empty()) CHECK(r->net.delay_ns > 0, "zero delay accepted", in);
    if (!a.loss.empty()) CHECK(r->net.loss_ppm > 0, "zero loss accepted", in);
    const Filter& fl = r->filter;
    CHECK(fl.peers.size() + fl.except_peers.size() <= TARDY_FILTER_MAX_PEERS, "too many peers accepted", in);
    CHECK((fl.port_lo == 0) == (fl.port_hi == 0) && fl.port_lo <= fl.port_hi, "bad port range accepted", in);
    CHECK(fl.protos <= 7, "unknown protocol accepted", in);
    CHECK(r->net.flows_ppm < 1'000'000, "flows over 100% accepted", in);
    const NetFaults& n = r->net;
    CHECK(n.dist < TARDY_DISTS && (n.dist == TARDY_DIST_UNIFORM || n.jitter_ns), "a distribution without jitter", in);
    CHECK(n.dist == TARDY_DIST_UNIFORM || n.delay_ns + 4 * n.jitter_ns <= TARDY_MAX_DELAY_NS, "a table past 5s", in);
    CHECK(!n.ge_p_ppm || (n.ge_r_ppm && n.ge_p_ppm <= TARDY_PPM && n.ge_r_ppm <= TARDY_PPM &&
                          n.ge_bad_loss_ppm <= TARDY_PPM && n.ge_good_loss_ppm <= TARDY_PPM && n.loss_ppm),
          "a burst model that never ends or loses nothing", in);
    CHECK(!n.reorder_ppm || n.delay_ns, "reorder without a delay", in);
    CHECK(!n.rate_bytes_per_s || (n.rate_bytes_per_s >= 8000 && n.rate_bytes_per_s <= 12'500'000'000ULL),
          "a rate out of range", in);
    CHECK(n.duplicate_ppm <= TARDY_PPM && n.reorder_ppm <= TARDY_PPM && n.corr_ppm <= TARDY_PPM, "a share over 100%",
          in);
    CHECK(!n.ingress() || !(n.duplicate_ppm || n.rate_bytes_per_s || n.reset_ppm || n.corrupt_ppm),
          "an egress shape on ingress", in);
    CHECK(n.corrupt_ppm <= TARDY_PPM, "a corrupt share over 100%", in);
    CHECK(n.reorder_gap <= 1'000'000 && (n.reorder_gap <= 1 || n.reorder_ppm), "a gap without reorder", in);
    CHECK(n.reset_ppm <= TARDY_PPM && !(n.reset_ppm && (n.scope & TARDY_SCOPE_SETUP)), "a reset out of range or on setup",
          in);
    auto enc = encode(fl);
    CHECK(enc && enc->n_peers == fl.peers.size() && enc->n_except == fl.except_peers.size(),
          "an accepted filter does not encode", in);
    (void)describe(fl), (void)describe(*r);
}

namespace {

// ---- agent requests ---------------------------------------------------------------------------

// Reads an accepted request the way Agent::inject() and Agent::stop() do (agent/agent.cpp):
// after handle_line() let it through, none of this may throw.
nlohmann::json read_like_agent(const nlohmann::json& req, std::string_view in) {
    using nlohmann::json;
    try {
        std::string op = req.value("op", std::string());
        if (op == "stop") {
            auto stop = req.get<wire::Stop>();
            CHECK(stop.all || validate_name(stop.name), "stop accepted without all or a name", in);
        }
        if (op == "update") {
            auto u = req.get<wire::Update>();
            CHECK(validate_name(u.name), "update accepted with an invalid name", in);
            CHECK(u.net.jitter_ns <= u.net.delay_ns && u.net.loss_ppm <= TARDY_PPM &&
                      u.sock.faults.size() <= TARDY_SOCK_MAX_FAULTS && u.for_ns <= kMaxForNs,
                  "update accepted out of range", in);
        }
        if (op != "inject") return {{"ok", true}};
        auto w = req.get<wire::Inject>();
        const std::string &name = w.name, &path = w.cgroup.path, &rel = w.cgroup.rel;
        uint64_t id = w.cgroup.id, for_ns = w.for_ns;
        const auto& net = w.net;
        const auto& devices = w.devices;
        const auto& sock = w.sock;
        const auto& stalls = w.stalls;
        CHECK(!net.any() || !w.netns.empty(), "packet faults accepted without a network namespace", in);
        CHECK(name.empty() || validate_name(name), "invalid name accepted", in);
        CHECK(!path.empty() && path[0] == '/' && id > 0 && for_ns > 0, "cgroup or for_ns accepted out of range", in);
        CHECK(net.any() || sock.any() || sock.any_file() || !stalls.empty(), "accepted without a fault", in);
        CHECK(net.jitter_ns <= net.delay_ns && net.delay_ns + net.jitter_ns <= TARDY_MAX_DELAY_NS &&
                  net.loss_ppm <= TARDY_PPM, "net accepted out of range", in);
        CHECK(stalls.size() <= TARDY_STALL_MAX && sock.faults.size() <= TARDY_SOCK_MAX_FAULTS &&
                  sock.file_faults.size() <= TARDY_FILE_MAX_FAULTS &&
                  w.filter.peers.size() + w.filter.except_peers.size() <= TARDY_FILTER_MAX_PEERS,
              "too many faults accepted", in);
        for (const auto& s : stalls) {
            CHECK(!s.nrs.empty() && s.delay_ns > 0 && s.ppm <= TARDY_PPM, "bad stall", in);
            for (long nr : s.nrs) CHECK(std::strcmp(syscall_name(nr), "?") != 0, "stall of an unknown syscall", in);
        }
        CHECK(encode(sock, w.filter, 0, 1) && encode_file(sock, 0, 1), "an accepted sock does not encode", in);
        CHECK(w.filter.empty() || (stalls.empty() && !sock.any_file()), "a filter accepted with stalls or file faults", in);
        CHECK(net.flows_ppm < TARDY_PPM, "flows_ppm accepted out of range", in);
        CHECK(net.dist < TARDY_DISTS && (!net.ge_p_ppm || net.ge_r_ppm) && (!net.reorder_ppm || net.delay_ns) &&
                  (!net.rate_bytes_per_s || net.rate_bytes_per_s >= 8000),
              "a shape accepted out of range", in);
        (void)describe(w.filter);
        (void)describe(sock), (void)describe(net), (void)describe(stalls), (void)rel, (void)devices;
    } catch (const std::exception& e) {
        fail(std::string("an accepted request made the agent's reads throw: ") + e.what(), in);
    }
    return {{"ok", true}};
}

// Valid inject requests as prepare_inject() builds them, with their values as slots: the
// input fills one slot of one template (the rest keep their defaults), so most inputs get
// past the JSON parser to the field checks. The last choice sends the input as the whole
// line. Two templates: a filter takes no stalls or file faults, so one has those and the
// other a filter of every kind.
constexpr std::string_view kRequestTemplate =
    R"({"v":7,"op":"inject","name":@,"cgroup":{"path":@,"rel":"a","id":@},"net":{"delay_ns":@,"jitter_ns":@,)"
    R"("loss_ppm":@},"sock":{"faults":[{"op":@,"err":@,"ppm":@}],)"
    R"("file_faults":[{"op":@,"err":@,"ppm":@}],"path":@},"stalls":[{"name":@,"delay_ns":@,"ppm":@,"on":@,"path":@}],"for_ns":@,)"
    R"("netns":[{"ino":@,"path":@}],"devices":[@]})";
constexpr std::string_view kRequestDefaults[] = {
    R"("api")", R"("/sys/fs/cgroup/a")", "7", "50000000", "1000", "50000", "1", "111", "250000",
    "1", "13", "1000000", R"("/var/lib")", R"("write")", "50000000", "1000000", R"("")",
    R"("")", "300000000000", "4026531840",
    R"("/proc/1/ns/net")", R"("eth0")"};
constexpr std::string_view kFilteredTemplate =
    R"({"v":7,"op":"inject","cgroup":{"path":"/sys/fs/cgroup/a","rel":"a","id":7},"net":{"loss_ppm":@,"flows_ppm":@,"scope":@},)"
    R"("sock":{"faults":[{"op":@,"err":111,"ppm":1000000}]},"filter":{"peers":[@],"except_peers":[@],"port_lo":@,)"
    R"("port_hi":@,"except_port_lo":@,"except_port_hi":@,"protos":@},"for_ns":1000000000,)"
    R"("netns":[{"ino":4026531840,"path":"/proc/1/ns/net"}],"cohorts":[{"role":@,"cgroup":{"path":@,"rel":"b","id":@}}],)"
    R"("observe":@})";
constexpr std::string_view kFilteredDefaults[] = {"50000", "100000", "7",    "1",    R"("10.0.0.0/8")", R"("fd00::9")",
                                                  "5432",  "5440",   "5435", "5435", "1", R"("control")",
                                                  R"("/sys/fs/cgroup/b")", "8", "false"};
// `tardy update`'s request.
constexpr std::string_view kUpdateTemplate =
    R"({"v":7,"op":"update","name":@,"net":{"delay_ns":@,"jitter_ns":@,"loss_ppm":@,"dist":@,"corr_ppm":@,)"
    R"("ge_p_ppm":@,"ge_r_ppm":@,"duplicate_ppm":@,"reorder_ppm":@,"rate_bytes_per_s":@,"reset_ppm":@,)"
    R"("corrupt_ppm":@},"sock":{"faults":[{"op":@,"err":@,"ppm":@}]},"for_ns":@,"revision":@})";
constexpr std::string_view kUpdateDefaults[] = {R"("slow")", "50000000", "1000", "50000", "1", "250000", "13158",
                                                "250000", "10000", "100000", "1250000", "100000", "20000", "1", "111",
                                                "250000", "0", "4"};
constexpr size_t kSlots = std::size(kRequestDefaults);
constexpr size_t kFilteredSlots = std::size(kFilteredDefaults);
constexpr size_t kUpdateSlots = std::size(kUpdateDefaults);

// A template with `value` in `slot` (out of range: every slot keeps its default).
std::string fill(std::string_view tmpl, const std::string_view* defaults, size_t slot, std::string_view value) {
    std::string line;
    size_t n = 0;
    for (char c : tmpl) {
        if (c != '@') {
            line += c;
            continue;
        }
        line += n == slot ? value : defaults[n];
        n++;
    }
    return line;
}

}  // namespace

void fuzz_request(std::string_view in) {
    static const bool templates_valid = [] {
        auto yes = [](const nlohmann::json&) { return nlohmann::json{{"ok", true}}; };
        for (auto line : {fill(kRequestTemplate, kRequestDefaults, kSlots, ""),
                          fill(kFilteredTemplate, kFilteredDefaults, kFilteredSlots, ""),
                          fill(kUpdateTemplate, kUpdateDefaults, kUpdateSlots, "")}) {
            std::string r = handle_line(line, yes);
            if (r != "{\"ok\":true,\"v\":7}\n") return std::fprintf(stderr, "template refused: %s", r.c_str()), false;
        }
        return true;
    }();
    CHECK(templates_valid, "a request template is refused", in);
    constexpr size_t kAll = kSlots + kFilteredSlots + kUpdateSlots;
    size_t choice = in.empty() ? kAll : static_cast<uint8_t>(in[0]) % (kAll + 1);
    std::string_view value = in.empty() ? in : in.substr(1);
    std::string line = choice < kSlots ? fill(kRequestTemplate, kRequestDefaults, choice, value)
                       : choice < kSlots + kFilteredSlots
                           ? fill(kFilteredTemplate, kFilteredDefaults, choice - kSlots, value)
                       : choice < kAll ? fill(kUpdateTemplate, kUpdateDefaults, choice - kSlots - kFilteredSlots, value)
                                       : std::string(value);
    bool dispatched = false;
    std::string reply = handle_line(line, [&](const nlohmann::json& req) {
        dispatched = true;
        return read_like_agent(req, in);
    });
    CHECK(!reply.empty() && reply.back() == '\n' && reply.find('\n') == reply.size() - 1, "reply is not one line", in);
    auto j = nlohmann::json::parse(reply, nullptr, false);
    CHECK(j.is_object() && j.contains("ok") && j["ok"].is_boolean(), "reply without a boolean ok: " + reply, in);
    CHECK(j["ok"] == dispatched, "ok disagrees with dispatch: " + reply, in);
    if (!dispatched)
        CHECK(j.contains("error") && j["error"].is_string() && !j["error"].get<std::string>().empty() &&
                  j.value("user", false),
              "a refusal that is not a user error: " + reply, in);
}

}  // namespace tardy::fuzz
