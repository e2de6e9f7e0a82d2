// SPDX-License-Identifier: Apache-2.0
// Internal to report_html.cpp and report_svg.cpp: reading a journal of any shape, escaping, numbers, the chart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tardy::report {

using json = nlohmann::json;

// j[key] when j is an object that has the key, else nullptr. Never throws.
const json* field(const json& j, const char* key);

// j[key] read as one type; nullopt when missing, null, of another type or (numbers) not finite.
std::optional<double> number(const json& j, const char* key);
std::optional<int64_t> integer(const json& j, const char* key);  // also 3.0, not 3.5
std::optional<bool> boolean(const json& j, const char* key);
std::string text(const json& j, const char* key);  // "" when not a string

// j[key] when it is an array, else an empty array: for range-for over unchecked input.
const json& array(const json& j, const char* key);

// HTML and XML text: & < > " ' escaped; control characters and bytes that are not UTF-8
// replaced by U+FFFD, so the page stays valid UTF-8 and well-formed XML.
std::string escape(std::string_view s);

// A number for people: "-" when not finite, whole numbers exactly ("3600"), others with
// `digits` significant digits ("12.3457", "1.5e+300").
std::string fmt(double v, int digits = 6);
// A journal value: integers exactly, finite floats as fmt, anything else "-".
std::string fmt(const json& v);

// The chart of one hypothesis entry: its samples over time for both cohorts, the limit, the
// method phases shaded and its breaches marked; a one-line "no samples" paragraph without samples.
std::string svg_chart(const json& journal, const json& entry);

}  // namespace tardy::report
