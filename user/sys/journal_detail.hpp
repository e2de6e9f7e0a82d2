// SPDX-License-Identifier: Apache-2.0
// The journal's text format, shared by journal.cpp (recording) and journal_undo.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sys/journal.hpp"

namespace tardy::journal_detail {

struct Parsed {
    std::vector<JournalEntry> open;     // by id
    std::vector<std::string_view> bad;  // lines that do not parse (views into the text)
};
Parsed parse(std::string_view text);
std::string format_line(const JournalEntry& e);
Result<std::string> read_path(const std::string& path);
Result<void> append_file(const std::string& path, std::string lines);

}  // namespace tardy::journal_detail
