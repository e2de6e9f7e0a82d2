// SPDX-License-Identifier: Apache-2.0
// How much work the kernel's verifier does to load the hot objects, from its own statistics
// (BPF_LOG_STATS: "processed N insns"). Not a timing test: the count is the same on every
// run of one kernel. The limits are about twice today's figures on this host, so a change
// that multiplies the verifier's paths (an inlined global function did 15x, the peer scan's
// callback walked for every caller path did 10x on Debian's 6.1) fails here, on the host,
// before it turns into seconds of agent start-up in a TCG guest (docs/design.md).
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../common/privileges.hpp"
#include "sock.skel.h"
#include "stall.skel.h"
#include "tc.skel.h"

namespace {

// Opens (nothing pinned), asks every program for BPF_LOG_STATS, loads, and returns each program's count.
template <typename Skel>
std::map<std::string, long> processed(Skel* (*open)(const bpf_object_open_opts*), int (*load)(Skel*),
                                      void (*destroy)(Skel*), bpf_object* Skel::*obj) {
    std::map<std::string, long> out;
    Skel* s = open(nullptr);
    if (!s) return out;
    std::vector<std::vector<char>> logs;
    bpf_program* p = nullptr;
    bpf_map* m = nullptr;
    bpf_object__for_each_map(m, s->*obj) bpf_map__set_pin_path(m, nullptr);  // never pin here
    logs.reserve(64);
    bpf_object__for_each_program(p, s->*obj) {
        logs.emplace_back(1 << 16, '\0');
        bpf_program__set_log_level(p, 4);
        bpf_program__set_log_buf(p, logs.back().data(), logs.back().size());
    }
    if (load(s) != 0) {
        destroy(s);
        return out;
    }
    size_t i = 0;
    bpf_object__for_each_program(p, s->*obj) {
        if (!bpf_program__autoload(p)) continue;
        const char* at = std::strstr(logs[i++].data(), "processed ");
        if (at) out[bpf_program__name(p)] = std::strtol(at + 10, nullptr, 10);
    }
    destroy(s);
    return out;
}

void expect_within(const std::map<std::string, long>& got, long limit) {
    ASSERT_FALSE(got.empty()) << "the object did not load, or the verifier gave no statistics";
    for (const auto& [name, insns] : got) EXPECT_LE(insns, limit) << name << ": verifier checked " << insns;
}

}  // namespace

TEST(VerifierBudget, TcProgramsStayCheapToVerify) {
    TARDY_REQUIRE_ROOT();
    // 13,000-15,000 today (6.18 and 6.1); 44,000 with the filter inlined, 640,000 with the
    // shapes inlined.
    expect_within(processed(tardy_tc__open_opts, tardy_tc__load, tardy_tc__destroy, &tardy_tc::obj), 30000);
}

TEST(VerifierBudget, SocketProgramsStayCheapToVerify) {
    TARDY_REQUIRE_ROOT();
    expect_within(processed(tardy_sock__open_opts, tardy_sock__load, tardy_sock__destroy, &tardy_sock::obj), 16000);
}

TEST(VerifierBudget, StallProgramStaysCheapToVerify) {
    TARDY_REQUIRE_ROOT();
    expect_within(processed(tardy_stall__open_opts, tardy_stall__load, tardy_stall__destroy, &tardy_stall::obj),
                  130000);
}
