// A write-ahead record of every change that does not undo itself when the agent dies (a
// clsact filter on a kernel without TCX, a root qdisc replaced by fq). An entry is written
// and synced before the change is made and marked done after it is undone; whatever is
// still open is undone by the agent on exit, by `tardy kill`, and by the next agent start.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "error.hpp"

namespace tardy {

struct JournalEntry {
    uint64_t id = 0;
    std::string kind;       // "clsact" or "qdisc"
    uint64_t netns_ino = 0;
    int ifindex = 0;
    std::string ifname;
    std::string data;       // kind-specific, the rest of the line (no newline)
};

class Journal {
public:
    explicit Journal(std::string path) : path_(std::move(path)) {}
    Result<uint64_t> record(JournalEntry e);  // returns the new entry's id
    Result<void> done(uint64_t id);
    // Entries recorded and not done. Lines that do not parse are skipped and counted.
    std::vector<JournalEntry> open_entries(int* corrupt_lines = nullptr) const;
    // Rewrites the file with only the open entries (or removes it when there are none).
    Result<void> compact();
    const std::string& path() const { return path_; }

private:
    Result<void> append(const std::string& line);
    std::string path_;
};

// Undoes one entry in its network namespace; "gone" namespaces count as undone.
Result<void> undo_journal_entry(const JournalEntry& e);

}  // namespace tardy
