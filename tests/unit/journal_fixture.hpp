// SPDX-License-Identifier: Apache-2.0
// The journal tests' shared fixture: a journal in a private temporary directory, and entries.
#pragma once

#include "sys/journal.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "sys/qdisc.hpp"
#include "test_util.hpp"

namespace tardy {

using test::TempDir;

inline JournalEntry clsact(int ifindex, std::string ifname = "eth0") {
    return {0, "clsact", 4026531840ULL, ifindex, std::move(ifname), "ffff:1:1"};
}

inline std::string qdisc_line() {
    QdiscSnapshot s;
    s.ifindex = 5;
    s.ifname = "eth0";
    s.kind = "htb";
    s.handle = 0x00010000;
    s.options = {0x01, 0x02, 0xab};
    s.not_restored = "2 classes, 1 filter";
    return encode(s);
}

inline bool exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }

class JournalTest : public ::testing::Test {
protected:
    TempDir tmp;
    std::string path = tmp / "journal";
    Journal j{path};
};

}  // namespace tardy
