// SPDX-License-Identifier: Apache-2.0
// The report's chart of one hypothesis entry: inline SVG, drawn from a journal of any shape.
#include "model/report_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>
#include <vector>

namespace tardy::report {

namespace {

// The canvas and the plot area inside it (pixels).
constexpr double kW = 720, kH = 224, kLeft = 64, kRight = 708, kTop = 30, kBottom = 188;
// Values beyond this are drawn at it: spans and scales stay finite.
constexpr double kHuge = 1e300;

double tame(double v) { return std::clamp(v, -kHuge, kHuge); }
std::optional<double> tame(std::optional<double> v) {
    return v ? std::optional<double>(tame(*v)) : std::nullopt;
}

// A pixel coordinate.
std::string px(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

// Maps [lo, hi] (hi > lo, both finite) onto [p0, p1], clamping what falls outside.
struct Axis {
    double lo, hi, p0, p1;
    double at(double v) const {
        double f = std::clamp((v - lo) / (hi - lo), 0.0, 1.0);
        return p0 + f * (p1 - p0);
    }
};

// A range holding [lo, hi] that is never empty: equal (or nearly equal) ends are moved
// apart by a tenth of their size (or 1 near zero); `both` widens downwards too.
std::pair<double, double> widen(double lo, double hi, bool both) {
    double size = std::max(std::abs(lo), std::abs(hi));
    if (hi - lo > size * 1e-9 && hi - lo > 1e-200) return {lo, hi};
    double d = size > 1e-200 ? size * 0.1 : 1;
    return {both ? lo - d : lo, hi + d};
}

// At most a dozen round values (1, 2 or 5 times a power of ten apart) in [lo, hi].
std::vector<double> ticks(double lo, double hi, int want) {
    double raw = (hi - lo) / want;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag * 10;
    for (double m : {1.0, 2.0, 5.0})
        if (m * mag >= raw) {
            step = m * mag;
            break;
        }
    std::vector<double> out;
    if (!std::isfinite(step) || step <= 0) return out;
    double k0 = std::ceil(lo / step);
    for (int i = 0; i < 12 && std::isfinite(k0); ++i) {
        double v = (k0 + i) * step;
        if (v > hi + step * 1e-9) break;
        out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
    }
    return out;
}

std::string tick_label(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// At most n characters (code points) of s, with "…" when cut.
std::string shorten(const std::string& s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
        if (++count > n) return s.substr(0, i) + "\xE2\x80\xA6";
    }
    return s;
}

struct Point {
    double t;
    std::optional<double> experiment, control, limit;
};

struct Span {
    std::string name;
    std::optional<double> start, end;  // end missing: up to the end of the plot
};

struct Breach {
    double t;
    std::string text;
};

// The samples of entry `id`, in time order.
std::vector<Point> points_of(const json& journal, int64_t id) {
    std::vector<Point> out;
    for (const json& s : array(journal, "samples")) {
        auto t = number(s, "t_s");
        if (!t) continue;
        for (const json& v : array(s, "values")) {
            if (integer(v, "id") != id) continue;
            out.push_back({tame(*t), tame(number(v, "experiment")), tame(number(v, "control")),
                           tame(number(v, "limit"))});
            break;
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const Point& a, const Point& b) { return a.t < b.t; });
    return out;
}

// The method phases; a bound the journal lacks is taken from the phase's samples.
std::vector<Span> method_spans(const json& journal) {
    std::vector<Span> out;
    const json& phases = array(journal, "phases");
    for (size_t i = 0; i < phases.size(); ++i) {
        const json& p = phases[i];
        if (text(p, "kind") != "method") continue;
        Span span{text(p, "name"), tame(number(p, "start_s")), tame(number(p, "end_s"))};
        if (!span.start || !span.end) {
            std::optional<double> first, last;
            for (const json& s : array(journal, "samples")) {
                auto t = number(s, "t_s");
                auto phase = integer(s, "phase");
                if (!t || !phase || *phase < 0 || static_cast<uint64_t>(*phase) != i) continue;
                first = std::min(first.value_or(tame(*t)), tame(*t));
                last = std::max(last.value_or(tame(*t)), tame(*t));
            }
            if (!span.start) span.start = first;
            if (!span.end) span.end = last;
        }
        if (span.start) out.push_back(std::move(span));
    }
    return out;
}

std::vector<Breach> breaches_of(const json& journal, int64_t id) {
    std::vector<Breach> out;
    for (const json& b : array(journal, "breaches")) {
        auto t = number(b, "t_s");
        if (t && integer(b, "id") == id) out.push_back({tame(*t), text(b, "text")});
    }
    return out;
}

// One series as polylines between its gaps; a value alone between gaps is a dot.
void series(std::string& out, const std::vector<Point>& pts, std::optional<double> Point::*member,
            const Axis& x, const Axis& y, const char* cls) {
    std::string run;
    size_t n = 0;
    double lone_x = 0, lone_y = 0;
    auto flush = [&] {
        if (n >= 2)
            out += "<polyline class=\"" + std::string(cls) + "\" points=\"" + run + "\"/>\n";
        else if (n == 1)
            out += "<circle class=\"" + std::string(cls) + " dot\" cx=\"" + px(lone_x) + "\" cy=\"" +
                   px(lone_y) + "\" r=\"2.5\"/>\n";
        run.clear();
        n = 0;
    };
    for (const Point& p : pts) {
        const auto& v = p.*member;
        if (!v) {
            flush();
            continue;
        }
        lone_x = x.at(p.t), lone_y = y.at(*v);
        if (n++) run += ' ';
        run += px(lone_x) + "," + px(lone_y);
    }
    flush();
}

// The limit as a step line: each sample's limit holds until the next sample; the last one
// of a run (or a limit alone) gets a short tail so that it shows.
void limit_steps(std::string& out, const std::vector<Point>& pts, const Axis& x, const Axis& y) {
    std::string d;
    bool open = false;
    double last_x = 0;
    auto close = [&] {
        if (open) d += last_x >= kRight - 4 ? " h-4" : " h4";
        open = false;
    };
    for (const Point& p : pts) {
        if (!p.limit) {
            close();
            continue;
        }
        double lx = x.at(p.t), ly = y.at(*p.limit);
        if (!open) d += (d.empty() ? "M" : " M") + px(lx) + "," + px(ly);
        else d += " H" + px(lx) + " V" + px(ly);
        open = true;
        last_x = lx;
    }
    close();
    if (!d.empty()) out += "<path class=\"limit\" d=\"" + d + "\"/>\n";
}

void legend(std::string& out) {
    double y = 14;
    auto label = [&](double x, const char* s) {
        out += "<text class=\"legend\" x=\"" + px(x) + "\" y=\"" + px(y + 4) + "\">" + s + "</text>\n";
    };
    auto line = [&](double x, const char* cls) {
        out += "<line class=\"" + std::string(cls) + "\" x1=\"" + px(x) + "\" y1=\"" + px(y) + "\" x2=\"" +
               px(x + 24) + "\" y2=\"" + px(y) + "\"/>\n";
    };
    line(kLeft, "experiment"), label(kLeft + 30, "experiment");
    line(kLeft + 120, "control"), label(kLeft + 150, "control");
    line(kLeft + 225, "limit"), label(kLeft + 255, "limit");
    out += "<rect class=\"step\" x=\"" + px(kLeft + 310) + "\" y=\"" + px(y - 6) + "\" width=\"24\" height=\"12\"/>\n";
    label(kLeft + 340, "fault step");
    out += "<path class=\"breach-mark\" d=\"M" + px(kLeft + 430) + "," + px(y - 5) + " h10 l-5,9 Z\"/>\n";
    label(kLeft + 446, "breach");
}

}  // namespace

std::string svg_chart(const json& journal, const json& entry) {
    auto id = integer(entry, "id");
    std::vector<Point> pts = id ? points_of(journal, *id) : std::vector<Point>{};
    if (pts.empty()) return "<p class=\"none\">no samples</p>\n";
    std::vector<Span> spans = method_spans(journal);
    std::vector<Breach> breaches = breaches_of(journal, *id);

    // Ranges: time from 0 (or earlier) to the last sample, step or breach; values over all three lines.
    double t_lo = 0, t_hi = 0;
    std::optional<double> v_lo, v_hi;
    auto time = [&](double t) { t_lo = std::min(t_lo, t), t_hi = std::max(t_hi, t); };
    auto value = [&](const std::optional<double>& v) {
        if (!v) return;
        v_lo = std::min(v_lo.value_or(*v), *v);
        v_hi = std::max(v_hi.value_or(*v), *v);
    };
    for (const Point& p : pts) time(p.t), value(p.experiment), value(p.control), value(p.limit);
    for (const Span& s : spans) {
        time(*s.start);
        if (s.end) time(*s.end);
    }
    for (const Breach& b : breaches) time(b.t);
    auto [x_lo, x_hi] = widen(t_lo, t_hi, false);
    double y_lo = 0, y_hi = 1;
    if (v_lo) {
        std::tie(y_lo, y_hi) = widen(*v_lo, *v_hi, true);
        double pad = (y_hi - y_lo) * 0.05;
        bool floor_at_zero = y_lo >= 0;
        y_lo -= pad, y_hi += spans.empty() ? pad : 3 * pad;  // room for the step names
        if (floor_at_zero) y_lo = std::max(y_lo, 0.0);
    }
    Axis x{x_lo, x_hi, kLeft, kRight}, y{y_lo, y_hi, kBottom, kTop};

    std::string unit = text(entry, "unit");
    std::string out = "<svg class=\"chart\" viewBox=\"0 0 " + px(kW) + " " + px(kH) + "\" width=\"" + px(kW) +
                      "\" height=\"" + px(kH) + "\" role=\"img\" aria-label=\"" +
                      escape("values over time of " + text(entry, "text")) + "\">\n";
    out += "<title>" + escape(text(entry, "text")) + "</title>\n";
    legend(out);

    // The fault steps under everything else.
    for (const Span& s : spans) {
        double a = x.at(*s.start), b = s.end ? x.at(*s.end) : kRight;
        if (b < a) std::swap(a, b);
        out += "<rect class=\"step\" x=\"" + px(a) + "\" y=\"" + px(kTop) + "\" width=\"" +
               px(std::max(b - a, 1.0)) + "\" height=\"" + px(kBottom - kTop) + "\"><title>" +
               escape(s.name) + "</title></rect>\n";
        out += "<text class=\"steplabel\" x=\"" + px(a + 3) + "\" y=\"" + px(kTop + 11) + "\">" +
               escape(shorten(s.name, std::max<size_t>(3, static_cast<size_t>((b - a) / 6)))) + "</text>\n";
    }

    // Axes: grid lines and labels.
    for (double v : ticks(y_lo, y_hi, 4)) {
        double py = y.at(v);
        out += "<line class=\"" + std::string(v == 0 && y_lo < 0 ? "zero" : "grid") + "\" x1=\"" + px(kLeft) +
               "\" y1=\"" + px(py) + "\" x2=\"" + px(kRight) + "\" y2=\"" + px(py) + "\"/>\n";
        out += "<text class=\"tick\" x=\"" + px(kLeft - 5) + "\" y=\"" + px(py + 3.5) +
               "\" text-anchor=\"end\">" + tick_label(v) + "</text>\n";
    }
    for (double v : ticks(x_lo, x_hi, 8)) {
        double pxx = x.at(v);
        out += "<line class=\"axis\" x1=\"" + px(pxx) + "\" y1=\"" + px(kBottom) + "\" x2=\"" + px(pxx) +
               "\" y2=\"" + px(kBottom + 4) + "\"/>\n";
        out += "<text class=\"tick\" x=\"" + px(pxx) + "\" y=\"" + px(kBottom + 15) +
               "\" text-anchor=\"middle\">" + tick_label(v) + "</text>\n";
    }
    out += "<path class=\"axis\" d=\"M" + px(kLeft) + "," + px(kTop) + " V" + px(kBottom) + " H" + px(kRight) + "\"/>\n";
    out += "<text class=\"tick\" x=\"" + px(kRight) + "\" y=\"" + px(kH - 4) + "\" text-anchor=\"end\">time (s)</text>\n";
    out += "<text class=\"tick\" transform=\"rotate(-90)\" x=\"" + px(-(kTop + kBottom) / 2) + "\" y=\"" + px(14) +
           "\" text-anchor=\"middle\">" + escape(unit.empty() ? std::string("value") : unit) + "</text>\n";

    // The lines, then the breaches on top.
    limit_steps(out, pts, x, y);
    series(out, pts, &Point::control, x, y, "control");
    series(out, pts, &Point::experiment, x, y, "experiment");
    if (!v_lo)
        out += "<text class=\"tick\" x=\"" + px((kLeft + kRight) / 2) + "\" y=\"" + px((kTop + kBottom) / 2) +
               "\" text-anchor=\"middle\">no values</text>\n";
    for (const Breach& b : breaches) {
        double bx = x.at(b.t);
        out += "<g class=\"breach\"><title>" + escape("breach at " + fmt(b.t) + " s: " + b.text) + "</title>";
        out += "<line class=\"breach-line\" x1=\"" + px(bx) + "\" y1=\"" + px(kTop) + "\" x2=\"" + px(bx) +
               "\" y2=\"" + px(kBottom) + "\"/>";
        out += "<path class=\"breach-mark\" d=\"M" + px(bx - 5) + "," + px(kTop - 1) + " h10 l-5,9 Z\"/></g>\n";
    }
    out += "</svg>\n";
    return out;
}

}  // namespace tardy::report
