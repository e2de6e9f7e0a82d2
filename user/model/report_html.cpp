// SPDX-License-Identifier: Apache-2.0
// report.html: the self-contained page of one experiment run, made from its journal.
#include "model/report_html.hpp"

#include <cmath>
#include <cstdio>

#include "model/report_svg.hpp"

namespace tardy {

namespace report {

const json* field(const json& j, const char* key) {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

std::optional<double> number(const json& j, const char* key) {
    const json* v = field(j, key);
    if (!v || !v->is_number()) return std::nullopt;
    double d = v->get<double>();
    return std::isfinite(d) ? std::optional<double>(d) : std::nullopt;
}

std::optional<int64_t> integer(const json& j, const char* key) {
    const json* v = field(j, key);
    if (!v) return std::nullopt;
    if (v->is_number_unsigned()) {
        uint64_t u = v->get<uint64_t>();
        return u <= static_cast<uint64_t>(INT64_MAX) ? std::optional<int64_t>(static_cast<int64_t>(u)) : std::nullopt;
    }
    if (v->is_number_integer()) return v->get<int64_t>();
    if (v->is_number_float()) {
        double d = v->get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15) return static_cast<int64_t>(d);
    }
    return std::nullopt;
}

std::optional<bool> boolean(const json& j, const char* key) {
    const json* v = field(j, key);
    return v && v->is_boolean() ? std::optional<bool>(v->get<bool>()) : std::nullopt;
}

std::string text(const json& j, const char* key) {
    const json* v = field(j, key);
    return v && v->is_string() ? v->get<std::string>() : std::string();
}

const json& array(const json& j, const char* key) {
    static const json empty = json::array();
    const json* v = field(j, key);
    return v && v->is_array() ? *v : empty;
}

std::string escape(std::string_view s) {
    static const char kReplacement[] = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            case '\t': case '\n': case '\r': out += static_cast<char>(c); break;
            default:
                if (c < 0x20) out += kReplacement;  // not allowed in XML
                else out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        // A UTF-8 sequence: the right length, continuation bytes, not overlong, no surrogate,
        // at most U+10FFFF, not U+FFFE or U+FFFF (not allowed in XML).
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        uint32_t cp = len == 4 ? c & 0x07 : len == 3 ? c & 0x0F : c & 0x1F;
        bool ok = len && i + len <= s.size();
        for (size_t k = 1; ok && k < len; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            ok = (cc & 0xC0) == 0x80;
            cp = cp << 6 | (cc & 0x3F);
        }
        static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp != 0xFFFE &&
             cp != 0xFFFF;
        if (ok) out.append(s.substr(i, len));
        else out += kReplacement;
        i += ok ? len : 1;
    }
    return out;
}

std::string fmt(double v, int digits) {
    if (!std::isfinite(v)) return "-";
    char buf[64];
    if (v == std::floor(v) && std::abs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v == 0 ? 0.0 : v);
    else std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
}

std::string fmt(const json& v) {
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_number_float()) return fmt(v.get<double>());
    return "-";
}

}  // namespace report

namespace {

using report::array;
using report::escape;
using report::field;
using report::fmt;
using report::json;
using report::number;
using report::text;

constexpr const char* kStyle = R"(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2327; margin: 0 auto;
       max-width: 1000px; padding: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 32px 0 8px; font-size: 19px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { margin: 20px 0 2px; font-size: 15px; }
.muted, .none, .file { color: #6a737d; }
.desc { margin: 4px 0; white-space: pre-wrap; }
.verdict { margin: 16px 0; padding: 14px 18px; border-radius: 6px; color: #fff; }
.verdict .status { font-size: 28px; font-weight: 700; letter-spacing: 0.5px; }
.verdict .reason { font-size: 15px; margin-top: 2px; }
.verdict .exit { font-size: 12px; opacity: 0.85; }
.held { background: #1a7f37; }
.deviated { background: #c62828; }
.amber { background: #b35c00; }
.grey { background: #57606a; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { text-align: left; vertical-align: top; padding: 4px 10px 4px 0; border-bottom: 1px solid #eaeef2; }
th { font-weight: 600; color: #444d56; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.facts th { width: 160px; }
.ctr { display: inline-block; margin-right: 10px; white-space: nowrap; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f3f5f7; padding: 0 3px; }
svg.chart { max-width: 100%; height: auto; display: block; margin: 4px 0 8px; }
svg text { font: 10px system-ui, sans-serif; fill: #444d56; }
svg .legend { font-size: 11px; }
svg .steplabel { font-size: 10px; fill: #8a6d00; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .zero { stroke: #8c959f; stroke-width: 1; }
svg .axis { stroke: #8c959f; stroke-width: 1; fill: none; }
svg .step { fill: #fff3c4; stroke: none; opacity: 0.8; }
svg .experiment { stroke: #1f5fbf; stroke-width: 1.8; fill: none; }
svg .control { stroke: #e08a00; stroke-width: 1.5; stroke-dasharray: 5 3; fill: none; }
svg .limit { stroke: #7b3fa0; stroke-width: 1.2; stroke-dasharray: 2 3; fill: none; }
svg .dot { stroke: none; }
svg circle.experiment { fill: #1f5fbf; }
svg circle.control { fill: #e08a00; }
svg .breach-line { stroke: #d32f2f; stroke-width: 1; opacity: 0.6; }
svg .breach-mark { fill: #d32f2f; stroke: none; }
.breaches li { margin: 2px 0; }
footer { margin-top: 36px; font-size: 12px; color: #6a737d; }
)";

// The banner's words and colour for a status.
struct Verdict {
    const char* status;
    const char* words;
    const char* cls;
};

Verdict verdict_of(const std::string& status) {
    static const Verdict known[] = {
        {"held", "Hypothesis held", "held"},
        {"deviated", "Hypothesis deviated", "deviated"},
        {"baseline_not_met", "Baseline not met", "amber"},
        {"aborted", "Aborted", "amber"},
        {"refused", "Refused", "grey"},
        {"failed", "Failed", "grey"},
    };
    for (const Verdict& v : known)
        if (status == v.status) return v;
    return {"", "No verdict", "grey"};
}

// "12.5 s", or "-".
std::string seconds(const json& j, const char* key) {
    const json* v = field(j, key);
    std::string s = v ? fmt(*v) : "-";
    return s == "-" ? s : s + " s";
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : escape(s); }

std::string cell(const std::string& html, bool num = false) {
    return std::string(num ? "<td class=\"num\">" : "<td>") + html + "</td>";
}

void header(std::string& out, const json& j) {
    std::string title = text(j, "title");
    out += "<h1>" + escape(title.empty() ? "Untitled experiment" : title) + "</h1>\n";
    if (std::string d = text(j, "description"); !d.empty()) out += "<p class=\"desc\">" + escape(d) + "</p>\n";
    if (std::string f = text(j, "file"); !f.empty()) out += "<p class=\"file\"><code>" + escape(f) + "</code></p>\n";

    std::string status = text(j, "status");
    Verdict v = verdict_of(status);
    out += "<section class=\"verdict " + std::string(v.cls) + "\">\n<div class=\"status\">" + v.words;
    if (!*v.status && !status.empty()) out += ": " + escape(status);
    out += "</div>\n";
    if (std::string r = text(j, "reason"); !r.empty()) out += "<div class=\"reason\">" + escape(r) + "</div>\n";
    if (const json* code = field(j, "exit_code"); code && code->is_number())
        out += "<div class=\"exit\">exit code " + fmt(*code) + "</div>\n";
    out += "</section>\n";

    const json* cohorts = field(j, "cohorts");
    auto cgroup = [&](const char* which) {
        const json* c = cohorts ? field(*cohorts, which) : nullptr;
        if (c && c->is_null()) return std::string("<span class=\"muted\">none</span>");
        std::string g = c ? text(*c, "cgroup") : "";
        return g.empty() ? std::string("-") : "<code>" + escape(g) + "</code>";
    };
    std::string window = text(j, "window");
    out += "<table class=\"facts\">\n";
    out += "<tr><th>started</th>" + cell(or_dash(text(j, "started"))) + "</tr>\n";
    out += "<tr><th>ended</th>" + cell(or_dash(text(j, "ended"))) + "</tr>\n";
    out += "<tr><th>duration</th>" + cell(seconds(j, "duration_s")) + "</tr>\n";
    out += "<tr><th>experiment cohort</th>" + cell(cgroup("experiment")) + "</tr>\n";
    out += "<tr><th>control cohort</th>" + cell(cgroup("control")) + "</tr>\n";
    out += "<tr><th>window</th>" + cell(window.empty() ? "<span class=\"muted\">none</span>" : escape(window)) +
           "</tr>\n</table>\n";
}

void hypothesis(std::string& out, const json& j) {
    out += "<h2>Hypothesis</h2>\n";
    size_t shown = 0;
    for (const json& e : array(j, "hypothesis")) {
        if (!e.is_object()) continue;
        ++shown;
        const json* id = field(e, "id");
        out += "<section class=\"entry\">\n<h3>";
        if (id && id->is_number()) out += "H" + fmt(*id) + ": ";
        out += escape(text(e, "text")) + "</h3>\n";
        std::string kind = text(e, "kind"), unit = text(e, "unit");
        if (!kind.empty() || !unit.empty())
            out += "<p class=\"muted\">" + escape(kind) + (kind.empty() || unit.empty() ? "" : ", ") +
                   (unit.empty() ? "" : "in " + escape(unit)) + "</p>\n";
        out += report::svg_chart(j, e);
        out += "</section>\n";
    }
    if (!shown) out += "<p class=\"none\">no hypothesis</p>\n";
}

void phases(std::string& out, const json& j) {
    out += "<h2>Phases</h2>\n";
    const json& list = array(j, "phases");
    if (list.empty()) {
        out += "<p class=\"none\">no phases</p>\n";
        return;
    }
    out += "<table class=\"phases\">\n<tr><th>phase</th><th>kind</th><th>start</th><th>end</th><th>planned</th>"
           "<th>completed</th><th>fault</th><th>injection</th><th>counters</th></tr>\n";
    for (const json& p : list) {
        if (!p.is_object()) continue;
        auto completed = report::boolean(p, "completed");
        const json* fault = field(p, "fault");
        const json no_fault;
        const json& f = fault && fault->is_object() ? *fault : no_fault;
        std::string counters;
        if (const json* c = field(f, "counters"); c && c->is_object())
            for (const auto& [k, v] : c->items())
                counters += "<span class=\"ctr\">" + escape(k) + " <b>" + fmt(v) + "</b></span>";
        out += "<tr>" + cell(or_dash(text(p, "name"))) + cell(or_dash(text(p, "kind"))) +
               cell(seconds(p, "start_s"), true) + cell(seconds(p, "end_s"), true) + cell(seconds(p, "planned_s"), true) +
               cell(completed ? (*completed ? "yes" : "<b>no</b>") : "-") +
               cell(f.is_object() ? or_dash(text(f, "text")) : "<span class=\"muted\">none</span>") +
               cell(text(f, "injection").empty() ? "-" : "<code>" + escape(text(f, "injection")) + "</code>") +
               cell(counters.empty() ? "-" : counters) + "</tr>\n";
    }
    out += "</table>\n";
}

// "+48.2", "-3", "0".
std::string signed_fmt(std::optional<double> v) {
    if (!v) return "-";
    return (*v > 0 ? "+" : "") + fmt(*v, 4);
}

void comparison(std::string& out, const json& j) {
    out += "<h2>Statistical comparison</h2>\n";
    const json& list = array(j, "comparison");
    if (list.empty()) {
        out += "<p class=\"none\">no comparison</p>\n";
        return;
    }
    out += "<table class=\"comparison\">\n<tr><th>metric</th><th>n experiment / control</th><th>shift [CI]</th>"
           "<th>p</th><th>P(e&gt;c)</th><th>result</th></tr>\n";
    for (const json& c : list) {
        if (!c.is_object()) continue;
        const json* ne = field(c, "n_experiment");
        const json* nc = field(c, "n_control");
        std::string unit = text(c, "unit");
        std::string shift = signed_fmt(number(c, "shift"));
        const json& ci = array(c, "shift_ci");
        if (ci.size() == 2) {
            auto bound = [](const json& v) {
                return v.is_number() ? signed_fmt(v.get<double>()) : std::string("-");
            };
            shift += " [" + bound(ci[0]) + ", " + bound(ci[1]) + "]";
        }
        if (!unit.empty() && shift != "-") shift += " " + escape(unit);
        auto p = number(c, "p_value");
        auto sup = number(c, "superiority");
        out += "<tr>" + cell("<code>" + or_dash(text(c, "metric")) + "</code>") +
               cell((ne ? fmt(*ne) : "-") + " / " + (nc ? fmt(*nc) : "-"), true) + cell(shift, true) +
               cell(!p ? "-" : *p < 0.0001 ? "&lt;0.0001" : fmt(*p, 3), true) +
               cell(sup ? fmt(*sup, 2) : "-", true) + cell(or_dash(text(c, "text"))) + "</tr>\n";
    }
    out += "</table>\n";
}

void breaches(std::string& out, const json& j) {
    out += "<h2>Breaches</h2>\n";
    const json& phase_list = array(j, "phases");
    std::string items;
    for (const json& b : array(j, "breaches")) {
        if (!b.is_object()) continue;
        items += "<li><b>" + seconds(b, "t_s") + "</b>";
        if (auto p = report::integer(b, "phase"); p && *p >= 0 && static_cast<uint64_t>(*p) < phase_list.size()) {
            std::string name = text(phase_list[static_cast<size_t>(*p)], "name");
            if (!name.empty()) items += ", " + escape(name);
        }
        if (const json* id = field(b, "id"); id && id->is_number()) items += ", H" + fmt(*id);
        if (std::string t = text(b, "text"); !t.empty()) items += ": " + escape(t);
        items += "</li>\n";
    }
    out += items.empty() ? "<p class=\"none\">no breaches</p>\n" : "<ol class=\"breaches\">\n" + items + "</ol>\n";
}

std::string page(const json& j) {
    std::string title = text(j, "title");
    std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>tardy: " +
                      escape(title.empty() ? "experiment report" : title) + "</title>\n<style>" + kStyle +
                      "</style>\n</head>\n<body>\n";
    header(out, j);
    hypothesis(out, j);
    phases(out, j);
    comparison(out, j);
    breaches(out, j);
    out += "<footer>Made by tardy from the run's journal.json.</footer>\n</body>\n</html>\n";
    return out;
}

}  // namespace

std::string render_report_html(const nlohmann::json& journal) {
    try {
        return page(journal);
    } catch (...) {
        // Not expected (the readers above check every type); a page all the same.
        return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>tardy: report</title>\n"
               "</head>\n<body>\n<p>The journal could not be read.</p>\n</body>\n</html>\n";
    }
}

}  // namespace tardy
