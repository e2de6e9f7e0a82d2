// SPDX-License-Identifier: Apache-2.0
// An experiment's time window: parsing what users write, the state at a moment, and printing.
#include "model/window.hpp"

// Debian builds libdate-tz on the system's tz database (its CMake target exports these
// definitions); the headers' defaults describe another build with another time_zone layout,
// so they are set here, before the first date/ include, to match the library.
#ifndef USE_OS_TZDB
#define USE_OS_TZDB 1
#endif
#ifndef ONLY_C_LOCALE
#define ONLY_C_LOCALE 1
#endif
#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <exception>
#include <string_view>
#include <utility>

static_assert(USE_OS_TZDB == 1, "libdate-tz is built with USE_OS_TZDB=1");

namespace tardy {
namespace {

using std::chrono::seconds;
using LocalTime = date::local_time<SysTime::duration>;

constexpr int32_t kDay = 86400;
constexpr int kHorizonDays = 400;  // how far window_at looks for the next opening

struct DayName {
    std::string_view abbr, full;
};
constexpr std::array<DayName, 7> kDayNames{{{"Mon", "Monday"}, {"Tue", "Tuesday"}, {"Wed", "Wednesday"},
                                            {"Thu", "Thursday"}, {"Fri", "Friday"}, {"Sat", "Saturday"},
                                            {"Sun", "Sunday"}}};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto low = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
               return low(x) == low(y);
           });
}

// What the user typed, quoted for a message; a long value is cut (Error::user masks control
// characters).
std::string quoted(std::string_view s) {
    if (s.size() > 80) return "'" + std::string(s.substr(0, 77)) + "...'";
    return "'" + std::string(s) + "'";
}

// Mon..Sun or Monday..Sunday, any case -> bit number (0 Monday ... 6 Sunday); -1 if neither.
int day_index(std::string_view name) {
    for (int i = 0; i < 7; ++i)
        if (iequals(name, kDayNames[i].abbr) || iequals(name, kDayNames[i].full)) return i;
    return -1;
}

int day_bit(date::local_days d) { return static_cast<int>(date::weekday{d}.iso_encoding()) - 1; }

bool listed(uint8_t days, date::local_days d) { return (days >> day_bit(d)) & 1; }

Result<uint8_t> parse_days(const std::string& text) {
    std::string_view t = trim(text);
    if (t.empty() || iequals(t, "daily")) return uint8_t{0x7f};
    const std::string fix = "; use e.g. Mon-Fri or Sat,Sun (days Mon..Sun or Monday..Sunday, or daily)";
    unsigned bits = 0;
    for (size_t pos = 0;;) {
        size_t comma = t.find(',', pos);
        std::string_view item = trim(t.substr(pos, comma == std::string_view::npos ? comma : comma - pos));
        if (item.empty()) return Error::user("window.days: " + quoted(text) + " has an empty item" + fix);
        size_t dash = item.find('-');
        if (dash == std::string_view::npos) {
            int d = day_index(item);
            if (d < 0) return Error::user("window.days: " + quoted(item) + " is not a day" + fix);
            bits |= 1u << d;
        } else {
            int a = day_index(trim(item.substr(0, dash))), b = day_index(trim(item.substr(dash + 1)));
            if (a < 0 || b < 0) return Error::user("window.days: " + quoted(item) + " is not a day range" + fix);
            for (int d = a;; d = (d + 1) % 7) {  // "Fri-Mon" wraps over the weekend
                bits |= 1u << d;
                if (d == b) break;
            }
        }
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    return static_cast<uint8_t>(bits);
}

// "H:MM", "HH:MM" or "HH:MM:SS" -> seconds after midnight, up to 24:00:00; -1 if not a time.
int32_t parse_time_of_day(std::string_view s) {
    s = trim(s);
    int v[3] = {0, 0, 0}, n = 0;
    for (size_t pos = 0;; ++n) {
        if (n == 3) return -1;
        size_t colon = s.find(':', pos);
        std::string_view part = s.substr(pos, colon == std::string_view::npos ? colon : colon - pos);
        if (part.empty() || part.size() > 2 || (n > 0 && part.size() != 2)) return -1;
        for (char c : part) {
            if (c < '0' || c > '9') return -1;
            v[n] = v[n] * 10 + (c - '0');
        }
        if (colon == std::string_view::npos) break;
        pos = colon + 1;
    }
    ++n;  // n was the index of the last part: now the count
    if (n < 2 || v[1] > 59 || v[2] > 59 || v[0] > 24 || (v[0] == 24 && (v[1] || v[2]))) return -1;
    return v[0] * 3600 + v[1] * 60 + v[2];
}

Result<std::pair<int32_t, int32_t>> parse_hours(const std::string& text) {
    std::string_view t = trim(text);
    if (t.empty()) return std::pair<int32_t, int32_t>{0, kDay};
    size_t dash = t.find('-');
    if (dash == std::string_view::npos || t.find('-', dash + 1) != std::string_view::npos)
        return Error::user("window.hours: " + quoted(text) +
                           " is not a range of times; use HH:MM-HH:MM or HH:MM:SS-HH:MM:SS, e.g. 10:00-16:00 or "
                           "22:00-02:00");
    std::string_view parts[2] = {trim(t.substr(0, dash)), trim(t.substr(dash + 1))};
    int32_t s = parse_time_of_day(parts[0]), e = parse_time_of_day(parts[1]);
    for (int i = 0; i < 2; ++i)
        if ((i == 0 ? s : e) < 0)
            return Error::user("window.hours: " + quoted(parts[i]) + " in " + quoted(text) +
                               " is not a time of day; use 00:00 to 23:59:59 (24:00 only as the end), e.g. "
                               "10:00-16:00");
    if (s == kDay)
        return Error::user("window.hours: " + quoted(text) + " starts at 24:00; start at 00:00 of that day instead");
    if (s == e)
        return Error::user("window.hours: " + quoted(text) +
                           " starts and ends at the same time; for the whole day leave hours empty or use 00:00-24:00");
    return std::pair<int32_t, int32_t>{s, e};
}

// "YYYY-MM-DD" -> a calendar date; 0 ok, 1 not in that form, 2 no such day.
int parse_date(std::string_view s, date::year_month_day& out) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return 1;
    int f[3] = {0, 0, 0};
    for (size_t i = 0; i < s.size(); ++i) {
        if (i == 4 || i == 7) continue;
        if (s[i] < '0' || s[i] > '9') return 1;
        int& x = f[i < 4 ? 0 : i < 7 ? 1 : 2];
        x = x * 10 + (s[i] - '0');
    }
    out = date::year{f[0]} / date::month{static_cast<unsigned>(f[1])} / date::day{static_cast<unsigned>(f[2])};
    return out.ok() ? 0 : 2;
}

// The window's zone ("" is the system's), or nullptr and why. Lookups throw; nothing escapes.
const date::time_zone* find_zone(const std::string& name, std::string* why) {
    try {
        return name.empty() ? date::current_zone() : date::locate_zone(name);
    } catch (...) {
        if (why)
            *why = name.empty() ? "window.timezone: the system's local time zone (/etc/localtime) is not in the tz "
                                  "database; set timezone, e.g. UTC or Europe/Berlin"
                                : "window.timezone: no time zone " + quoted(name) +
                                      " in the tz database; use a name from /usr/share/zoneinfo, e.g. Asia/Tokyo";
        return nullptr;
    }
}

std::string date_text(date::local_days d) {
    date::year_month_day ymd{d};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()));
    return buf;
}

std::string time_text(int32_t s, bool with_seconds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    return std::string(buf, with_seconds ? 8 : 5);
}

bool hours_have_seconds(const Window& w) { return w.start_s % 60 != 0 || w.end_s % 60 != 0; }

std::string hours_text(const Window& w) {
    bool sec = hours_have_seconds(w);
    return time_text(w.start_s, sec) + "-" + time_text(w.end_s, sec);
}

// The days as a person would write them: "Mon-Fri", "Sat,Sun", "Wed,Fri-Mon", "daily".
std::string days_text(uint8_t days) {
    auto on = [&](int d) { return ((days >> ((d + 7) % 7)) & 1) != 0; };
    if ((days & 0x7f) == 0x7f) return "daily";
    if ((days & 0x7f) == 0) return "(none)";
    int first = 0;  // a day that starts a run, so that a run over the weekend stays whole
    while (!(on(first) && !on(first - 1))) ++first;
    std::string out;
    for (int k = 0, len = 0; k < 7; k += std::max(len, 1)) {
        const int d = (first + k) % 7;
        for (len = 0; k + len < 7 && on(d + len);) ++len;
        if (len == 0) continue;
        if (!out.empty()) out += ',';
        out += kDayNames[d].abbr;
        if (len == 2) out += "," + std::string(kDayNames[(d + 1) % 7].abbr);
        if (len > 2) out += "-" + std::string(kDayNames[(d + len - 1) % 7].abbr);
    }
    return out;
}

// Moments far enough from the ends of SysTime (nanoseconds: 1677 to 2262) that a local time
// 400 days on does not overflow.
bool in_range(SysTime t) {
    auto d = date::floor<date::days>(t);
    return d >= date::sys_days{date::year{1900} / 1 / 1} && d < date::sys_days{date::year{2200} / 1 / 1};
}

struct Span {
    SysTime begin, end;
};

// The window resolved in its zone: where its openings fall in real time.
struct Resolved {
    const Window& w;
    const date::time_zone* tz;
    std::vector<date::local_days> except;  // sorted; strings that are not dates are ignored

    Resolved(const Window& win, const date::time_zone* zone) : w(win), tz(zone) {
        for (const auto& s : w.except) {
            date::year_month_day ymd;
            if (parse_date(s, ymd) == 0) except.push_back(date::local_days{ymd});
        }
        std::sort(except.begin(), except.end());
    }

    bool excepted(date::local_days d) const { return std::binary_search(except.begin(), except.end(), d); }
    bool crosses() const { return w.end_s <= w.start_s; }

    // Local day d at s seconds, in real time; a time skipped or repeated by a clock change
    // is resolved as choose::earliest does (a skipped one: the moment of the change).
    SysTime at(date::local_days d, int32_t s) const {
        return tz->to_sys(LocalTime{d} + seconds{s}, date::choose::earliest);
    }

    // The open parts of the opening that starts on day d, in order: the opening cut at the
    // midnights of excepted dates. Empty parts (a clock change) are left out.
    int parts(date::local_days d, Span out[2]) const {
        int n = 0;
        if (!listed(w.days, d)) return 0;
        auto add = [&](SysTime b, SysTime e) {
            if (b < e) out[n++] = {b, e};
        };
        const date::local_days next = d + date::days{1};
        if (!crosses()) {
            if (!excepted(d)) add(at(d, w.start_s), at(d, w.end_s));
        } else {
            if (!excepted(d)) add(at(d, w.start_s), at(next, 0));
            if (!excepted(next)) add(at(next, 0), at(next, w.end_s));
        }
        return n;
    }

    // Why the window is closed at `now` (local time `local`): one line for people.
    std::string why_closed(SysTime now, LocalTime local) const {
        const date::local_days today = date::floor<date::days>(local);
        if (excepted(today)) return date_text(today) + " is an excepted date";
        const auto tod = static_cast<int32_t>(date::floor<seconds>(local - today).count());
        const std::string abbrev = tz->get_info(now).abbrev;
        const std::string clock = time_text(tod, hours_have_seconds(w)) + " " + abbrev;
        const std::string when = std::string(kDayNames[day_bit(today)].full) + " " + date_text(today) + " " + clock;
        // Which day's opening the time of day falls in: today's, yesterday's (after midnight), or none.
        int owner = 1;
        if (!crosses() && tod >= w.start_s && tod < w.end_s) owner = 0;
        if (crosses() && tod >= w.start_s) owner = 0;
        if (crosses() && tod < w.end_s) owner = -1;
        if (owner != -1 && !listed(w.days, today)) return when + " is not in days " + days_text(w.days);
        const date::local_days yesterday = today - date::days{1};
        if (owner == -1 && !listed(w.days, yesterday))
            return when + " is in the hours " + hours_text(w) + " that open on " +
                   std::string(kDayNames[day_bit(yesterday)].full) + ", which is not in days " + days_text(w.days);
        if (owner == 1) return clock + " is outside hours " + hours_text(w);
        return clock + " is outside hours " + hours_text(w) +
               " as a clock change moves them (skipped or repeated local times count once, the earliest)";
    }
};

}  // namespace

Result<Window> parse_window(const std::string& days, const std::string& hours, const std::string& timezone,
                            const std::vector<std::string>& except) {
    try {
        Window w;
        auto d = parse_days(days);
        if (!d) return d.error();
        w.days = *d;
        auto h = parse_hours(hours);
        if (!h) return h.error();
        w.start_s = h->first;
        w.end_s = h->second;
        std::string why;
        if (!find_zone(timezone, &why)) return Error::user(why);
        w.timezone = timezone;
        for (const auto& raw : except) {
            std::string_view s = trim(raw);
            date::year_month_day ymd;
            int r = parse_date(s, ymd);
            if (r == 1)
                return Error::user("window.except: " + quoted(raw) + " is not a date; use YYYY-MM-DD, e.g. 2026-12-24");
            if (r == 2)
                return Error::user("window.except: " + quoted(raw) +
                                   " is not a calendar date (no such day); use a real YYYY-MM-DD, e.g. 2026-12-24");
            w.except.emplace_back(s);
        }
        return w;
    } catch (const std::exception& e) {
        return Error::other(std::string("window: cannot parse the time window: ") + e.what());
    }
}

WindowState window_at(const Window& w, SysTime now) {
    WindowState st;
    st.opens = SysTime::max();
    try {
        const date::time_zone* tz = find_zone(w.timezone, &st.why);
        if (!tz) return st;
        if (w.start_s < 0 || w.start_s >= kDay || w.end_s < 0 || w.end_s > kDay) {
            st.why = "window.hours: " + std::to_string(w.start_s) + "s-" + std::to_string(w.end_s) +
                     "s after midnight is not a range of times of day; use e.g. 10:00-16:00";
            return st;
        }
        if (!in_range(now)) {
            st.why = "window: the moment is out of the years 1900 to 2199";
            return st;
        }
        const Resolved r(w, tz);
        const LocalTime local = tz->to_local(now);
        const date::local_days today = date::floor<date::days>(local);
        // An opening that contains `now` started today or yesterday (it lasts at most a day).
        // Openings come in order and do not overlap; an open window closes at the end of the
        // run of openings that touch end to end (every day listed, hours 00:00-24:00).
        const date::local_days last = today + date::days{kHorizonDays};
        bool reached_last = false;
        for (date::local_days d = today - date::days{1}; d <= last; d += date::days{1}) {
            Span parts[2];
            int n = r.parts(d, parts);
            for (int i = 0; i < n; ++i) {
                const Span& p = parts[i];
                if (st.open && p.begin != st.closes) return st;
                if (st.open || (p.begin <= now && now < p.end)) {
                    st.open = true;
                    st.closes = p.end;
                    reached_last = d == last;
                } else if (p.begin > now) {
                    st.opens = p.begin;
                    st.why = r.why_closed(now, local);
                    return st;
                }
            }
        }
        if (st.open && reached_last) st.closes = SysTime::max();  // open through the whole search
        if (!st.open) st.why = r.why_closed(now, local);
        return st;
    } catch (const std::exception& e) {
        return WindowState{false, {}, SysTime::max(), std::string("window: cannot compute the window: ") + e.what()};
    }
}

std::string format_in_zone(const Window& w, SysTime t) {
    if (t == SysTime::max()) return "never";
    if (!in_range(t)) return "(a moment out of the years 1900 to 2199)";
    try {
        // A zone that is not in the database (parse_window refuses it) shows UTC.
        const date::time_zone* tz = find_zone(w.timezone, nullptr);
        const auto s = date::floor<seconds>(t);
        const date::sys_info info = tz ? tz->get_info(s) : date::sys_info{};
        const date::local_seconds local{s.time_since_epoch() + info.offset};
        const date::local_days day = date::floor<date::days>(local);
        return date_text(day) + " " + time_text(static_cast<int32_t>((local - day).count()), true) + " " +
               (tz ? info.abbrev : "UTC");
    } catch (const std::exception&) {
        return "(a moment that cannot be shown)";
    }
}

std::string describe(const Window& w) {
    std::string zone = w.timezone;
    if (zone.empty()) {
        const date::time_zone* tz = find_zone("", nullptr);
        zone = tz ? "local time (" + std::string(tz->name()) + ")" : "local time";
    }
    std::string out = days_text(w.days) + " " + hours_text(w) + " " + zone;
    for (size_t i = 0; i < w.except.size(); ++i) out += (i == 0 ? ", except " : ", ") + w.except[i];
    return out;
}

}  // namespace tardy
