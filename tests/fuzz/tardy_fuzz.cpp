// SPDX-License-Identifier: Apache-2.0
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
// The targets are in units_fuzz.cpp, journal_fuzz.cpp and request_fuzz.cpp (fuzz.hpp: what
// they share). Build and run: tests/fuzz/run.sh [SECONDS]
#include <cstddef>
#include <cstdint>
#include <iterator>

#include "fuzz.hpp"

using namespace tardy::fuzz;

namespace {

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
