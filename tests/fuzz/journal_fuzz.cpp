// SPDX-License-Identifier: Apache-2.0
// Fuzz targets for qdisc journal records (decode, encode round trip) and journal files
// (load, record, compaction and undo_all on whatever the bytes hold).
#include "fuzz.hpp"

namespace tardy::fuzz {
namespace {

// ---- qdisc records ---------------------------------------------------------------------------

}  // namespace

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

namespace {

// Builds a snapshot from the bytes and checks encode/decode round-trips it.
}  // namespace

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

namespace {

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

}  // namespace

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
        CHECK(e.kind == "clsact" || e.kind == "clsact-in" || e.kind == "qdisc" || e.kind == "ifb" || e.kind == "txcsum",
              "open entry of kind " + e.kind, in);
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

}  // namespace tardy::fuzz
