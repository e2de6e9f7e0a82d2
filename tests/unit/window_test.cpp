// SPDX-License-Identifier: Apache-2.0
// user/model/window: parsing an experiment's time window and whether it is open at a moment.
#include "model/window.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

// As in window.cpp: match the build of Debian's libdate-tz (date.h alone, header-only, here).
#ifndef ONLY_C_LOCALE
#define ONLY_C_LOCALE 1
#endif
#include <date/date.h>

#include "test_util.hpp"

namespace tardy {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using test::FailsWithUserError;

// A fixed instant in UTC, so the tests do not depend on the clock or the machine's zone.
SysTime utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
    return date::sys_days{date::year{y} / date::month{mo} / date::day{d}} + hours{h} + minutes{mi} + seconds{s};
}

Window win(const std::string& days, const std::string& hours_, const std::string& tz,
           const std::vector<std::string>& except = {}) {
    auto r = parse_window(days, hours_, tz, except);
    if (!r) {
        ADD_FAILURE() << "parse_window(" << days << ", " << hours_ << ", " << tz << "): " << r.error().message;
        return Window{};
    }
    return *r;
}

// For failure messages: a moment in UTC and in the window's zone.
std::string show(const Window& w, SysTime t) {
    return format_in_zone(Window{0x7f, 0, 86400, "UTC", {}}, t) + " / " + format_in_zone(w, t);
}

// ---- parse_window ---------------------------------------------------------------------------

TEST(WindowParse, Days) {
    struct {
        const char* text;
        uint8_t bits;
    } cases[] = {
        {"", 0x7f},          {"daily", 0x7f},       {"Daily", 0x7f},        {"Mon-Fri", 0x1f},
        {"Sat,Sun", 0x60},   {"Mon-Wed,Fri", 0x17}, {"Fri-Mon", 0x71},      {"Sun-Mon", 0x41},
        {"Wed-Wed", 0x04},   {"Sun", 0x40},         {"monday-FRIDAY", 0x1f}, {"mOn, tue ,Sunday", 0x43},
        {" Mon - Fri ", 0x1f}, {"Mon-Sun", 0x7f},   {"Tue-Mon", 0x7f},      {"Mon,Mon", 0x01},
    };
    for (const auto& c : cases) {
        auto r = parse_window(c.text, "", "UTC", {});
        ASSERT_TRUE(r) << c.text << ": " << r.error().message;
        EXPECT_EQ(r->days, c.bits) << c.text;
    }
}

TEST(WindowParse, DaysErrorsNameTheValueAndTheFix) {
    EXPECT_TRUE(FailsWithUserError(parse_window("Mon-Fry", "", "UTC", {}),
                                   {"window.days:", "'Mon-Fry' is not a day range", "Mon-Fri", "Sat,Sun"}));
    EXPECT_TRUE(FailsWithUserError(parse_window("Mon,Fry", "", "UTC", {}), {"window.days:", "'Fry' is not a day"}));
    EXPECT_TRUE(FailsWithUserError(parse_window("Mon,,Fri", "", "UTC", {}), {"window.days:", "'Mon,,Fri'", "empty"}));
    for (const char* bad : {"Mon-", "-Fri", "Mon-Tue-Wed", "daily,Mon", "Mo", "Tues", "weekdays", "Mon;Fri", ","})
        EXPECT_TRUE(FailsWithUserError(parse_window(bad, "", "UTC", {}), {"window.days:", "e.g. Mon-Fri"})) << bad;
    // A control character the user typed does not break the one-line message.
    EXPECT_TRUE(FailsWithUserError(parse_window("Mon\nFri", "", "UTC", {}), {"window.days:"}));
}

TEST(WindowParse, Hours) {
    struct {
        const char* text;
        int32_t start, end;
    } cases[] = {
        {"", 0, 86400},                {"10:00-16:00", 36000, 57600},       {"9:30-17:00", 34200, 61200},
        {"22:00-24:00", 79200, 86400}, {"10:00:30-16:00:15", 36030, 57615}, {"10:00-16:00:01", 36000, 57601},
        {"00:00-24:00", 0, 86400},     {"22:00-24:00:00", 79200, 86400},    {"22:00-00:00", 79200, 0},
        {"22:00-02:00", 79200, 7200},  // crosses midnight
        {" 10:00 - 16:00 ", 36000, 57600}, {"23:59:59-00:00:01", 86399, 1},
    };
    for (const auto& c : cases) {
        auto r = parse_window("", c.text, "UTC", {});
        ASSERT_TRUE(r) << c.text << ": " << r.error().message;
        EXPECT_EQ(r->start_s, c.start) << c.text;
        EXPECT_EQ(r->end_s, c.end) << c.text;
    }
}

TEST(WindowParse, HoursErrors) {
    EXPECT_TRUE(FailsWithUserError(parse_window("", "10:00-10:00", "UTC", {}),
                                   {"window.hours:", "'10:00-10:00'", "same time", "00:00-24:00"}));
    EXPECT_TRUE(FailsWithUserError(parse_window("", "00:00-00:00", "UTC", {}), {"window.hours:", "same time"}));
    EXPECT_TRUE(FailsWithUserError(parse_window("", "24:00-02:00", "UTC", {}), {"window.hours:", "starts at 24:00"}));
    EXPECT_TRUE(FailsWithUserError(parse_window("", "10:00-25:00", "UTC", {}),
                                   {"window.hours:", "'25:00'", "not a time of day", "24:00 only as the end"}));
    for (const char* bad : {"10:60-11:00", "10:00-24:01", "10:00-24:00:01", "10:00:60-11:00", "100:00-11:00",
                            "10:0-11:00", "10:00:0-11:00", "1:2:3:4-11:00", "ab:cd-ef:gh", "10:00-", "-10:00"})
        EXPECT_TRUE(FailsWithUserError(parse_window("", bad, "UTC", {}), {"window.hours:", "not a time of day"}))
            << bad;
    for (const char* bad : {"10-16", "10:00", "10:00-16:00-18:00", "10:00 to 16:00"})
        EXPECT_TRUE(FailsWithUserError(parse_window("", bad, "UTC", {}), {"window.hours:", "e.g. 10:00-16:00"})) << bad;
}

TEST(WindowParse, Timezone) {
    EXPECT_TRUE(parse_window("", "", "", {}));  // the system's zone
    EXPECT_TRUE(parse_window("", "", "UTC", {}));
    auto tokyo = parse_window("", "", "Asia/Tokyo", {});
    ASSERT_TRUE(tokyo);
    EXPECT_EQ(tokyo->timezone, "Asia/Tokyo");
    EXPECT_TRUE(FailsWithUserError(parse_window("", "", "Asia/Tokio", {}),
                                   {"window.timezone:", "no time zone 'Asia/Tokio' in the tz database", "Asia/Tokyo"}));
    for (const char* bad : {"asia/tokyo", "../../etc/passwd", "/usr/share/zoneinfo/UTC", "UTC+9", " UTC"})
        EXPECT_TRUE(FailsWithUserError(parse_window("", "", bad, {}), {"window.timezone:"})) << bad;
}

TEST(WindowParse, ExceptDates) {
    auto ok = parse_window("", "", "UTC", {"2026-12-24", "2028-02-29", " 2026-12-31 "});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->except, (std::vector<std::string>{"2026-12-24", "2028-02-29", "2026-12-31"}));
    EXPECT_TRUE(FailsWithUserError(parse_window("", "", "UTC", {"2026-12-24", "2026-02-30"}),
                                   {"window.except:", "'2026-02-30'", "not a calendar date", "YYYY-MM-DD"}));
    for (const char* bad : {"2026-02-29", "2026-13-01", "2026-00-10", "2026-04-31"})
        EXPECT_TRUE(FailsWithUserError(parse_window("", "", "UTC", {bad}), {"window.except:", "not a calendar date"}))
            << bad;
    for (const char* bad : {"2026-2-3", "26-12-24", "2026/12/24", "24.12.2026", "", "2026-12-24x", "+026-12-24"})
        EXPECT_TRUE(FailsWithUserError(parse_window("", "", "UTC", {bad}), {"window.except:", "YYYY-MM-DD"})) << bad;
}

// ---- window_at: the example, Mon-Fri 10:00-16:00 Asia/Tokyo (UTC+9, no DST) ------------------

Window tokyo() { return win("Mon-Fri", "10:00-16:00", "Asia/Tokyo", {"2026-12-24", "2026-12-31"}); }

TEST(WindowAt, TokyoInsideHours) {
    auto st = window_at(tokyo(), utc(2026, 12, 1, 2));  // Tuesday 11:00 JST
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 1, 7)) << show(tokyo(), st.closes);  // 16:00 JST
    EXPECT_TRUE(window_at(tokyo(), utc(2026, 12, 1, 1)).open);               // 10:00 JST sharp
}

TEST(WindowAt, TokyoOutsideHours) {
    auto st = window_at(tokyo(), utc(2026, 12, 1, 0));  // Tuesday 09:00 JST
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 12, 1, 1));
    EXPECT_EQ(st.why, "09:00 JST is outside hours 10:00-16:00");
    st = window_at(tokyo(), utc(2026, 12, 1, 7));  // 16:00 JST: the end is not in the window
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 12, 2, 1));
    EXPECT_EQ(st.why, "16:00 JST is outside hours 10:00-16:00");
}

TEST(WindowAt, TokyoWrongDay) {
    auto st = window_at(tokyo(), utc(2026, 12, 5, 2));  // Saturday 11:00 JST
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.why, "Saturday 2026-12-05 11:00 JST is not in days Mon-Fri");
    EXPECT_EQ(st.opens, utc(2026, 12, 7, 1)) << show(tokyo(), st.opens);  // Monday 10:00 JST
    // Sunday 20:00 UTC is Monday 05:00 in Tokyo: the zone's day counts.
    st = window_at(tokyo(), utc(2026, 12, 6, 20));
    EXPECT_EQ(st.why, "05:00 JST is outside hours 10:00-16:00");
}

TEST(WindowAt, TokyoExceptedDates) {
    auto st = window_at(tokyo(), utc(2026, 12, 24, 2));  // Thursday 11:00 JST, excepted
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.why, "2026-12-24 is an excepted date");
    EXPECT_EQ(st.opens, utc(2026, 12, 25, 1));
    // From Wednesday evening the next opening skips the excepted Thursday.
    EXPECT_EQ(window_at(tokyo(), utc(2026, 12, 23, 8)).opens, utc(2026, 12, 25, 1));
    // Thursday 2026-12-31 is excepted; Friday 2027-01-01 is not.
    EXPECT_EQ(window_at(tokyo(), utc(2026, 12, 30, 8)).opens, utc(2027, 1, 1, 1));
    // 2026-12-24 08:00 JST is still 2026-12-23 in UTC: the window's zone decides.
    EXPECT_EQ(window_at(tokyo(), utc(2026, 12, 23, 23)).why, "2026-12-24 is an excepted date");
}

TEST(WindowAt, FormatInZoneAndDescribe) {
    EXPECT_EQ(format_in_zone(tokyo(), utc(2026, 12, 1, 1)), "2026-12-01 10:00:00 JST");
    EXPECT_EQ(format_in_zone(tokyo(), utc(2026, 12, 1, 1) + nanoseconds{999'999'999}), "2026-12-01 10:00:00 JST");
    EXPECT_EQ(format_in_zone(tokyo(), utc(2026, 12, 31, 15)), "2027-01-01 00:00:00 JST");
    EXPECT_EQ(format_in_zone(tokyo(), SysTime::max()), "never");
    EXPECT_EQ(describe(tokyo()), "Mon-Fri 10:00-16:00 Asia/Tokyo, except 2026-12-24, 2026-12-31");
    EXPECT_EQ(describe(win("", "", "UTC")), "daily 00:00-24:00 UTC");
    EXPECT_EQ(describe(win("sat, sun", "22:00-02:00", "Europe/Berlin")), "Sat,Sun 22:00-02:00 Europe/Berlin");
    EXPECT_EQ(describe(win("Fri-Mon,Wed", "10:00:30-16:00", "UTC")), "Wed,Fri-Mon 10:00:30-16:00:00 UTC");
    EXPECT_EQ(describe(win("Mon-Wed,Fri", "22:00-24:00", "UTC")), "Mon-Wed,Fri 22:00-24:00 UTC");
    EXPECT_EQ(describe(win("Sun", "22:00-00:00", "UTC")), "Sun 22:00-00:00 UTC");
    EXPECT_NE(describe(win("", "", "")).find("local time"), std::string::npos);
}

// ---- crossing midnight (UTC; 2026-12-04 is a Friday) -----------------------------------------

TEST(WindowAt, CrossingMidnightBelongsToTheDayItOpens) {
    Window fri = win("Fri", "22:00-02:00", "UTC");
    auto st = window_at(fri, utc(2026, 12, 4, 23));  // Friday 23:00
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 5, 2));
    st = window_at(fri, utc(2026, 12, 5, 1));  // Saturday 01:00: Friday's opening
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 5, 2));
    st = window_at(fri, utc(2026, 12, 5, 2));  // Saturday 02:00: closed until next Friday
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 12, 11, 22));
    EXPECT_EQ(st.why, "Saturday 2026-12-05 02:00 UTC is not in days Fri");
    st = window_at(fri, utc(2026, 12, 4, 21, 59, 59));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 12, 4, 22));
    EXPECT_EQ(st.why, "21:59 UTC is outside hours 22:00-02:00");
}

TEST(WindowAt, CrossingMidnightAfterAnUnlistedDay) {
    // Friday 01:00 is in Thursday's opening: closed unless Thursday is listed.
    auto st = window_at(win("Fri", "22:00-02:00", "UTC"), utc(2026, 12, 4, 1));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 12, 4, 22));
    EXPECT_EQ(st.why, "Friday 2026-12-04 01:00 UTC is in the hours 22:00-02:00 that open on Thursday, which is "
                      "not in days Fri");
    st = window_at(win("Thu,Fri", "22:00-02:00", "UTC"), utc(2026, 12, 4, 1));
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 4, 2));
}

TEST(WindowAt, CrossingIntoAnExceptedDateClosesAtItsMidnight) {
    Window w = win("Thu,Fri", "22:00-02:00", "UTC", {"2026-12-05"});
    auto st = window_at(w, utc(2026, 12, 4, 23));  // Friday 23:00
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 5, 0));
    st = window_at(w, utc(2026, 12, 5, 1));  // Saturday 01:00, excepted
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.why, "2026-12-05 is an excepted date");
    EXPECT_EQ(st.opens, utc(2026, 12, 10, 22));  // next Thursday
}

TEST(WindowAt, ExceptedDateIsWholeDaysOnly) {
    // The excepted Friday is closed; the part of its opening on Saturday is not on it.
    Window w = win("Fri", "22:00-02:00", "UTC", {"2026-12-04"});
    auto st = window_at(w, utc(2026, 12, 4, 23));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.why, "2026-12-04 is an excepted date");
    EXPECT_EQ(st.opens, utc(2026, 12, 5, 0));
    st = window_at(w, utc(2026, 12, 5, 1));
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 5, 2));
}

// ---- openings that touch, and windows that never open -----------------------------------------

TEST(WindowAt, TouchingOpeningsCloseTogether) {
    auto st = window_at(win("", "", "UTC", {"2026-12-24"}), utc(2026, 12, 20, 12));
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 24));
    st = window_at(win("Mon-Fri", "", "UTC"), utc(2026, 12, 7, 12));  // Monday
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 12));  // Saturday 00:00
    st = window_at(win("Fri-Mon", "00:00-24:00", "UTC"), utc(2026, 12, 5, 12));  // Saturday
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 12, 8));  // Tuesday 00:00
    st = window_at(win("", "", "UTC"), utc(2026, 12, 5, 12));
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, SysTime::max());  // never closes
}

TEST(WindowAt, NeverOpens) {
    std::vector<std::string> mondays;  // every Monday for more than the 400 days searched
    for (SysTime d = utc(2026, 12, 7); d < utc(2028, 3, 1); d += hours{24 * 7})
        mondays.push_back(format_in_zone(win("", "", "UTC"), d).substr(0, 10));
    auto st = window_at(win("Mon", "10:00-11:00", "UTC", mondays), utc(2026, 12, 5, 12));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, SysTime::max());
    EXPECT_EQ(st.why, "Saturday 2026-12-05 12:00 UTC is not in days Mon");

    Window none{0, 0, 86400, "UTC", {}};  // no days: parse_window cannot make it, a caller can
    st = window_at(none, utc(2026, 12, 5, 12));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, SysTime::max());
    EXPECT_EQ(st.why, "Saturday 2026-12-05 12:00 UTC is not in days (none)");
}

TEST(WindowAt, UnknownZoneIsClosedNotThrown) {
    Window bad{0x7f, 0, 86400, "Asia/Tokio", {}};
    auto st = window_at(bad, utc(2026, 12, 5, 12));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, SysTime::max());
    EXPECT_NE(st.why.find("'Asia/Tokio'"), std::string::npos) << st.why;
}

// ---- daylight saving time -----------------------------------------------------------------------

// Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
TEST(WindowAt, BerlinSpringForward) {
    Window w = win("", "01:00-04:00", "Europe/Berlin");
    auto st = window_at(w, utc(2026, 3, 29, 0, 30));  // 01:30 CET
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 3, 29, 2)) << show(w, st.closes);  // 04:00 CEST: two hours, not three
    st = window_at(w, utc(2026, 3, 29, 1, 30));  // 03:30 CEST
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 3, 29, 2));
    st = window_at(w, utc(2026, 3, 28, 23, 30));  // 00:30 CET
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 3, 29, 0));
    st = window_at(w, utc(2026, 3, 29, 2, 30));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 3, 29, 23)) << show(w, st.opens);  // 01:00 CEST on the 30th
    EXPECT_EQ(format_in_zone(w, utc(2026, 3, 29, 0, 59, 59)), "2026-03-29 01:59:59 CET");
    EXPECT_EQ(format_in_zone(w, utc(2026, 3, 29, 1)), "2026-03-29 03:00:00 CEST");

    // A start that does not exist opens at the change (choose::earliest).
    Window late = win("", "02:30-05:00", "Europe/Berlin");
    st = window_at(late, utc(2026, 3, 29, 0, 30));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 3, 29, 1));
    st = window_at(late, utc(2026, 3, 29, 1));
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 3, 29, 3));

    // Hours wholly in the skipped hour: no opening that day.
    st = window_at(win("", "02:00-03:00", "Europe/Berlin"), utc(2026, 3, 28, 23, 30));
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 3, 30, 0)) << show(w, st.opens);
}

// Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC; 02:00-03:00 repeats.
TEST(WindowAt, BerlinFallBack) {
    Window w = win("", "02:00-02:30", "Europe/Berlin");
    auto st = window_at(w, utc(2026, 10, 25, 0, 15));  // the first 02:15 (CEST)
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 10, 25, 0, 30));
    st = window_at(w, utc(2026, 10, 25, 1, 15));  // the second 02:15 (CET)
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 10, 26, 1)) << show(w, st.opens);
    EXPECT_NE(st.why.find("02:15 CET is outside hours 02:00-02:30"), std::string::npos) << st.why;
    // Saturday 22:00 to Sunday 04:00 is seven hours that night.
    st = window_at(win("Sat", "22:00-04:00", "Europe/Berlin"), utc(2026, 10, 24, 20));
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 10, 25, 3));
}

// America/New_York 2026: 02:00 EST -> 03:00 EDT on 03-08 (07:00 UTC); 02:00 EDT -> 01:00 EST on
// 11-01 (06:00 UTC).
TEST(WindowAt, NewYork) {
    auto st = window_at(win("", "01:00-03:00", "America/New_York"), utc(2026, 3, 8, 6, 30));  // 01:30 EST
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 3, 8, 7));  // 03:00 EDT
    Window w = win("", "01:30-01:45", "America/New_York");
    st = window_at(w, utc(2026, 11, 1, 5, 35));  // 01:35 EDT
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 11, 1, 5, 45));
    st = window_at(w, utc(2026, 11, 1, 6, 35));  // 01:35 EST, the repeat
    EXPECT_FALSE(st.open);
    EXPECT_EQ(st.opens, utc(2026, 11, 2, 6, 30));
    EXPECT_EQ(format_in_zone(w, utc(2026, 11, 1, 6, 35)), "2026-11-01 01:35:00 EST");
    st = window_at(win("Sat", "22:00-04:00", "America/New_York"), utc(2026, 11, 1, 8, 30));
    EXPECT_TRUE(st.open);
    EXPECT_EQ(st.closes, utc(2026, 11, 1, 9));  // 04:00 EST
}

// Whatever the zone and hours, `closes` is the first closed moment after an open one and
// `opens` the first open moment after a closed one, across clock changes.
TEST(WindowAt, OpensAndClosesAreConsistent) {
    const std::vector<Window> windows = {
        win("", "01:00-04:00", "Europe/Berlin"),          win("", "02:00-03:00", "Europe/Berlin"),
        win("", "02:30-02:15", "Europe/Berlin"),          win("Sat,Sun", "22:00-02:30", "Europe/Berlin"),
        win("", "01:30-01:45", "America/New_York"),       win("Fri-Mon", "23:00-01:30", "America/New_York"),
        win("", "", "Europe/Berlin", {"2026-03-29"}),     win("Mon-Fri", "", "America/New_York", {"2026-11-02"}),
        win("Sat,Sun", "23:30-00:30", "America/Santiago"), win("", "", "America/Santiago", {"2026-09-06"}),
        win("Sun", "00:00-01:30", "America/Santiago"),    tokyo(),
    };
    // Around the changes in Berlin, New York, Santiago (at midnight: 04-05, 09-06) and Christmas.
    const SysTime starts[] = {utc(2026, 3, 6),  utc(2026, 3, 26), utc(2026, 4, 3),   utc(2026, 9, 4),
                              utc(2026, 10, 23), utc(2026, 10, 30), utc(2026, 12, 22)};
    for (const Window& w : windows)
        for (SysTime begin : starts)
            for (SysTime t = begin; t < begin + hours{24 * 5}; t += minutes{13}) {
                auto st = window_at(w, t);
                if (st.open) {
                    ASSERT_GT(st.closes, t) << describe(w) << " at " << show(w, t);
                    if (st.closes == SysTime::max()) continue;
                    ASSERT_TRUE(window_at(w, st.closes - nanoseconds{1}).open) << describe(w) << " at " << show(w, t);
                    ASSERT_FALSE(window_at(w, st.closes).open) << describe(w) << " at " << show(w, t);
                } else {
                    ASSERT_FALSE(st.why.empty()) << describe(w) << " at " << show(w, t);
                    ASSERT_GT(st.opens, t) << describe(w) << " at " << show(w, t);
                    ASSERT_TRUE(window_at(w, st.opens).open) << describe(w) << " at " << show(w, st.opens);
                    ASSERT_FALSE(window_at(w, st.opens - nanoseconds{1}).open) << describe(w) << " at " << show(w, t);
                }
            }
}

}  // namespace
}  // namespace tardy
