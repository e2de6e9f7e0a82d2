// SPDX-License-Identifier: Apache-2.0
// model/report_html: the report page of a run, from a realistic journal and from malformed ones.
#include "model/report_html.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace tardy {
namespace {

using nlohmann::json;

size_t count(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size())) ++n;
    return n;
}

// A run that deviated: 10 s of baseline, 10 s of delayed connects, 10 s of recovery; one
// sample a second; the p99 crossed its bound once.
json realistic_journal() {
    json j = {
        {"title", "Checkout survives a slow database"},
        {"description", "Delay connects to postgres by 200 ms and watch checkout."},
        {"file", "experiments/checkout-db.yaml"},
        {"status", "deviated"},
        {"exit_code", 1},
        {"reason", "tcp.connect_ms.p99 went over control +20% at 14.5 s (step 1)"},
        {"started", "2026-12-01T09:10:04Z"},
        {"ended", "2026-12-01T09:10:34Z"},
        {"duration_s", 30.2},
        {"cohorts", {{"experiment", {{"cgroup", "/kubepods/checkout-blue"}}},
                     {"control", {{"cgroup", "/kubepods/checkout-green"}}}}},
        {"window", "weekdays 09:00-17:00 Europe/Berlin"},
        {"hypothesis", {{{"id", 1}, {"text", "tcp.connect_ms.p99 <= control +20%"}, {"kind", "metric"}, {"unit", "ms"}},
                        {{"id", 2}, {"text", "probe http://checkout/health ok"}, {"kind", "probe"}, {"unit", "%"}}}},
        {"phases",
         {{{"name", "baseline"}, {"kind", "baseline"}, {"start_s", 0}, {"end_s", 10}, {"planned_s", 10},
           {"completed", true}, {"fault", nullptr}},
          {{"name", "step 1"}, {"kind", "method"}, {"start_s", 10}, {"end_s", 20}, {"planned_s", 10},
           {"completed", true},
           {"fault", {{"text", "delay connect 200ms to 10.0.0.5:5432"}, {"injection", "exp-checkout-1"},
                      {"counters", {{"connects", 412}, {"delayed", 98}, {"failed", 0}}}}}},
          {{"name", "recovery"}, {"kind", "recovery"}, {"start_s", 20}, {"end_s", 30}, {"planned_s", 10},
           {"completed", true}, {"fault", nullptr}}}},
        {"samples", json::array()},
        {"breaches", {{{"t_s", 14.5}, {"phase", 1}, {"id", 1}, {"text", "p99 243 ms > limit 60 ms"}}}},
        {"comparison",
         {{{"metric", "tcp.connect_ms"}, {"unit", "ms"},
           {"text", "experiment higher than control (p=0.0003, shift +48.2 [+41.0, +55.1], P(e>c)=0.91)"},
           {"p_value", 0.0003}, {"shift", 48.2}, {"shift_ci", {41.0, 55.1}}, {"superiority", 0.91},
           {"n_experiment", 412}, {"n_control", 398}}}},
    };
    for (int i = 0; i < 30; ++i) {
        double t = i + 0.5;
        int phase = i < 10 ? 0 : i < 20 ? 1 : 2;
        double control = 48 + (i % 3);
        double experiment = phase == 1 ? 230 + (i % 4) * 5 : control + (i % 2);
        json connect = {{"id", 1}, {"experiment", experiment}, {"control", control}, {"limit", control * 1.2},
                        {"ok", experiment <= control * 1.2}};
        json probe = {{"id", 2}, {"experiment", phase == 1 && i % 5 == 0 ? 80.0 : 100.0}, {"control", 100.0},
                      {"limit", nullptr}, {"ok", nullptr}};
        if (i == 25) connect["control"] = nullptr;  // a gap
        j["samples"].push_back({{"t_s", t}, {"phase", phase}, {"values", {connect, probe}}});
    }
    return j;
}

// Checks that the page nests like XML: every tag closed in order (or self-closed), quoted
// attributes, no stray '<', every '&' an entity. Returns what is wrong, or "".
std::string xml_problem(const std::string& page) {
    std::vector<std::string> open;
    size_t i = 0;
    while (i < page.size()) {
        char c = page[i];
        if (c == '&') {
            size_t semi = page.find(';', i);
            if (semi == std::string::npos || semi - i > 10 || semi == i + 1) return "bare & at " + std::to_string(i);
            for (size_t k = i + 1; k < semi; ++k)
                if (!std::isalnum(static_cast<unsigned char>(page[k])) && page[k] != '#')
                    return "bad entity at " + std::to_string(i);
            i = semi + 1;
            continue;
        }
        if (c != '<') {
            ++i;
            continue;
        }
        if (page.compare(i, 9, "<!DOCTYPE") == 0) {
            i = page.find('>', i) + 1;
            continue;
        }
        bool closing = page.compare(i, 2, "</") == 0;
        size_t name_at = i + (closing ? 2 : 1), k = name_at;
        while (k < page.size() && (std::isalnum(static_cast<unsigned char>(page[k])) || page[k] == '-')) ++k;
        std::string name = page.substr(name_at, k - name_at);
        if (name.empty()) return "stray < at " + std::to_string(i);
        char quote = 0;
        for (; k < page.size() && (quote || page[k] != '>'); ++k) {
            if (quote && page[k] == quote) quote = 0;
            else if (!quote && (page[k] == '"' || page[k] == '\'')) quote = page[k];
            else if (page[k] == '<') return "< inside tag " + name;
        }
        if (k >= page.size()) return "unterminated tag " + name;
        if (closing) {
            if (open.empty() || open.back() != name)
                return "</" + name + "> closes " + (open.empty() ? "nothing" : open.back());
            open.pop_back();
        } else if (page[k - 1] != '/') {
            open.push_back(name);
        }
        i = k + 1;
    }
    return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

// The page asks for nothing outside itself.
void expect_self_contained(const std::string& page) {
    for (const char* bad : {"<script", "<link", "<img", "<iframe", "<object", "<embed", "href=\"", "href='",
                            "src=\"", "src='", "url(", "@import", "@font-face"})
        EXPECT_EQ(page.find(bad), std::string::npos) << bad;
}

void expect_page(const std::string& page) {
    ASSERT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u) << page.substr(0, 200);
    EXPECT_EQ(count(page, "<svg"), count(page, "</svg>"));
    EXPECT_EQ(xml_problem(page), "");
    expect_self_contained(page);
}

TEST(ReportHtml, RealisticJournal) {
    std::string page = render_report_html(realistic_journal());
    expect_page(page);
    if (const char* path = std::getenv("TARDY_REPORT_SAMPLE")) std::ofstream(path) << page;  // to look at

    EXPECT_NE(page.find("<h1>Checkout survives a slow database</h1>"), std::string::npos);
    EXPECT_NE(page.find("<section class=\"verdict deviated\">"), std::string::npos);
    EXPECT_NE(page.find("Hypothesis deviated"), std::string::npos);
    EXPECT_NE(page.find("went over control +20% at 14.5 s"), std::string::npos);
    EXPECT_NE(page.find("30.2 s"), std::string::npos);
    EXPECT_NE(page.find("/kubepods/checkout-green"), std::string::npos);
    EXPECT_NE(page.find("weekdays 09:00-17:00"), std::string::npos);
    // One chart per entry, the method step shaded in both, the breach only in the first.
    EXPECT_EQ(count(page, "<svg"), 2u);
    EXPECT_EQ(count(page, "<rect class=\"step\" x=\""), 2u + 2u);  // the legend has one each
    EXPECT_EQ(count(page, "<title>step 1</title>"), 2u);
    EXPECT_EQ(count(page, "<g class=\"breach\">"), 1u);
    EXPECT_NE(page.find("breach at 14.5 s: p99 243 ms &gt; limit 60 ms"), std::string::npos);
    EXPECT_NE(page.find("<path class=\"limit\""), std::string::npos);
    // The control of entry 1 has a gap at 25.5 s: two lines; entry 2 none.
    EXPECT_EQ(count(page, "<polyline class=\"control\""), 3u);
    EXPECT_EQ(count(page, "<polyline class=\"experiment\""), 2u);
    // Phases, comparison, breaches.
    EXPECT_NE(page.find("delay connect 200ms to 10.0.0.5:5432"), std::string::npos);
    EXPECT_NE(page.find("<code>exp-checkout-1</code>"), std::string::npos);
    EXPECT_NE(page.find("delayed <b>98</b>"), std::string::npos);
    EXPECT_NE(page.find("412 / 398"), std::string::npos);
    EXPECT_NE(page.find("+48.2 [+41, +55.1] ms"), std::string::npos);
    EXPECT_NE(page.find("P(e&gt;c)=0.91"), std::string::npos);
    EXPECT_NE(page.find("<li><b>14.5 s</b>, step 1, H1: p99 243 ms &gt; limit 60 ms</li>"), std::string::npos);
    // The journal's own URL is text, not a link.
    EXPECT_NE(page.find("probe http://checkout/health ok"), std::string::npos);
}

TEST(ReportHtml, VerdictBanner) {
    for (auto [status, cls] : std::vector<std::pair<json, std::string>>{
             {"held", "held"}, {"deviated", "deviated"}, {"baseline_not_met", "amber"}, {"aborted", "amber"},
             {"refused", "grey"}, {"failed", "grey"}, {"exploded", "grey"}, {nullptr, "grey"}, {7, "grey"}}) {
        std::string page = render_report_html({{"status", status}});
        EXPECT_NE(page.find("<section class=\"verdict " + cls + "\">"), std::string::npos) << status;
        expect_page(page);
    }
    EXPECT_NE(render_report_html({{"status", "exploded"}}).find("No verdict: exploded"), std::string::npos);
}

TEST(ReportHtml, EscapesEveryJournalString) {
    const std::string evil = "<script>alert(1)</script>&\"'";
    const std::string escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;";
    json j = realistic_journal();
    j["title"] = evil;
    j["description"] = "<a href=\"https://evil.example/\">x</a><img src=x>";
    j["reason"] = j["file"] = j["window"] = j["started"] = evil;
    j["cohorts"]["experiment"]["cgroup"] = evil;
    j["hypothesis"][0]["text"] = j["hypothesis"][0]["unit"] = evil;
    j["phases"][1]["name"] = j["phases"][1]["kind"] = evil;
    j["phases"][1]["fault"]["text"] = j["phases"][1]["fault"]["injection"] = evil;
    j["phases"][1]["fault"]["counters"][evil] = 1;
    j["comparison"][0]["metric"] = j["comparison"][0]["text"] = j["comparison"][0]["unit"] = evil;
    j["breaches"][0]["text"] = evil;
    j["status"] = evil;
    std::string page = render_report_html(j);
    expect_page(page);
    EXPECT_EQ(page.find("<script"), std::string::npos);
    EXPECT_EQ(page.find("<a "), std::string::npos);
    EXPECT_GE(count(page, escaped), 15u);
    EXPECT_NE(page.find("&lt;a href=&quot;https://evil.example/&quot;&gt;"), std::string::npos);
    // Control characters and broken UTF-8 do not reach the page; good UTF-8 does.
    page = render_report_html({{"title", std::string("a\x01" "b\xff" "c\xc3\xa9" "d\xed\xa0\x80" "e")}});
    EXPECT_NE(page.find("<h1>a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xc3\xa9" "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "e</h1>"),
              std::string::npos);
}

// A vector, not a json: `{sample(...)}` as a json would be the sample itself, not an array of one.
json one_entry(const std::vector<json>& samples) {
    return {{"hypothesis", {{{"id", 1}, {"text", "x"}, {"unit", "ms"}}}}, {"samples", json(samples)}};
}

json sample(json t, json e, json c = nullptr, json limit = nullptr) {
    return {{"t_s", t}, {"phase", 0}, {"values", {{{"id", 1}, {"experiment", e}, {"control", c}, {"limit", limit}}}}};
}

TEST(ReportHtml, ChartEdgeCases) {
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    // No samples at all, or none for this entry.
    EXPECT_NE(render_report_html(one_entry({})).find("no samples"), std::string::npos);
    EXPECT_NE(render_report_html({{"hypothesis", {{{"text", "no id"}}}}, {"samples", {sample(1, 2)}}}).find("no samples"),
              std::string::npos);
    std::vector<json> cases = {
        one_entry({sample(0, 5)}),                                          // one sample at 0
        one_entry({sample(3, 5, 5, 5), sample(4, 5, 5, 5), sample(5, 5)}),  // all equal
        one_entry({sample(1, 0), sample(2, 0)}),                            // all zero
        one_entry({sample(1, 1e308, -1e308, 1.7e308), sample(2, -1.7e308, 1e300)}),  // huge
        one_entry({sample(1, 1e15), sample(2, 1e15 + 0.125)}),              // tiny span, large values
        one_entry({sample(1, 4.9e-324), sample(2, 0)}),                     // denormal
        one_entry({sample(-5, -3), sample(0, -1), sample(5, 2)}),           // negative time and values
        one_entry({sample(1, nullptr), sample(2, nullptr, nullptr)}),       // nothing but gaps
        one_entry({sample(1, nan, inf, -inf), sample(inf, 1), sample(nan, 2)}),
        one_entry({sample(2, 1), sample(1, 2), sample(1, 3)}),              // out of order, same time
        one_entry({sample(1e300, 1), sample(-1e300, 2)}),                   // huge times
    };
    for (const json& j : cases) {
        std::string page = render_report_html(j);
        SCOPED_TRACE(j.dump());
        expect_page(page);
        EXPECT_EQ(count(page, "<svg"), 1u);
        EXPECT_EQ(page.find("nan"), std::string::npos);
        EXPECT_EQ(page.find("inf"), std::string::npos);
        EXPECT_EQ(page.find("e+308"), std::string::npos);  // tamed to 1e300 in the chart
    }
    // A single sample is a dot; gaps split a line; a value alone between gaps is a dot.
    EXPECT_NE(render_report_html(cases[0]).find("<circle class=\"experiment dot\""), std::string::npos);
    std::string gaps = render_report_html(one_entry(
        {sample(1, 1), sample(2, 2), sample(3, nullptr), sample(4, 4), sample(5, nullptr), sample(6, 6), sample(7, 7)}));
    EXPECT_EQ(count(gaps, "<polyline class=\"experiment\""), 2u);
    EXPECT_EQ(count(gaps, "<circle class=\"experiment dot\""), 1u);
    EXPECT_NE(render_report_html(cases[7]).find("no values"), std::string::npos);
    // A limit that changes is a step line: horizontal, then vertical.
    std::string steps = render_report_html(one_entry({sample(1, 1, 1, 10), sample(2, 1, 1, 20), sample(3, 1, 1, 20)}));
    EXPECT_NE(steps.find("<path class=\"limit\" d=\"M"), std::string::npos);
    EXPECT_NE(steps.find(" H"), std::string::npos);
    EXPECT_NE(steps.find(" V"), std::string::npos);
    EXPECT_EQ(render_report_html(cases[0]).find("<path class=\"limit\""), std::string::npos);
}

TEST(ReportHtml, NonFiniteAndWrongNumbersPrintAsDash) {
    json j = realistic_journal();
    j["duration_s"] = std::numeric_limits<double>::quiet_NaN();
    j["phases"][1]["start_s"] = "ten";
    j["phases"][1]["fault"]["counters"]["delayed"] = std::numeric_limits<double>::infinity();
    j["comparison"][0]["p_value"] = nullptr;
    std::string page = render_report_html(j);
    expect_page(page);
    EXPECT_NE(page.find("<tr><th>duration</th><td>-</td></tr>"), std::string::npos);
    EXPECT_NE(page.find("delayed <b>-</b>"), std::string::npos);
    EXPECT_EQ(count(page, "<svg"), 2u);  // the step's start comes from its samples
    EXPECT_EQ(count(page, "<title>step 1</title>"), 2u);
}

TEST(ReportHtml, MalformedJournalsNeverThrow) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<json> journals = {
        nullptr, json::array(), 42, -1.5, nan, "journal", true, json::object(),
        json(json::value_t::discarded), json::binary({1, 2, 3}),
        {{"title", 5}, {"status", {"held"}}, {"reason", {{"a", 1}}}, {"duration_s", "long"}, {"exit_code", "1"}},
        {{"samples", "abc"}, {"hypothesis", {{"id", 1}}}, {"phases", 3}, {"breaches", {{"t_s", 1}}}},
        {{"hypothesis", {{{"id", "1"}}, {{"id", 1}}, nullptr, 5}},
         {"samples", {{{"t_s", "1"}, {"values", {{{"id", 1}, {"experiment", "5"}}}}}, nullptr, {{"values", 7}}}}},
        {{"phases", {nullptr, 1, {{"fault", "text"}}, {{"fault", {{"counters", {1, 2}}}}}, {{"kind", "method"}}}}},
        {{"phases", {{{"kind", "method"}, {"start_s", nan}, {"end_s", -1e308}}}},
         {"samples", {{{"t_s", 1}, {"phase", 18446744073709551615ull}}, {{"t_s", 2}, {"phase", -1}}}}},
        {{"comparison", {{{"shift_ci", "x"}}, {{"shift_ci", {1}}}, {{"shift_ci", {nullptr, "a"}}}, {{"n_control", nan}}}}},
        {{"breaches", {{{"phase", -1}}, {{"phase", 1e300}}, {{"phase", 18446744073709551615ull}}, {{"id", nan}}}}},
        {{"cohorts", {{"experiment", "x"}, {"control", 5}}}, {"window", {1}}},
        {{"cohorts", json::array()}, {"hypothesis", {{{"id", 18446744073709551615ull}}, {{"id", -9223372036854775807ll}}}}},
    };
    for (const json& j : journals) {
        std::string page;
        ASSERT_NO_THROW(page = render_report_html(j)) << j.dump(-1, ' ', false, json::error_handler_t::replace);
        expect_page(page);
    }
}

// A random value of any type, sometimes a copy of another node of the journal.
json random_value(std::mt19937& rng, const std::vector<json>& nodes) {
    switch (rng() % 16) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int>(rng() % 7) - 3;
    case 3: return std::numeric_limits<double>::quiet_NaN();
    case 4: return (rng() % 2 ? 1 : -1) * std::numeric_limits<double>::infinity();
    case 5: return rng() % 2 ? 1.7e308 : -1e-310;
    case 6: return std::numeric_limits<uint64_t>::max();
    case 7: return std::numeric_limits<int64_t>::min();
    case 8: return "";
    case 9: return "<b>&amp;\"'\xff";
    case 10: return json::array();
    case 11: return json::object();
    case 12: return {nullptr, 1, "s", json::array()};
    case 13: return {{"id", "1"}, {"t_s", nullptr}};
    case 14: return 2.5;
    default: return nodes[rng() % nodes.size()];
    }
}

void collect(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
    out.push_back(at);
    if (j.is_object())
        for (const auto& [k, v] : j.items()) collect(v, at / k, out);
    else if (j.is_array())
        for (size_t i = 0; i < j.size(); ++i) collect(j[i], at / i, out);
}

TEST(ReportHtml, RandomMutationsNeverThrow) {
    std::mt19937 rng(20261201);
    const json base = realistic_journal();
    std::vector<json::json_pointer> pointers;
    collect(base, json::json_pointer(), pointers);
    std::vector<json> nodes;
    for (const auto& p : pointers) nodes.push_back(base[p]);
    for (int round = 0; round < 1500; ++round) {
        json j = base;
        int mutations = 1 + static_cast<int>(rng() % 4);
        for (int m = 0; m < mutations; ++m) {
            std::vector<json::json_pointer> here;
            collect(j, json::json_pointer(), here);
            const auto& at = here[rng() % here.size()];
            if (rng() % 5 == 0 && !at.empty() && j[at.parent_pointer()].is_object())
                j[at.parent_pointer()].erase(at.back());
            else
                j[at] = random_value(rng, nodes);
        }
        std::string page;
        ASSERT_NO_THROW(page = render_report_html(j)) << round;
        ASSERT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u) << round;
        ASSERT_EQ(xml_problem(page), "") << round;
        ASSERT_EQ(count(page, "<svg"), count(page, "</svg>")) << round;
    }
}

// xmllint, where it is installed, agrees that the page is well-formed XML.
TEST(ReportHtml, XmllintAcceptsThePage) {
    if (std::system("command -v xmllint >/dev/null 2>&1") != 0) GTEST_SKIP() << "no xmllint";
    test::TempDir dir;
    json evil = realistic_journal();
    evil["title"] = "<script>&\"'\x01\xff";
    for (const json& j : {realistic_journal(), evil, json(nullptr), one_entry({})}) {
        std::string path = dir / "report.html";
        std::ofstream(path) << render_report_html(j);
        EXPECT_EQ(std::system(("xmllint --noout " + path).c_str()), 0)
            << j.dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

}  // namespace
}  // namespace tardy
