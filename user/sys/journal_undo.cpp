// SPDX-License-Identifier: Apache-2.0
// Undoing the journal: everything a dead agent left, in one pass (see journal.hpp).
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "sys/journal.hpp"
#include "sys/ifb.hpp"
#include "sys/offload.hpp"
#include "sys/journal_detail.hpp"
#include "sys/netns.hpp"
#include "sys/qdisc.hpp"
#include "sys/tc_filter.hpp"

namespace tardy {

using namespace journal_detail;

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
    if (e.kind == "ifb") return ok();
    if (e.kind == "txcsum") {
        auto b = TxCsumBits::decode(e.data);
        return b ? ok() : Result<void>(b.error());
    }
    if (e.kind == "clsact" || e.kind == "clsact-in") {
        auto c = decode_clsact(e);
        return c ? ok() : Result<void>(c.error());
    }
    auto s = decode(e.data);
    return s ? ok() : Result<void>(s.error());
}

// Undoes one entry in the calling thread's namespace; *device_gone when there was nothing left.
Result<void> undo_here(const JournalEntry& e, bool* device_gone) {
    if (e.kind == "clsact" || e.kind == "clsact-in") {
        auto c = decode_clsact(e);
        if (!c) return c.error();
        return detach_clsact(e.ifindex, c->handle, c->prio, c->created != 0, e.kind == "clsact-in");
    }
    if (e.kind == "ifb") {  // what it holds goes with it, never delivered: a loss, not a delay
        auto d = delete_ifb();
        if (!d) return d.error();
        if (!*d && device_gone) *device_gone = true;
        return ok();
    }
    if (e.kind == "txcsum") {  // on again, if the device is still the one we changed
        auto b = TxCsumBits::decode(e.data);
        if (!b) return b.error();
        if (static_cast<int>(if_nametoindex(e.ifname.c_str())) != e.ifindex) {
            if (device_gone) *device_gone = true;
            return ok();
        }
        return set_tx_csum(e.ifname, *b, true);
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
    std::string what = e.kind == "qdisc"    ? "the root qdisc of " + e.ifname
                       : e.kind == "ifb"    ? "the ifb device " + e.ifname
                       : e.kind == "txcsum" ? "the checksum offload of " + e.ifname
                                            : "the clsact filter on " + e.ifname;
    if (o == Outcome::NetnsGone) return "nothing to undo for " + what + ": its network namespace is gone";
    if (o == Outcome::DeviceGone) return "nothing to undo for " + what + ": the device is gone";
    return e.kind == "qdisc"    ? "restored the root qdisc of " + e.ifname
           : e.kind == "ifb"    ? "deleted the ifb device " + e.ifname
           : e.kind == "txcsum" ? "turned the checksum offload of " + e.ifname + " back on"
                                : "removed the clsact filter from " + e.ifname;
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
    // Counted per kind, each in its own words: {what was done, to what}.
    auto words = [](const std::string& kind) -> std::pair<std::string, std::string> {
        if (kind == "qdisc") return {"restored", "root qdisc(s)"};
        if (kind == "ifb") return {"deleted", "ifb device(s)"};
        if (kind == "txcsum") return {"turned back on", "checksum offload(s)"};
        return {"removed", "clsact filter(s)"};
    };
    std::map<std::pair<std::string, std::string>, std::pair<size_t, size_t>> counts;  // -> undone, gone
    for (size_t i = 0; i < open.size(); ++i) {
        auto& c = counts[words(open[i].kind)];
        if (out[i] == Outcome::Undone) ++c.first;
        if (out[i] == Outcome::DeviceGone || out[i] == Outcome::NetnsGone) ++c.second;
    }
    for (const auto& [w, c] : counts)
        if (c.first) s.undone.push_back(w.first + " " + std::to_string(c.first) + " " + w.second);
    for (const auto& [w, c] : counts)
        if (c.second)
            s.undone.push_back("nothing to undo for " + std::to_string(c.second) + " " + w.second +
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
