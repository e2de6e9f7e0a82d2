// SPDX-License-Identifier: Apache-2.0
// An experiment's time window (docs/experiments.md): the days of the week and the hours in
// which a run may inject, in a time zone of the tz database, with excepted dates. A window
// may cross midnight ("22:00-02:00": it opens on a listed day at 22:00 and closes the next
// day at 02:00). Time zones come from the system's tz database through Howard Hinnant's
// date/tz library (Debian's libhowardhinnant-date-dev), never from hand-written offsets.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "model/error.hpp"

namespace tardy {

using SysTime = std::chrono::system_clock::time_point;

struct Window {
    uint8_t days = 0x7f;        // bit 0 Monday ... bit 6 Sunday: the days on which it opens
    int32_t start_s = 0;        // seconds after local midnight when it opens
    int32_t end_s = 86400;      // ... when it closes; <= start_s: the next day (crosses midnight)
    std::string timezone;       // tz database name; "" is the system's local zone
    std::vector<std::string> except;  // "YYYY-MM-DD", whole days in the window's zone
};

// The window's fields as a user wrote them (YAML strings). Empty days: every day; empty hours:
// the whole day; empty timezone: the system's local zone. Days: "Mon-Fri", "Sat,Sun",
// "Mon-Wed,Fri", "Fri-Mon" (wraps), "daily"; names Mon..Sun, case-insensitive, full names
// too. Hours: "HH:MM-HH:MM" or with seconds "HH:MM:SS-HH:MM:SS"; "24:00" as an end; start ==
// end is refused. Except: valid calendar dates. Errors are user errors, one line, naming the
// field and the fix ("window.timezone: no time zone 'Asia/Tokio' in the tz database ...").
Result<Window> parse_window(const std::string& days, const std::string& hours, const std::string& timezone,
                            const std::vector<std::string>& except);

struct WindowState {
    bool open = false;
    SysTime closes;     // when open: the moment it closes (the end of this opening, or the
                        // midnight that starts an excepted date, whichever comes first)
    SysTime opens;      // when closed: the next moment it opens (searched up to 400 days
                        // ahead; SysTime::max() if never, e.g. every day excepted)
    std::string why;    // when closed: one line, e.g. "Saturday 2026-12-05 11:00 JST is not
                        // in days Mon-Fri" or "2026-12-24 is an excepted date" or "11:00 JST
                        // is outside hours 10:00-16:00"
};

// The window at `now`. An opening that starts on day D belongs to D: with "Fri 22:00-02:00",
// Saturday 01:00 is open. A moment on an excepted date is closed, whatever opening it is in.
// Local times that do not exist or repeat (DST) are resolved as the tz library's
// choose::earliest does.
// An excepted date is the span of its local day only: with "Fri 22:00-02:00" and Friday
// excepted, Saturday 00:00-02:00 is still open. Openings that touch end to end (whole days on
// consecutive days) close together; open through the whole 400-day search: closes is
// SysTime::max(). A window parse_window would refuse (an unknown zone, hours out of range) is
// closed, never opens, and `why` says what is wrong. The field not described above is unset.
WindowState window_at(const Window& w, SysTime now);

// `t` in the window's zone, for people: "2026-12-01 10:00:00 JST" (whole seconds, cut);
// SysTime::max() is "never".
std::string format_in_zone(const Window& w, SysTime t);

// The window for people: "Mon-Fri 10:00-16:00 Asia/Tokyo, except 2026-12-24, 2026-12-31".
std::string describe(const Window& w);

}  // namespace tardy
