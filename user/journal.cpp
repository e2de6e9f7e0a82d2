#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "netns.hpp"
#include "qdisc.hpp"
#include "tc_object.hpp"

namespace tardy {
namespace {

// "+ ID ..." or "- ID": the op and a plain decimal id of at most 18 digits ("-1" is not an
// id, though istream would read it as 2^64-1; ids count up from 1, so a longer one is
// corruption, and refusing it keeps max + 1 from wrapping).
bool line_head(std::istringstream& ls, std::string& op, uint64_t& id) {
    std::string tok;
    if (!(ls >> op >> tok) || (op != "+" && op != "-") || tok.size() > 18) return false;
    auto [p, e] = std::from_chars(tok.data(), tok.data() + tok.size(), id);
    return e == std::errc() && p == tok.data() + tok.size();
}

}  // namespace

Result<void> Journal::append(const std::string& line) {
    int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return Error::sys("open journal " + path_, errno);
    std::string l = line + "\n";
    // A line torn by a crash or a full disk must not swallow this one.
    char last = '\n';
    off_t size = lseek(fd, 0, SEEK_END);
    if (size > 0 && pread(fd, &last, 1, size - 1) == 1 && last != '\n') l = "\n" + l;
    ssize_t n = write(fd, l.data(), l.size());
    int e = errno;
    bool synced = fsync(fd) == 0;
    close(fd);
    if (n != static_cast<ssize_t>(l.size()) || !synced) return Error::sys("write journal " + path_, e);
    return ok();
}

Result<uint64_t> Journal::record(JournalEntry e) {
    uint64_t max_id = 0;
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string op;
        uint64_t id = 0;
        if (line_head(ls, op, id)) max_id = std::max(max_id, id);
    }
    e.id = max_id + 1;
    std::string ifname = e.ifname.empty() ? "-" : e.ifname;
    std::string data = e.data.empty() ? "-" : e.data;
    TARDY_TRY(append("+ " + std::to_string(e.id) + " " + e.kind + " " + std::to_string(e.netns_ino) + " " +
                     std::to_string(e.ifindex) + " " + ifname + " " + data));
    return e.id;
}

Result<void> Journal::done(uint64_t id) { return append("- " + std::to_string(id)); }

std::vector<JournalEntry> Journal::open_entries(int* corrupt) const {
    std::map<uint64_t, JournalEntry> open;
    int bad = 0;
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string op;
        JournalEntry e;
        if (!line_head(ls, op, e.id)) {
            bad++;
            continue;
        }
        if (op == "-") {
            open.erase(e.id);
        } else if (op == "+" && (ls >> e.kind >> e.netns_ino >> e.ifindex >> e.ifname) &&
                   (e.kind == "clsact" || e.kind == "qdisc")) {
            std::getline(ls >> std::ws, e.data);
            if (e.data == "-" || e.data.empty()) {
                bad++;
                continue;
            }
            open[e.id] = e;
        } else {
            bad++;
        }
    }
    if (corrupt) *corrupt = bad;
    std::vector<JournalEntry> out;
    for (auto& [id, e] : open) out.push_back(e);
    return out;
}

Result<void> Journal::compact() {
    auto entries = open_entries();
    if (entries.empty()) {
        if (unlink(path_.c_str()) != 0 && errno != ENOENT) return Error::sys("remove journal " + path_, errno);
        return ok();
    }
    std::string tmp = path_ + ".tmp", text;
    for (const auto& e : entries)
        text += "+ " + std::to_string(e.id) + " " + e.kind + " " + std::to_string(e.netns_ino) + " " +
                std::to_string(e.ifindex) + " " + (e.ifname.empty() ? "-" : e.ifname) + " " +
                (e.data.empty() ? "-" : e.data) + "\n";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Error::sys("write journal " + tmp, errno);
    bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
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

Result<void> undo_journal_entry(const JournalEntry& e) {
    auto ns = find_netns(e.netns_ino);
    if (!ns) return ok();  // the namespace and everything in it are gone
    return in_netns(ns->get(), [&]() -> Result<void> {
        if (e.kind == "clsact") {
            // data: handle:priority:created_hook
            unsigned handle = 0, prio = 0, created = 0;
            if (std::sscanf(e.data.c_str(), "%x:%x:%u", &handle, &prio, &created) != 3)
                return Error::other("journal entry " + std::to_string(e.id) + ": bad clsact data '" + e.data + "'");
            return detach_clsact(e.ifindex, handle, prio, created != 0);
        }
        auto snap = decode(e.data);
        if (!snap) return snap.error();
        auto r = restore_root_qdisc(*snap);
        if (!r && r.error().err == ENODEV) return ok();  // the device went, and its qdisc with it
        return r;
    });
}

}  // namespace tardy
