// SPDX-License-Identifier: Apache-2.0
// A write-ahead record of every change that does not undo itself when the agent dies (a
// clsact filter on a kernel without TCX, a root qdisc replaced by fq). An entry is written
// and synced before the change is made and marked done after it is undone; whatever is
// still open is undone by the agent on exit, by `tardy kill`, and by the next agent start.
// The journal, journal.rejected and journal.tmp are never opened through a symlink: one in
// their place is refused (a user error naming it), never followed or written through.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "sys/fd.hpp"

namespace tardy {

struct JournalEntry {
    uint64_t id = 0;
    std::string kind;       // "clsact" (egress filter), "clsact-in" (ingress filter), "qdisc", "ifb" or
                            // "txcsum" (checksum offload features turned off, sys/offload.hpp)
    uint64_t netns_ino = 0;
    int ifindex = 0;
    std::string ifname;
    std::string data;       // kind-specific, the rest of the line (no newline)
};

struct UndoSummary {
    std::vector<std::string> undone;    // one line per undone entry, counts per kind when many
    std::vector<std::string> problems;  // entries that failed and stay open for the next try
    int set_aside = 0;                  // undecodable entries and unreadable lines moved out
    std::string set_aside_path;         // where they went (journal path + ".rejected"), "" when none
};

class Journal;
UndoSummary undo_all(Journal& j);

class Journal {
public:
    explicit Journal(std::string path) : path_(std::move(path)) {}
    Result<uint64_t> record(JournalEntry e);  // returns the new entry's id
    Result<void> done(uint64_t id);
    // Marks all of them done in one append and one fsync (an fsync each takes minutes for 1M).
    Result<void> done_many(const std::vector<uint64_t>& ids);
    // Entries recorded and not done, by id. Lines that do not parse are skipped and counted.
    std::vector<JournalEntry> open_entries(int* corrupt_lines = nullptr) const;
    // Rewrites the file with only the open entries (or removes it when there are none).
    Result<void> compact();
    const std::string& path() const { return path_; }

private:
    friend UndoSummary undo_all(Journal& j);
    // What the file looked like after our last append: while it still does, nobody else wrote
    // and max_id_ is still the highest id in it, so record() need not read the file again.
    struct Stamp {
        uint64_t dev = 0, ino = 0, size = 0;
        int64_t mtime_ns = 0;
        bool operator==(const Stamp&) const = default;
    };
    static Stamp stamp_of(int fd);  // all zero when fstat fails
    // Opens for appending; forgets max_id_ when the file is not as we left it.
    Result<Fd> open_append();
    Result<void> load_max_id(int fd);
    Result<void> write_synced(int fd, std::string lines, uint64_t max_id_in_lines);
    Result<void> rewrite(const std::vector<JournalEntry>& open);
    std::string path_;
    bool max_known_ = false;
    uint64_t max_id_ = 0;
    Stamp seen_;
};

// Undoes one entry in its network namespace; "gone" namespaces count as undone.
Result<void> undo_journal_entry(const JournalEntry& e);

// Undoes every open entry (for `tardy kill` and the agent's start), newest first in each
// namespace. Reads the file once and looks for namespaces once. What can never be undone (data
// that does not decode, lines that do not parse) is moved to <journal>.rejected so it cannot
// block the next kill; what failed for now stays open. Then closes the rest in one write and
// compacts. Needs the agent's lock held: nobody else may write the journal meanwhile.
UndoSummary undo_all(Journal& j);

}  // namespace tardy
