// SPDX-License-Identifier: Apache-2.0
#include "sys/journal.hpp"
#include "sys/journal_detail.hpp"

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
    if ((kind != "clsact" && kind != "clsact-in" && kind != "qdisc" && kind != "ifb" && kind != "txcsum") ||
        !number(ino, netns) || !number(ifindex, index) || ifname.empty() ||
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

}  // namespace

namespace journal_detail {

// The journal and journal.rejected are opened without following a symlink (issue 7): one in
// their place, planted to make tardy write or read some other file, is refused with one
// line, as is anything but a regular file (a FIFO would block). O_NONBLOCK only keeps the
// open itself from blocking on a FIFO; it changes nothing for a regular file.
namespace {
Result<Fd> open_state_file(const std::string& path, int flags, const std::string& what) {
    Fd fd(open(path.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        if (errno == ELOOP) {
            Error e = Error::user(path + " is a symlink; tardy never follows one there: remove it");
            e.err = ELOOP;
            return e;
        }
        return Error::sys(what + " " + path, errno);
    }
    struct stat st{};
    if (fstat(fd.get(), &st) != 0) return Error::sys(what + " " + path, errno);
    if (!S_ISREG(st.st_mode)) {
        Error e = Error::user(path + " is not a regular file; tardy uses it for nothing else: remove it");
        e.err = EINVAL;
        return e;
    }
    return fd;
}
}  // namespace

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
}  // namespace journal_detail

namespace journal_detail {

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

// The whole file; "" when there is none. Never through a symlink (see open_state_file).
Result<std::string> read_path(const std::string& path) {
    auto fd = open_state_file(path, O_RDONLY, "read journal");
    if (!fd) {
        if (fd.error().err == ENOENT) return std::string();
        return fd.error();
    }
    return read_fd(fd->get(), path);
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
    auto fd = open_state_file(path, O_RDWR | O_CREAT | O_APPEND, "open");
    if (!fd) return fd.error();
    return append_synced(fd->get(), std::move(lines), path);
}

}  // namespace journal_detail

using namespace journal_detail;

Journal::Stamp Journal::stamp_of(int fd) {
    struct stat st{};
    if (fstat(fd, &st) != 0) return {};
    return {st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size),
            static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

Result<Fd> Journal::open_append() {
    auto fd = open_state_file(path_, O_RDWR | O_CREAT | O_APPEND, "open journal");
    if (!fd) return fd.error();
    // Changed by someone else (another Journal, a compaction, an editor): read it again.
    if (Stamp now = stamp_of(fd->get()); now == Stamp{} || now != seen_) max_known_ = false;
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
    // A fresh file, whatever was there (a symlink is removed, not followed): the caller
    // holds the agent's lock, so a journal.tmp is a leftover or planted, never in use.
    if (unlink(tmp.c_str()) != 0 && errno != ENOENT) return Error::sys("remove " + tmp, errno);
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
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

}  // namespace tardy
