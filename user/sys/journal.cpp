#include "sys/journal.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>

#include "sys/netns.hpp"
#include "sys/qdisc.hpp"
#include "sys/tc_filter.hpp"

namespace tardy {
namespace {

// The format has always been split where istream splits: on any of " \t\n\v\f\r".
bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string_view skip_space(std::string_view s) {
    size_t b = 0;
    while (b < s.size() && is_space(s[b])) ++b;
    return s.substr(b);
}

// Takes the next token off the front of `rest`; empty at the end of the line.
std::string_view token(std::string_view& rest) {
    rest = skip_space(rest);
    size_t e = 0;
    while (e < rest.size() && !is_space(rest[e])) ++e;
    auto t = rest.substr(0, e);
    rest.remove_prefix(e);
    return t;
}

// The whole token as a number: no sign but an int's '-', no trailing junk, no overflow.
template <typename T>
bool number(std::string_view t, T& v) {
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return !t.empty() && ec == std::errc() && p == t.data() + t.size();
}

// "+ ID ..." or "- ID": the op and a plain decimal id of at most 18 digits (ids count up from
// 1, so a longer one is corruption, and refusing it keeps max + 1 from wrapping).
bool line_head(std::string_view& rest, char& op, uint64_t& id) {
    auto o = token(rest), t = token(rest);
    if (o != "+" && o != "-") return false;
    op = o[0];
    return t.size() <= 18 && number(t, id);
}

// The rest of a "+" line: kind netns ifindex ifname data, where data runs to the end of the line.
bool entry_body(std::string_view rest, JournalEntry& e) {
    auto kind = token(rest), ino = token(rest), ifindex = token(rest), ifname = token(rest);
    auto data = skip_space(rest);
    uint64_t netns = 0;
    int index = 0;
    if ((kind != "clsact" && kind != "qdisc") || !number(ino, netns) || !number(ifindex, index) || ifname.empty() ||
        data.empty() || data == "-")
        return false;  // and e as it was
    e.netns_ino = netns;
    e.ifindex = index;
    e.kind = kind;
    e.ifname = ifname;
    e.data = data;
    return true;
}

// Lines as getline splits them: a last line without its newline still counts.
template <typename F>
void each_line(std::string_view text, F fn) {
    while (!text.empty()) {
        size_t nl = text.find('\n');
        fn(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
}

struct Parsed {
    std::vector<JournalEntry> open;     // by id
    std::vector<std::string_view> bad;  // lines that do not parse (views into the text)
};

// One pass, no stream per line, no copies: a million-line journal parses in about a second.
Parsed parse(std::string_view text) {
    Parsed p;
    std::vector<JournalEntry>& recorded = p.open;
    std::vector<bool> closed;
    std::unordered_map<uint64_t, size_t> at;  // open id -> its index in recorded
    size_t lines = std::count(text.begin(), text.end(), '\n') + 1;
    recorded.reserve(lines);
    at.reserve(lines);
    each_line(text, [&](std::string_view line) {
        std::string_view rest = line;
        char op = 0;
        uint64_t id = 0;
        if (!line_head(rest, op, id)) return p.bad.push_back(line);
        if (op == '-') {
            if (auto it = at.find(id); it != at.end()) {
                closed[it->second] = true;
                at.erase(it);
            }
            return;
        }
        auto [it, fresh] = at.try_emplace(id, recorded.size());
        if (fresh) {
            recorded.emplace_back();
            closed.push_back(false);
        }
        JournalEntry& e = recorded[it->second];  // a later "+" of an open id replaces it
        e.id = id;
        if (!entry_body(rest, e)) {
            if (fresh) {
                at.erase(it);
                recorded.pop_back();
                closed.pop_back();
            }
            p.bad.push_back(line);
        }
    });
    size_t kept = 0;
    for (size_t i = 0; i < recorded.size(); ++i)
        if (!closed[i] && kept++ != i) recorded[kept - 1] = std::move(recorded[i]);
    recorded.resize(kept);
    auto by_id = [](const auto& a, const auto& b) { return a.id < b.id; };
    if (!std::is_sorted(recorded.begin(), recorded.end(), by_id)) std::sort(recorded.begin(), recorded.end(), by_id);
    return p;
}

// The highest id on any line with a readable head, done or not.
uint64_t max_id_in(std::string_view text) {
    uint64_t max = 0;
    each_line(text, [&](std::string_view rest) {
        char op = 0;
        uint64_t id = 0;
        if (line_head(rest, op, id)) max = std::max(max, id);
    });
    return max;
}

std::string format_line(const JournalEntry& e) {
    return "+ " + std::to_string(e.id) + " " + e.kind + " " + std::to_string(e.netns_ino) + " " +
           std::to_string(e.ifindex) + " " + (e.ifname.empty() ? "-" : e.ifname) + " " +
           (e.data.empty() ? "-" : e.data);
}

Result<std::string> read_fd(int fd, const std::string& path) {
    struct stat st{};
    std::string text(fstat(fd, &st) == 0 && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0, '\0');
    size_t got = 0;
    for (;;) {
        if (got == text.size()) text.resize(std::max<size_t>(2 * got, 1 << 16));  // it grew
        ssize_t n = pread(fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::sys("read journal " + path, errno);
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    text.resize(got);
    return text;
}

// The whole file; "" when there is none.
Result<std::string> read_path(const std::string& path) {
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOENT) return std::string();
        return Error::sys("read journal " + path, errno);
    }
    return read_fd(fd.get(), path);
}

bool write_all(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = write(fd, s.data(), s.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = ENOSPC;
            return false;
        }
        s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// Appends whole lines and syncs once.
Result<void> append_synced(int fd, std::string lines, const std::string& path) {
    // A line torn by a crash or a full disk must not swallow these.
    struct stat st{};
    char last = '\n';
    if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
        lines.insert(0, "\n");
    if (!write_all(fd, lines) || fsync(fd) != 0) return Error::sys("write journal " + path, errno);
    return ok();
}

Result<void> append_file(const std::string& path, std::string lines) {
    Fd fd(open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd.valid()) return Error::sys("open " + path, errno);
    return append_synced(fd.get(), std::move(lines), path);
}

}  // namespace

Journal::Stamp Journal::stamp_of(int fd) {
    struct stat st{};
    if (fstat(fd, &st) != 0) return {};
    return {st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size),
            static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

Result<Fd> Journal::open_append() {
    Fd fd(open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd.valid()) return Error::sys("open journal " + path_, errno);
    // Changed by someone else (another Journal, a compaction, an editor): read it again.
    if (Stamp now = stamp_of(fd.get()); now == Stamp{} || now != seen_) max_known_ = false;
    return fd;
}

Result<void> Journal::load_max_id(int fd) {
    if (max_known_) return ok();
    auto text = read_fd(fd, path_);
    if (!text) return text.error();
    max_id_ = max_id_in(*text);
    seen_ = stamp_of(fd);
    max_known_ = true;
    return ok();
}

Result<void> Journal::write_synced(int fd, std::string lines, uint64_t max_id_in_lines) {
    auto r = append_synced(fd, std::move(lines), path_);
    if (r && max_known_) {
        max_id_ = std::max(max_id_, max_id_in_lines);
        seen_ = stamp_of(fd);
    } else {
        max_known_ = false;
    }
    return r;
}

Result<uint64_t> Journal::record(JournalEntry e) {
    auto fd = open_append();
    if (!fd) return fd.error();
    TARDY_TRY(load_max_id(fd->get()));
    e.id = max_id_ + 1;
    TARDY_TRY(write_synced(fd->get(), format_line(e) + "\n", e.id));
    return e.id;
}

Result<void> Journal::done(uint64_t id) { return done_many({id}); }

Result<void> Journal::done_many(const std::vector<uint64_t>& ids) {
    if (ids.empty()) return ok();
    std::string lines;
    lines.reserve(ids.size() * 12);
    for (uint64_t id : ids) {
        char buf[32] = "- ";
        char* end = std::to_chars(buf + 2, buf + sizeof buf - 1, id).ptr;
        *end++ = '\n';
        lines.append(buf, end);
    }
    auto fd = open_append();
    if (!fd) return fd.error();
    return write_synced(fd->get(), std::move(lines), *std::max_element(ids.begin(), ids.end()));
}

std::vector<JournalEntry> Journal::open_entries(int* corrupt) const {
    auto text = read_path(path_);
    Parsed p = parse(text ? *text : std::string());
    if (corrupt) *corrupt = static_cast<int>(p.bad.size());
    return std::move(p.open);
}

Result<void> Journal::compact() {
    // An unreadable journal must stay, not be taken for an empty one and removed.
    auto text = read_path(path_);
    if (!text) return text.error();
    return rewrite(parse(*text).open);
}

Result<void> Journal::rewrite(const std::vector<JournalEntry>& entries) {
    max_known_ = false;  // the file is replaced: the next record() reads it again
    if (entries.empty()) {
        if (unlink(path_.c_str()) != 0 && errno != ENOENT) return Error::sys("remove journal " + path_, errno);
        return ok();
    }
    std::string tmp = path_ + ".tmp", text;
    for (const auto& e : entries) text += format_line(e) + "\n";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Error::sys("write journal " + tmp, errno);
    bool written = write_all(fd, text) && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!written) return Error::sys("write journal " + tmp, e);
    // The rename is the commit point: the directory must hold it before we go on.
    if (rename(tmp.c_str(), path_.c_str()) != 0) return Error::sys("replace journal " + path_, errno);
    std::string dir = path_.substr(0, path_.rfind('/') == std::string::npos ? 0 : path_.rfind('/'));
    int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return ok();
}

namespace {

struct ClsactData {
    unsigned handle = 0, prio = 0, created = 0;
};

// data: handle:priority:created_hook
Result<ClsactData> decode_clsact(const JournalEntry& e) {
    ClsactData c;
    if (std::sscanf(e.data.c_str(), "%x:%x:%u", &c.handle, &c.prio, &c.created) != 3)
        return Error::other("journal entry " + std::to_string(e.id) + ": bad clsact data '" + e.data + "'");
    return c;
}

// Whether the entry can ever be undone; what does not decode now never will.
Result<void> check_decodes(const JournalEntry& e) {
    if (e.kind == "clsact") {
        auto c = decode_clsact(e);
        return c ? ok() : Result<void>(c.error());
    }
    auto s = decode(e.data);
    return s ? ok() : Result<void>(s.error());
}

// Undoes one entry in the calling thread's namespace; *device_gone when there was nothing left.
Result<void> undo_here(const JournalEntry& e, bool* device_gone) {
    if (e.kind == "clsact") {
        auto c = decode_clsact(e);
        if (!c) return c.error();
        return detach_clsact(e.ifindex, c->handle, c->prio, c->created != 0);
    }
    auto snap = decode(e.data);
    if (!snap) return snap.error();
    auto r = restore_root_qdisc(*snap);
    if (!r && r.error().err == ENODEV) {  // the device went, and its qdisc with it
        if (device_gone) *device_gone = true;
        return ok();
    }
    return r;
}

// Ways into the wanted namespaces, from one pass over /run/netns and /proc made on first use:
// find_netns() makes that pass per call, and a million entries made a million passes.
class NetnsIndex {
public:
    explicit NetnsIndex(std::set<uint64_t> want) : want_(std::move(want)) {}

    // Error when nothing is left in the namespace, so nothing made in it survived either.
    Result<Fd> open(uint64_t ino) {
        if (!scanned_) scan();
        auto it = paths_.find(ino);
        if (it == paths_.end()) return Error::other("network namespace " + std::to_string(ino) + " is gone");
        for (const auto& path : it->second)
            if (auto fd = open_netns({ino, path})) return fd;
        return find_netns(ino);  // what we saw in it exited since: look once more
    }

private:
    void add(const std::string& path) {
        struct stat st{};
        if (stat(path.c_str(), &st) != 0 || !want_.count(st.st_ino)) return;
        auto& v = paths_[st.st_ino];
        if (v.size() < 8) v.push_back(path);
    }
    void scan() {
        scanned_ = true;
        for (const char* dir : {"/run/netns", "/proc"}) {
            DIR* d = opendir(dir);
            if (!d) continue;
            bool proc = dir[1] == 'p';
            while (auto* de = readdir(d)) {
                std::string name = de->d_name;
                if (proc ? (name[0] >= '0' && name[0] <= '9') : (name != "." && name != ".."))
                    add(std::string(dir) + "/" + name + (proc ? "/ns/net" : ""));
            }
            closedir(d);
        }
    }
    std::set<uint64_t> want_;
    std::map<uint64_t, std::vector<std::string>> paths_;
    bool scanned_ = false;
};

enum class Outcome : uint8_t { Failed, Undone, DeviceGone, NetnsGone, Rejected };

std::string undone_line(const JournalEntry& e, Outcome o) {
    std::string what = e.kind == "qdisc" ? "the root qdisc of " + e.ifname : "the clsact filter on " + e.ifname;
    if (o == Outcome::NetnsGone) return "nothing to undo for " + what + ": its network namespace is gone";
    if (o == Outcome::DeviceGone) return "nothing to undo for " + what + ": the device is gone";
    return e.kind == "qdisc" ? "restored the root qdisc of " + e.ifname : "removed the clsact filter from " + e.ifname;
}

// kill prints every line: past this many, counts per kind instead of a line per entry.
constexpr size_t kMaxLines = 20;

void summarize_undone(const std::vector<JournalEntry>& open, const std::vector<Outcome>& out, UndoSummary& s) {
    size_t n = std::count_if(out.begin(), out.end(), [](Outcome o) { return o != Outcome::Failed && o != Outcome::Rejected; });
    if (n <= kMaxLines) {
        for (size_t i = 0; i < open.size(); ++i)
            if (out[i] != Outcome::Failed && out[i] != Outcome::Rejected) s.undone.push_back(undone_line(open[i], out[i]));
        return;
    }
    size_t filters = 0, qdiscs = 0, gone_filters = 0, gone_qdiscs = 0;
    for (size_t i = 0; i < open.size(); ++i) {
        bool q = open[i].kind == "qdisc";
        if (out[i] == Outcome::Undone) ++(q ? qdiscs : filters);
        if (out[i] == Outcome::DeviceGone || out[i] == Outcome::NetnsGone) ++(q ? gone_qdiscs : gone_filters);
    }
    if (filters) s.undone.push_back("removed " + std::to_string(filters) + " clsact filter(s)");
    if (qdiscs) s.undone.push_back("restored " + std::to_string(qdiscs) + " root qdisc(s)");
    for (auto [count, what] : {std::pair{gone_filters, "clsact filter(s)"}, std::pair{gone_qdiscs, "root qdisc(s)"}})
        if (count)
            s.undone.push_back("nothing to undo for " + std::to_string(count) + " " + what +
                               " on devices or network namespaces that are gone");
}

using Failures = std::vector<std::pair<size_t, std::string>>;  // index into the entries, why

// One thread per namespace, newest entry first: undo in the reverse order of doing.
Failures undo_by_namespace(const std::vector<JournalEntry>& open, std::vector<Outcome>& out,
                           const std::map<uint64_t, std::vector<size_t>>& by_netns) {
    std::set<uint64_t> inos;
    for (const auto& group : by_netns) inos.insert(group.first);
    NetnsIndex index(std::move(inos));
    Failures failed;
    for (const auto& group : by_netns) {
        const std::vector<size_t>& idx = group.second;
        auto fd = index.open(group.first);
        if (!fd) {
            for (size_t i : idx) out[i] = Outcome::NetnsGone;
            continue;
        }
        auto r = in_netns(fd->get(), [&]() -> Result<void> {
            for (auto it = idx.rbegin(); it != idx.rend(); ++it) {
                bool gone = false;
                auto u = undo_here(open[*it], &gone);
                out[*it] = !u ? Outcome::Failed : gone ? Outcome::DeviceGone : Outcome::Undone;
                if (!u) failed.emplace_back(*it, u.error().message);
            }
            return ok();
        });
        if (!r)
            for (size_t i : idx) failed.emplace_back(i, r.error().message);
    }
    std::sort(failed.begin(), failed.end());
    return failed;
}

void summarize_failed(const std::vector<JournalEntry>& open, const Failures& failed, UndoSummary& s) {
    for (size_t k = 0; k < failed.size(); ++k) {
        if (failed.size() > kMaxLines && k == kMaxLines / 2) {
            s.problems.push_back("...and " + std::to_string(failed.size() - k) +
                                 " more journal entries could not be undone; they stay for the next try");
            return;
        }
        const auto& e = open[failed[k].first];
        s.problems.push_back("could not undo journal entry " + std::to_string(e.id) + " (" + e.kind + " on " +
                             e.ifname + "), left for the next try: " + failed[k].second);
    }
}

}  // namespace

Result<void> undo_journal_entry(const JournalEntry& e) {
    auto ns = find_netns(e.netns_ino);
    if (!ns) return ok();  // the namespace and everything in it are gone
    return in_netns(ns->get(), [&] { return undo_here(e, nullptr); });
}

UndoSummary undo_all(Journal& j) {
    UndoSummary s;
    auto text = read_path(j.path_);
    if (!text) {
        s.problems.push_back(text.error().message);
        return s;
    }
    Parsed p = parse(*text);

    // What does not decode is set aside (below) instead of failing every kill from now on.
    std::vector<Outcome> out(p.open.size(), Outcome::Failed);
    std::string rejected;
    for (auto line : p.bad) (rejected += line) += '\n';
    std::map<uint64_t, std::vector<size_t>> by_netns;
    for (size_t i = 0; i < p.open.size(); ++i) {
        if (check_decodes(p.open[i])) {
            by_netns[p.open[i].netns_ino].push_back(i);
        } else {
            out[i] = Outcome::Rejected;
            rejected += format_line(p.open[i]) + "\n";
        }
    }

    auto failed = undo_by_namespace(p.open, out, by_netns);

    bool aside = rejected.empty();
    int n_rejected = static_cast<int>(p.bad.size() + std::count(out.begin(), out.end(), Outcome::Rejected));
    if (!rejected.empty()) {
        std::string path = j.path_ + ".rejected";
        if (auto r = append_file(path, std::move(rejected)); r) {
            aside = true;
            s.set_aside = n_rejected;
            s.set_aside_path = path;
        } else {
            s.problems.push_back("could not set aside " + std::to_string(n_rejected) +
                                 " journal line(s) that can never be undone, left in the journal: " +
                                 r.error().message);
        }
    }

    std::vector<uint64_t> closed;
    std::vector<JournalEntry> left;
    for (size_t i = 0; i < p.open.size(); ++i) {
        if (out[i] == Outcome::Failed || (out[i] == Outcome::Rejected && !aside))
            left.push_back(p.open[i]);
        else
            closed.push_back(p.open[i].id);
    }
    if (auto r = j.done_many(closed); !r) s.problems.push_back(r.error().message);
    // From what we read, not a second read: the caller's lock kept everyone else out. Unreadable
    // lines that did not reach .rejected stay where they are.
    if (aside)
        if (auto r = j.rewrite(left); !r) s.problems.push_back(r.error().message);

    summarize_undone(p.open, out, s);
    summarize_failed(p.open, failed, s);
    return s;
}

}  // namespace tardy
