// SPDX-License-Identifier: Apache-2.0
// Parsing and printing of the units users type: durations and percentages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/error.hpp"

namespace tardy {

// A value the user typed, fit for a one-line message: control characters become '?'.
std::string shown(std::string_view v);

// "250us", "1.5s", "5m", "100ns", "20ms". A bare number is refused: the unit is the point.
Result<uint64_t> parse_duration_ns(std::string_view text, std::string_view flag);

// "5%", "0.01%", "100%" -> parts per million (0..1'000'000).
Result<uint32_t> parse_percent_ppm(std::string_view text, std::string_view flag);

// 50000000 -> "50ms", 1500000000 -> "1.5s"
std::string format_duration(uint64_t ns);
std::string format_ppm(uint32_t ppm);

}  // namespace tardy
