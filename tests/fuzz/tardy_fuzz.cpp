// libFuzzer target over everything tardy parses from text it does not control: the units users
// type, inject flags, qdisc journal records, journal files (and undo_all on them), cgroup
// directory names and the agent's request lines.
//
// The first input byte picks the parser (mod kTargets), the rest is its input. Every check that
// fails calls abort() with a line saying which invariant broke, so libFuzzer saves the input.
//
// TARDY_FUZZ_LENIENT=1 skips the checks for bugs already reported (inexact decimal parsing,
// exponents in format_duration, multi-line errors from a newline in the input, journal records
// glued to a truncated line, journal id wrap-around) so a long run looks for new ones.
//
// Build and run: tests/fuzz/run.sh [SECONDS]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "sys/cgroup.hpp"
#include "sys/journal.hpp"
#include "sys/netns.hpp"
#include "sys/qdisc.hpp"
#include "model/request.hpp"
#include "model/sock_faults.hpp"
#include "model/spec.hpp"
#include "loader/stall_object.hpp"
#include "model/units.hpp"

using namespace tardy;

namespace {

bool lenient() {
    static const bool l = [] {
        const char* e = std::getenv("TARDY_FUZZ_LENIENT");
        return e && *e && std::strcmp(e, "0") != 0;
    }();
    return l;
}

[[noreturn]] void fail(const std::string& what, std::string_view input) {
    std::string shown;
    for (unsigned char c : input.substr(0, 300)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            shown += static_cast<char>(c);
        } else {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            shown += b;
        }
    }
    std::fprintf(stderr, "INVARIANT BROKEN: %s\n  input: \"%s\"\n", what.c_str(), shown.c_str());
    std::abort();
}

#define CHECK(cond, what, input)                  \
    do {                                          \
        if (!(cond)) fail(std::string(what), input); \
    } while (0)

bool has(std::string_view s, std::string_view sub) { return s.find(sub) != std::string_view::npos; }

// Every error: non-empty, one line (unless the input itself carried a newline and we are
// lenient about that known bug), and naming `flag` when given.
void check_error(const Error& e, std::string_view input, std::string_view flag, bool want_user = true) {
    CHECK(!e.message.empty(), "empty error message", input);
    if (want_user) CHECK(e.is_user(), "not a user error: " + e.message, input);
    bool input_nl = has(input, "\n");
    if (!(lenient() && input_nl)) CHECK(!has(e.message, "\n"), "error message is not one line: " + e.message, input);
    if (!flag.empty()) CHECK(has(e.message, flag), "error does not name " + std::string(flag) + ": " + e.message, input);
}

// ---- exact reference for the unit parsers ---------------------------------------------------

// A decimal as digits (whole then fraction, no dot) and the number of fraction digits.
struct Decimal {
    std::string digits;
    size_t frac = 0;
};

bool decimal(std::string_view s, Decimal* d) {
    if (s.empty() || s.size() > 400) return false;  // as units.cpp: the longest accepted
    bool dot = false, digit = false;
    d->digits.clear();
    d->frac = 0;
    for (char c : s) {
        if (c == '.') {
            if (dot) return false;
            dot = true;
        } else if (c >= '0' && c <= '9') {
            digit = true;
            d->digits += c;
            if (dot) d->frac++;
        } else {
            return false;
        }
    }
    return digit;
}

enum class Verdict { Ok, Syntax, Negative, TooLarge, TooFine };

// digits * mul / 10^frac exactly: sets *value when it is a whole number <= limit.
Verdict scale_exact(const Decimal& d, uint64_t mul, uint64_t limit, uint64_t* value) {
    // Schoolbook multiplication in base 10, least significant digit first.
    std::vector<uint8_t> prod;
    unsigned __int128 carry = 0;
    for (size_t i = d.digits.size(); i-- > 0;) {
        carry += static_cast<unsigned __int128>(d.digits[i] - '0') * mul;
        prod.push_back(static_cast<uint8_t>(carry % 10));
        carry /= 10;
    }
    while (carry) {
        prod.push_back(static_cast<uint8_t>(carry % 10));
        carry /= 10;
    }
    bool whole = std::all_of(prod.begin(), prod.begin() + std::min(d.frac, prod.size()), [](uint8_t x) { return x == 0; });
    // Integer part, saturating.
    unsigned __int128 ip = 0;
    bool big = false;
    for (size_t i = prod.size(); i-- > d.frac;) {
        ip = ip * 10 + prod[i];
        if (ip > static_cast<unsigned __int128>(limit) * 10) big = true;
        if (big) break;
    }
    if (big || ip > limit || (ip == limit && !whole)) return Verdict::TooLarge;
    if (!whole) return Verdict::TooFine;
    *value = static_cast<uint64_t>(ip);
    return Verdict::Ok;
}

struct UnitDef {
    std::string_view suffix;
    uint64_t ns;
};
constexpr UnitDef kUnits[] = {{"ns", 1}, {"us", 1'000}, {"ms", 1'000'000}, {"s", 1'000'000'000},
                              {"m", 60'000'000'000ULL}, {"h", 3'600'000'000'000ULL}};

// The parser's limit: 1000 hours.
constexpr uint64_t kMaxDurationNs = 1000ULL * 3'600'000'000'000ULL;

Verdict ref_duration(std::string_view t, uint64_t* ns) {
    if (!t.empty() && t[0] == '-') return Verdict::Negative;
    for (const auto& u : kUnits) {
        if (t.size() <= u.suffix.size() || !t.ends_with(u.suffix)) continue;
        Decimal d;
        if (!decimal(t.substr(0, t.size() - u.suffix.size()), &d)) continue;
        return scale_exact(d, u.ns, kMaxDurationNs, ns);
    }
    return Verdict::Syntax;
}

Verdict ref_percent(std::string_view t, uint32_t* ppm) {
    if (!t.empty() && t[0] == '-') return Verdict::Negative;
    Decimal d;
    if (!t.ends_with('%') || !decimal(t.substr(0, t.size() - 1), &d)) return Verdict::Syntax;
    uint64_t v = 0;
    // scale_exact says "too large" before "too fine", as the parser says "over 100%" first.
    Verdict r = scale_exact(d, 10'000, 1'000'000, &v);
    if (r != Verdict::Ok) return r;
    *ppm = static_cast<uint32_t>(v);
    return Verdict::Ok;
}

// The parsers say "FLAG 'TEXT': not a ..." for syntax and "FLAG TEXT: why" otherwise; the
// verdict is read from the part after the echoed input (which may itself say anything).
Verdict classify_error(const Error& e, std::string_view flag, std::string_view raw, std::string_view over) {
    // The parsers echo the input with control characters shown as '?' (one-line messages).
    std::string input(raw);
    for (char& c : input)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    std::string quoted = std::string(flag) + " '" + std::string(input) + "':";
    std::string plain = std::string(flag) + " " + std::string(input) + ":";
    if (e.message.starts_with(quoted)) return Verdict::Syntax;
    if (!e.message.starts_with(plain)) return Verdict::Syntax;  // checked separately: names the flag
    std::string_view why = std::string_view(e.message).substr(plain.size());
    if (has(why, "negative")) return Verdict::Negative;
    if (has(why, over)) return Verdict::TooLarge;
    if (has(why, "finer than")) return Verdict::TooFine;
    return Verdict::Syntax;
}

const char* name(Verdict v) {
    switch (v) {
    case Verdict::Ok: return "ok";
    case Verdict::Syntax: return "syntax";
    case Verdict::Negative: return "negative";
    case Verdict::TooLarge: return "too large";
    case Verdict::TooFine: return "too fine";
    }
    return "?";
}

void fuzz_duration(std::string_view in) {
    auto r = parse_duration_ns(in, "--delay");
    uint64_t want = 0;
    Verdict ref = ref_duration(in, &want);
    Verdict got = r ? Verdict::Ok : classify_error(r.error(), "--delay", in, "too long");
    if (!r) check_error(r.error(), in, "--delay");
    // Syntax is decided without arithmetic: it must always agree.
    CHECK((got == Verdict::Syntax) == (ref == Verdict::Syntax),
          std::string("duration syntax: parser says ") + name(got) + ", reference " + name(ref), in);
    CHECK((got == Verdict::Negative) == (ref == Verdict::Negative), "duration sign", in);
    if (r) CHECK(*r <= kMaxDurationNs, "accepted duration over the limit", in);
    if (!lenient()) {
        CHECK(got == ref, std::string("duration: parser says ") + name(got) + ", exact arithmetic " + name(ref), in);
        if (r) CHECK(*r == want, "duration value " + std::to_string(*r) + " != exact " + std::to_string(want), in);
    }
    if (!r) return;
    // Printing: exact forms read back exactly; rounded forms read back close.
    std::string f = format_duration(*r);
    if (!lenient()) CHECK(!has(f, "e"), "format_duration(" + std::to_string(*r) + ") = " + f, in);
    if (has(f, "e")) return;
    auto back = parse_duration_ns(f, "--for");
    if (!has(f, ".")) {
        CHECK(back, "format_duration(" + std::to_string(*r) + ") = " + f + " does not parse", in);
        // Whole numbers are exact unless rounded by %.3g (then to 3 significant digits).
        if (*back != *r) {
            size_t digits = f.find_first_not_of("0123456789");
            long double rel = (static_cast<long double>(*back) - *r) / *r;
            CHECK(digits <= 3 && rel < 0.006L && rel > -0.006L,
                  "format_duration(" + std::to_string(*r) + ") = " + f + " reads back as " + std::to_string(*back), in);
        }
    } else if (back || !lenient()) {
        CHECK(back, "format_duration(" + std::to_string(*r) + ") = " + f + " does not parse", in);
        long double rel = (static_cast<long double>(*back) - *r) / *r;
        CHECK(rel < 0.006L && rel > -0.006L, "format_duration(" + std::to_string(*r) + ") = " + f + " is off", in);
    }
}

void fuzz_percent(std::string_view in) {
    auto r = parse_percent_ppm(in, "--loss");
    uint32_t want = 0;
    Verdict ref = ref_percent(in, &want);
    Verdict got = r ? Verdict::Ok : classify_error(r.error(), "--loss", in, "over 100%");
    if (!r) check_error(r.error(), in, "--loss");
    CHECK((got == Verdict::Syntax) == (ref == Verdict::Syntax),
          std::string("percent syntax: parser says ") + name(got) + ", reference " + name(ref), in);
    CHECK((got == Verdict::Negative) == (ref == Verdict::Negative), "percent sign", in);
    if (r) CHECK(*r <= 1'000'000u, "accepted percentage over 100%", in);
    if (!lenient()) {
        CHECK(got == ref, std::string("percent: parser says ") + name(got) + ", exact arithmetic " + name(ref), in);
        if (r) CHECK(*r == want, "ppm " + std::to_string(*r) + " != exact " + std::to_string(want), in);
    }
    if (!r) return;
    std::string f = format_ppm(*r);
    auto back = parse_percent_ppm(f, "--loss");
    if (back || !lenient()) {
        CHECK(back, "format_ppm(" + std::to_string(*r) + ") = " + f + " does not parse", in);
        long long diff = static_cast<long long>(*back) - *r;
        // %.4g keeps 4 significant digits: within 0.05% of the value (and of 1 ppm).
        CHECK(std::llabs(diff) <= std::max<long long>(1, *r / 2000 + 1),
              "format_ppm(" + std::to_string(*r) + ") = " + f + " reads back as " + std::to_string(*back), in);
    }
}

// ---- qdisc records ---------------------------------------------------------------------------

void fuzz_qdisc_decode(std::string_view in) {
    std::string line(in);
    auto s = decode(line);
    if (!s) {
        // Journal lines never hold a newline, so an echoed one is not worth a report here.
        if (!has(in, "\n")) check_error(s.error(), in, "", /*want_user=*/false);
        return;
    }
    CHECK(s->ifindex > 0, "decoded ifindex <= 0", in);
    CHECK(!s->ifname.empty() && s->ifname.size() < 16, "decoded ifname length", in);
    CHECK(!s->kind.empty() && s->kind.size() < 16, "decoded kind length", in);
    std::string again = encode(*s);
    auto t = decode(again);
    CHECK(t, "encode(decode(x)) does not decode: " + again, in);
    CHECK(*t == *s, "decode(encode(s)) != s", in);
    CHECK(encode(*t) == again, "encode is not stable", in);
}

// Builds a snapshot from the bytes and checks encode/decode round-trips it.
void fuzz_qdisc_encode(std::string_view in) {
    QdiscSnapshot s;
    auto take = [&](size_t n) {
        std::string_view part = in.substr(0, std::min(n, in.size()));
        in.remove_prefix(part.size());
        return part;
    };
    auto byte = [&]() -> uint8_t { return in.empty() ? 0 : static_cast<uint8_t>(take(1)[0]); };
    uint32_t ix = 0;
    for (int i = 0; i < 4; ++i) ix = ix << 8 | byte();
    s.ifindex = static_cast<int>(ix & 0x7fffffff);
    if (s.ifindex == 0) s.ifindex = 1;
    for (int i = 0; i < 4; ++i) s.handle = s.handle << 8 | byte();
    s.is_default = byte() & 1;
    // Names as the kernel makes them: no spaces, 1..15 bytes; kinds are [A-Za-z0-9_].
    size_t nl = 1 + byte() % 15, kl = 1 + byte() % 15, ol = byte(), ll = byte();
    for (char c : take(nl)) s.ifname += (c == ' ' || c == '\0' || c == '\n') ? '_' : c;
    for (char c : take(kl)) s.kind += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    for (char c : take(ol)) s.options.push_back(static_cast<uint8_t>(c));
    s.not_restored = std::string(take(ll));
    if (s.ifname.empty()) s.ifname = "x";
    if (s.kind.empty()) s.kind = "fq";
    std::string line = encode(s);
    CHECK(!has(line, "\n"), "encode made a newline", line);
    auto back = decode(line);
    CHECK(back, "decode(encode(s)) failed: " + (back ? "" : back.error().message), line);
    CHECK(*back == s, "decode(encode(s)) != s", line);
}

// ---- journal ---------------------------------------------------------------------------------

// One scratch directory per process (tmpfs when there is one: record() fsyncs), removed at exit.
std::string g_scratch;

std::string scratch_journal() {
    if (g_scratch.empty()) {
        // run.sh points TARDY_FUZZ_TMP at a directory it removes afterwards, crashes included.
        const char* env = std::getenv("TARDY_FUZZ_TMP");
        std::string dir = env && *env ? env : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string tmpl = dir + "/tardy-fuzz-XXXXXX";
        if (!mkdtemp(tmpl.data())) std::abort();
        g_scratch = tmpl;
        std::atexit([] {
            unlink((g_scratch + "/journal").c_str());
            unlink((g_scratch + "/journal.tmp").c_str());
            unlink((g_scratch + "/journal.rejected").c_str());
            rmdir(g_scratch.c_str());
        });
    }
    return g_scratch + "/journal";
}

bool same(const JournalEntry& a, const JournalEntry& b) {
    return a.id == b.id && a.kind == b.kind && a.netns_ino == b.netns_ino && a.ifindex == b.ifindex &&
           a.ifname == b.ifname && a.data == b.data;
}

void fuzz_journal(std::string_view in) {
    const std::string path = scratch_journal();
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(in.data(), static_cast<std::streamsize>(in.size()));
    }
    Journal j(path);
    int corrupt = -1;
    auto open = j.open_entries(&corrupt);
    size_t lines = std::count(in.begin(), in.end(), '\n') + (!in.empty() && in.back() != '\n');
    CHECK(corrupt >= 0 && static_cast<size_t>(corrupt) <= lines, "corrupt count out of range", in);
    CHECK(open.size() + corrupt <= lines, "more entries than lines", in);
    for (size_t i = 0; i < open.size(); ++i) {
        const auto& e = open[i];
        CHECK(e.kind == "clsact" || e.kind == "qdisc", "open entry of kind " + e.kind, in);
        CHECK(!e.data.empty() && e.data != "-", "open entry without data", in);
        CHECK(!has(e.data, "\n") && !has(e.ifname, "\n"), "newline in an entry", in);
        CHECK(!e.ifname.empty(), "empty ifname", in);
        if (i) CHECK(open[i - 1].id < e.id, "entries not in id order", in);
    }
    // Compaction keeps exactly the open entries.
    CHECK(j.compact(), "compact failed", in);
    int corrupt2 = -1;
    auto after = j.open_entries(&corrupt2);
    CHECK(corrupt2 == 0, "compacted journal has corrupt lines", in);
    CHECK(after.size() == open.size(), "compact changed the number of open entries", in);
    for (size_t i = 0; i < open.size(); ++i) CHECK(same(open[i], after[i]), "compact changed an entry", in);
    CHECK(open.empty() == (access(path.c_str(), F_OK) != 0), "compact left/removed the file wrongly", in);

    // A record on the original file gets a fresh, larger id and reads back.
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(in.data(), static_cast<std::streamsize>(in.size()));
    }
    uint64_t max_open = open.empty() ? 0 : open.back().id;
    auto id = j.record({0, "qdisc", 42, 7, "eth0", "qdisc-v1 with spaces"});
    CHECK(id, "record failed", in);
    if (!(lenient() && *id == 0)) CHECK(*id > max_open, "record reused or wrapped an id", in);
    bool truncated = !in.empty() && in.back() != '\n';
    if (!(lenient() && truncated)) {
        auto now = j.open_entries();
        bool found = std::any_of(now.begin(), now.end(), [&](const JournalEntry& e) {
            return e.id == *id && e.kind == "qdisc" && e.ifindex == 7 && e.data == "qdisc-v1 with spaces";
        });
        CHECK(found, "a new record does not read back", in);
    }

    // undo_all, only where it cannot touch this machine: nsfs inodes are 0xEFFFFFF0 and up, so
    // entries in lower ones are in namespaces that do not exist. All of it is undone or set aside.
    bool harmless = std::all_of(open.begin(), open.end(), [](const JournalEntry& e) { return e.netns_ino < 0xE0000000ULL; });
    if (harmless) {
        {
            std::ofstream out(path, std::ios::binary | std::ios::trunc);
            out.write(in.data(), static_cast<std::streamsize>(in.size()));
        }
        const std::string rejected = path + ".rejected";
        unlink(rejected.c_str());
        Journal u(path);
        auto s = undo_all(u);
        CHECK(s.problems.empty(), "undo_all failed in a gone namespace: " + (s.problems.empty() ? "" : s.problems[0]), in);
        CHECK(s.undone.size() <= 20, "undo_all summary too long", in);
        CHECK(s.set_aside >= corrupt && static_cast<size_t>(s.set_aside) <= corrupt + open.size(),
              "undo_all set aside a wrong count", in);
        if (open.size() <= 20)
            CHECK(s.undone.size() + (s.set_aside - corrupt) == open.size(), "undo_all lost an entry", in);
        CHECK(access(path.c_str(), F_OK) != 0, "undo_all left the journal", in);
        std::ifstream rin(rejected, std::ios::binary);
        std::string rtext((std::istreambuf_iterator<char>(rin)), std::istreambuf_iterator<char>());
        CHECK(std::count(rtext.begin(), rtext.end(), '\n') == s.set_aside, ".rejected has a wrong line count", in);
        CHECK((s.set_aside > 0) == (s.set_aside_path == rejected), "set_aside_path wrong", in);
        auto again = undo_all(u);
        CHECK(again.undone.empty() && again.problems.empty() && again.set_aside == 0, "a second undo_all found work", in);
        unlink(rejected.c_str());
    }
    unlink(path.c_str());
    unlink((path + ".tmp").c_str());
}

// ---- cgroup names and inject flags ------------------------------------------------------------

bool all_lower_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

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
    for (size_t i = 9; i < f.size(); ++i) a.devices.push_back(f[i]);
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
}

// ---- agent requests ---------------------------------------------------------------------------

// Reads an accepted request the way Agent::inject() and Agent::stop() do (user/agent.cpp):
// after handle_line() let it through, none of this may throw.
nlohmann::json read_like_agent(const nlohmann::json& req, std::string_view in) {
    using nlohmann::json;
    try {
        std::string op = req.value("op", std::string());
        if (op == "stop") {
            bool all = req.value("all", false);
            CHECK(all || validate_name(req.value("name", std::string())), "stop accepted without all or a name", in);
        }
        if (op != "inject") return {{"ok", true}};
        std::string name = req.value("name", std::string());
        std::string path = req.at("cgroup").at("path"), rel = req.at("cgroup").at("rel");
        uint64_t id = req.at("cgroup").at("id");
        auto net = req.at("net").get<NetFaults>();
        auto sock = req.value("sock", json::object()).get<SockFaults>();
        auto stalls = req.value("stalls", json::array()).get<std::vector<StallSpec>>();
        uint64_t for_ns = req.at("for_ns");
        auto devices = req.value("devices", std::vector<std::string>{});
        for (const auto& ns : net.any() ? req.at("netns") : json::array()) NetnsRef ref{ns.at("ino"), ns.at("path")};
        CHECK(name.empty() || validate_name(name), "invalid name accepted", in);
        CHECK(!path.empty() && path[0] == '/' && id > 0 && for_ns > 0, "cgroup or for_ns accepted out of range", in);
        CHECK(net.any() || sock.any() || sock.any_file() || !stalls.empty(), "accepted without a fault", in);
        CHECK(net.jitter_ns <= net.delay_ns && net.delay_ns + net.jitter_ns <= TARDY_MAX_DELAY_NS &&
                  net.loss_ppm <= TARDY_PPM, "net accepted out of range", in);
        CHECK(stalls.size() <= TARDY_STALL_MAX && sock.faults.size() <= TARDY_SOCK_MAX_FAULTS &&
                  sock.file_faults.size() <= TARDY_FILE_MAX_FAULTS && sock.peers.size() <= TARDY_SOCK_MAX_PEERS,
              "too many faults accepted", in);
        for (const auto& s : stalls)
            CHECK(std::strcmp(syscall_name(s.nr), "?") != 0 && s.delay_ns > 0 && s.ppm <= TARDY_PPM, "bad stall", in);
        CHECK(encode(sock, 0, 1) && encode_file(sock, 0, 1), "an accepted sock does not encode", in);
        (void)describe(sock), (void)describe(net), (void)describe(stalls), (void)rel, (void)devices;
    } catch (const std::exception& e) {
        fail(std::string("an accepted request made the agent's reads throw: ") + e.what(), in);
    }
    return {{"ok", true}};
}

// A valid inject request as prepare_inject() builds it, with its values as slots: the input
// fills one slot (the rest keep these defaults), so most inputs get past the JSON parser to
// the field checks. The last choice sends the input as the whole line.
constexpr std::string_view kRequestTemplate =
    R"({"v":1,"op":"inject","name":@,"cgroup":{"path":@,"rel":"a","id":@},"net":{"delay_ns":@,"jitter_ns":@,)"
    R"("loss_ppm":@},"sock":{"faults":[{"op":@,"err":@,"ppm":@}],"peers":[@],"port_lo":@,"port_hi":@,)"
    R"("file_faults":[{"op":@,"err":@,"ppm":@}],"path":@},"stalls":[{"nr":@,"delay_ns":@,"ppm":@}],"for_ns":@,)"
    R"("netns":[{"ino":@,"path":@}],"devices":[@]})";
constexpr std::string_view kRequestDefaults[] = {
    R"("api")", R"("/sys/fs/cgroup/a")", "7", "50000000", "1000", "50000", "1", "111", "250000", R"("10.0.0.0/8")",
    "5432", "5440", "1", "13", "1000000", R"("/var/lib")", "1", "50000000", "1000000", "300000000000", "4026531840",
    R"("/proc/1/ns/net")", R"("eth0")"};
constexpr size_t kSlots = std::size(kRequestDefaults);

// The template with `value` in `slot` (kSlots: every slot keeps its default).
std::string fill_request(size_t slot, std::string_view value) {
    std::string line;
    size_t n = 0;
    for (char c : kRequestTemplate) {
        if (c != '@') {
            line += c;
            continue;
        }
        line += n == slot ? value : kRequestDefaults[n];
        n++;
    }
    return line;
}

void fuzz_request(std::string_view in) {
    static const bool template_valid = [] {
        auto yes = [](const nlohmann::json&) { return nlohmann::json{{"ok", true}}; };
        std::string r = handle_line(fill_request(kSlots, ""), yes);
        return r == "{\"ok\":true}\n" || (std::fprintf(stderr, "template refused: %s", r.c_str()), false);
    }();
    CHECK(template_valid, "the request template is refused", in);
    size_t slot = in.empty() ? kSlots : static_cast<uint8_t>(in[0]) % (kSlots + 1);
    std::string_view value = in.empty() ? in : in.substr(1);
    std::string line = slot == kSlots ? std::string(value) : fill_request(slot, value);
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

using Target = void (*)(std::string_view);
constexpr Target kTargets[] = {fuzz_duration,     fuzz_percent,       fuzz_qdisc_decode, fuzz_qdisc_encode,
                               fuzz_journal,      fuzz_container_id,  fuzz_inject,       fuzz_request};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    kTargets[data[0] % std::size(kTargets)](in);
    return 0;
}
