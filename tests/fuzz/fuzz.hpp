// SPDX-License-Identifier: Apache-2.0
// Shared by the fuzz targets (tests/fuzz/*_fuzz.cpp, dispatched by tardy_fuzz.cpp): how a
// broken invariant is reported (abort with the input shown, so libFuzzer saves it) and the
// checks every error message must pass.
#pragma once

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

namespace tardy::fuzz {

inline bool lenient() {
    static const bool l = [] {
        const char* e = std::getenv("TARDY_FUZZ_LENIENT");
        return e && *e && std::strcmp(e, "0") != 0;
    }();
    return l;
}

[[noreturn]] inline void fail(const std::string& what, std::string_view input) {
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

inline bool has(std::string_view s, std::string_view sub) { return s.find(sub) != std::string_view::npos; }

// Every error: non-empty, one line (unless the input itself carried a newline and we are
// lenient about that known bug), and naming `flag` when given.
inline void check_error(const Error& e, std::string_view input, std::string_view flag, bool want_user = true) {
    CHECK(!e.message.empty(), "empty error message", input);
    if (want_user) CHECK(e.is_user(), "not a user error: " + e.message, input);
    bool input_nl = has(input, "\n");
    if (!(lenient() && input_nl)) CHECK(!has(e.message, "\n"), "error message is not one line: " + e.message, input);
    if (!flag.empty()) CHECK(has(e.message, flag), "error does not name " + std::string(flag) + ": " + e.message, input);
}

// The targets; the first input byte picks one (tardy_fuzz.cpp).
void fuzz_duration(std::string_view in);
void fuzz_percent(std::string_view in);
void fuzz_qdisc_decode(std::string_view in);
void fuzz_qdisc_encode(std::string_view in);
void fuzz_journal(std::string_view in);
void fuzz_container_id(std::string_view in);
void fuzz_inject(std::string_view in);
void fuzz_request(std::string_view in);

}  // namespace tardy::fuzz
