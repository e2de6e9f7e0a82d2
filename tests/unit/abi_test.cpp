// SPDX-License-Identifier: Apache-2.0
// include/tardy/abi.h: the layout and constants the BPF programs and user space share, and
// that the header stands alone for every compiler that includes it.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <sys/utsname.h>
#include "model/tardy_abi.hpp"
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "file.skel.h"
#include "metrics.skel.h"
#include "sock.skel.h"
#include "stall.skel.h"
#include "tc.skel.h"

#include "sys/process.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

namespace fs = std::filesystem;

// The checkout: the first ancestor of this binary's directory holding include/tardy/abi.h.
std::string repo_root() {
    std::error_code ec;
    fs::path p = fs::read_symlink("/proc/self/exe", ec).parent_path();
    for (; !p.empty() && p != p.root_path(); p = p.parent_path())
        if (fs::exists(p / "include/tardy/abi.h")) return p.string();
    return "";
}

// ---- Layouts: what the BPF objects were compiled with, read from their BTF -----------------
//
// Each shared struct's size and every member's offset and size, as clang -target bpf laid
// them out (the BTF of the objects embedded in the skeletons), against sizeof/offsetof here.
// No numbers are written down: a field added, moved or resized on either side fails below.

struct Member {
    const char* name;
    size_t offset, size;
};
struct StructLayout {
    const char* name;
    size_t size;
    std::vector<Member> members;
};

#define TARDY_M(S, m) Member{#m, offsetof(S, m), sizeof(S::m)}
#define TARDY_LAYOUT(S, ...) StructLayout{#S, sizeof(S), {__VA_ARGS__}}

// Every struct of include/tardy/abi.h (AbiLayout.TableCoversTheHeader checks that).
const StructLayout kLayouts[] = {
    TARDY_LAYOUT(tardy_control, TARDY_M(tardy_control, armed), TARDY_M(tardy_control, generation),
                 TARDY_M(tardy_control, lease_deadline_ns)),
    TARDY_LAYOUT(tardy_filter, TARDY_M(tardy_filter, n_peers), TARDY_M(tardy_filter, n_except),
                 TARDY_M(tardy_filter, port_lo), TARDY_M(tardy_filter, port_hi), TARDY_M(tardy_filter, except_port_lo),
                 TARDY_M(tardy_filter, except_port_hi), TARDY_M(tardy_filter, protos), TARDY_M(tardy_filter, pad),
                 TARDY_M(tardy_filter, peers)),
    TARDY_LAYOUT(tardy_rule, TARDY_M(tardy_rule, slot), TARDY_M(tardy_rule, loss_ppm), TARDY_M(tardy_rule, delay_ns),
                 TARDY_M(tardy_rule, jitter_ns), TARDY_M(tardy_rule, expires_ns), TARDY_M(tardy_rule, flows_ppm),
                 TARDY_M(tardy_rule, flow_seed), TARDY_M(tardy_rule, filtered), TARDY_M(tardy_rule, scope),
                 TARDY_M(tardy_rule, dist), TARDY_M(tardy_rule, corr_ppm), TARDY_M(tardy_rule, ge_p_ppm),
                 TARDY_M(tardy_rule, ge_r_ppm), TARDY_M(tardy_rule, ge_bad_loss_ppm),
                 TARDY_M(tardy_rule, ge_good_loss_ppm), TARDY_M(tardy_rule, duplicate_ppm),
                 TARDY_M(tardy_rule, reorder_ppm), TARDY_M(tardy_rule, rate_bytes_per_s), TARDY_M(tardy_rule, dns_rcode),
                 TARDY_M(tardy_rule, dns_ppm), TARDY_M(tardy_rule, dns_name_len), TARDY_M(tardy_rule, reset_ppm),
                 TARDY_M(tardy_rule, dns_name), TARDY_M(tardy_rule, filter), TARDY_M(tardy_rule, corrupt_ppm),
                 TARDY_M(tardy_rule, reorder_gap)),
    TARDY_LAYOUT(tardy_dist_table, TARDY_M(tardy_dist_table, v)),
    TARDY_LAYOUT(tardy_rule_state, TARDY_M(tardy_rule_state, last), TARDY_M(tardy_rule_state, ge_bad),
                 TARDY_M(tardy_rule_state, last_corrupt), TARDY_M(tardy_rule_state, rate_next_ns),
                 TARDY_M(tardy_rule_state, gap_count), TARDY_M(tardy_rule_state, pad)),
    TARDY_LAYOUT(tardy_rule_set, TARDY_M(tardy_rule_set, n), TARDY_M(tardy_rule_set, slots),
                 TARDY_M(tardy_rule_set, parse), TARDY_M(tardy_rule_set, rules)),
    TARDY_LAYOUT(tardy_counters, TARDY_M(tardy_counters, matched), TARDY_M(tardy_counters, delayed),
                 TARDY_M(tardy_counters, dropped), TARDY_M(tardy_counters, bytes),
                 TARDY_M(tardy_counters, duplicated), TARDY_M(tardy_counters, reordered), TARDY_M(tardy_counters, paced),
                 TARDY_M(tardy_counters, dns), TARDY_M(tardy_counters, resets), TARDY_M(tardy_counters, corrupted)),
    TARDY_LAYOUT(tardy_cg_match, TARDY_M(tardy_cg_match, generation), TARDY_M(tardy_cg_match, pad),
                 TARDY_M(tardy_cg_match, rule_cgid)),
    TARDY_LAYOUT(tardy_echo_key, TARDY_M(tardy_echo_key, peer_be), TARDY_M(tardy_echo_key, family_id)),
    TARDY_LAYOUT(tardy_sock_fault, TARDY_M(tardy_sock_fault, op), TARDY_M(tardy_sock_fault, err),
                 TARDY_M(tardy_sock_fault, ppm), TARDY_M(tardy_sock_fault, pad)),
    TARDY_LAYOUT(tardy_peer, TARDY_M(tardy_peer, family), TARDY_M(tardy_peer, prefix_len),
                 TARDY_M(tardy_peer, addr_be)),
    TARDY_LAYOUT(tardy_sock_rule, TARDY_M(tardy_sock_rule, expires_ns), TARDY_M(tardy_sock_rule, slot),
                 TARDY_M(tardy_sock_rule, n_faults), TARDY_M(tardy_sock_rule, faults),
                 TARDY_M(tardy_sock_rule, filter)),
    TARDY_LAYOUT(tardy_sock_counters, TARDY_M(tardy_sock_counters, seen), TARDY_M(tardy_sock_counters, failed), TARDY_M(tardy_sock_counters, connects_refused)),
    TARDY_LAYOUT(tardy_stall_entry, TARDY_M(tardy_stall_entry, ppm), TARDY_M(tardy_stall_entry, on),
                 TARDY_M(tardy_stall_entry, delay_ns)),
    TARDY_LAYOUT(tardy_stall_rule, TARDY_M(tardy_stall_rule, expires_ns), TARDY_M(tardy_stall_rule, slot),
                 TARDY_M(tardy_stall_rule, n), TARDY_M(tardy_stall_rule, path_ino),
                 TARDY_M(tardy_stall_rule, path_dev), TARDY_M(tardy_stall_rule, filtered),
                 TARDY_M(tardy_stall_rule, stalls), TARDY_M(tardy_stall_rule, entry_of_nr),
                 TARDY_M(tardy_stall_rule, filter)),
    TARDY_LAYOUT(tardy_stall_event, TARDY_M(tardy_stall_event, tgid), TARDY_M(tardy_stall_event, tid),
                 TARDY_M(tardy_stall_event, due_ns)),
    TARDY_LAYOUT(tardy_stall_counters, TARDY_M(tardy_stall_counters, seen),
                 TARDY_M(tardy_stall_counters, stalled)),
    TARDY_LAYOUT(tardy_file_rule, TARDY_M(tardy_file_rule, expires_ns), TARDY_M(tardy_file_rule, slot),
                 TARDY_M(tardy_file_rule, n_faults), TARDY_M(tardy_file_rule, faults),
                 TARDY_M(tardy_file_rule, prefix_len), TARDY_M(tardy_file_rule, pad),
                 TARDY_M(tardy_file_rule, prefix)),
    TARDY_LAYOUT(tardy_cohort_record, TARDY_M(tardy_cohort_record, counts), TARDY_M(tardy_cohort_record, hist)),
    TARDY_LAYOUT(tardy_cohort_counts, TARDY_M(tardy_cohort_counts, connects), TARDY_M(tardy_cohort_counts, established),
                 TARDY_M(tardy_cohort_counts, accepted), TARDY_M(tardy_cohort_counts, failed_refused),
                 TARDY_M(tardy_cohort_counts, failed_timeout), TARDY_M(tardy_cohort_counts, failed_abandoned),
                 TARDY_M(tardy_cohort_counts, retransmits), TARDY_M(tardy_cohort_counts, rtos),
                 TARDY_M(tardy_cohort_counts, resets_sent), TARDY_M(tardy_cohort_counts, resets_received),
                 TARDY_M(tardy_cohort_counts, packets_out), TARDY_M(tardy_cohort_counts, bytes_out),
                 TARDY_M(tardy_cohort_counts, packets_in), TARDY_M(tardy_cohort_counts, bytes_in)),
};

// Structs no map or global names, so clang leaves them out of every object's BTF.
const std::set<std::string> kNotInBtf = {
    "tardy_stall_event",  // a ring buffer record: ring buffers declare no value type
};

// The BTF of every BPF object, as embedded in its skeleton (what the loaders load).
class AbiLayout : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        add("tc.bpf.o", tardy_tc__elf_bytes);
        add("sock.bpf.o", tardy_sock__elf_bytes);
        add("stall.bpf.o", tardy_stall__elf_bytes);
        add("file.bpf.o", tardy_file__elf_bytes);
        add("metrics.bpf.o", tardy_metrics__elf_bytes);
    }
    static void TearDownTestSuite() {
        for (auto& o : objs_) bpf_object__close(o.obj);
        objs_.clear();
    }
    static void add(const char* name, const void* (*bytes)(size_t*)) {
        size_t sz = 0;
        const void* data = bytes(&sz);
        LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = name);
        bpf_object* obj = bpf_object__open_mem(data, sz, &oo);
        objs_.push_back({name, obj, obj ? bpf_object__btf(obj) : nullptr});
    }

    struct Obj {
        std::string name;
        bpf_object* obj;
        const btf* types;
    };
    static inline std::vector<Obj> objs_;
};

// One struct of one object's BTF against the C++ layout; returns the mismatches, one a line.
std::string compare_layout(const btf* b, int id, const StructLayout& want) {
    std::ostringstream out;
    const btf_type* t = btf__type_by_id(b, id);
    if (t->size != want.size) out << "size: BPF " << t->size << ", C++ " << want.size << "\n";
    const btf_member* m = btf_members(t);
    std::set<std::string> seen;
    for (int i = 0; i < btf_vlen(t); i++, m++) {
        std::string name = btf__name_by_offset(b, m->name_off);
        seen.insert(name);
        auto it = std::find_if(want.members.begin(), want.members.end(),
                               [&](const Member& w) { return name == w.name; });
        if (it == want.members.end()) {
            out << name << ": in BPF, not in this test's table (add it to kLayouts)\n";
            continue;
        }
        size_t off = btf_member_bit_offset(t, i);
        if (btf_member_bitfield_size(t, i) != 0 || off % 8 != 0) out << name << ": a bitfield in BPF\n";
        if (off / 8 != it->offset) out << name << ": offset BPF " << off / 8 << ", C++ " << it->offset << "\n";
        long sz = btf__resolve_size(b, m->type);
        if (sz < 0 || static_cast<size_t>(sz) != it->size)
            out << name << ": size BPF " << sz << ", C++ " << it->size << "\n";
    }
    for (const auto& w : want.members)
        if (!seen.count(w.name)) out << w.name << ": in C++, not in BPF\n";
    return out.str();
}

TEST_F(AbiLayout, EveryObjectHasBtf) {
    ASSERT_EQ(objs_.size(), 5u);
    for (const auto& o : objs_) {
        EXPECT_NE(o.obj, nullptr) << o.name << ": " << strerror(errno);
        EXPECT_NE(o.types, nullptr) << o.name << " has no BTF";
    }
}

TEST_F(AbiLayout, SharedStructsMatchTheBtfOfEveryObjectThatUsesThem) {
    for (const auto& want : kLayouts) {
        std::vector<std::string> in;
        for (const auto& o : objs_) {
            if (!o.types) continue;
            int id = btf__find_by_name_kind(o.types, want.name, BTF_KIND_STRUCT);
            if (id <= 0) continue;
            in.push_back(o.name);
            std::string diff = compare_layout(o.types, id, want);
            EXPECT_EQ(diff, "") << "struct " << want.name << " in " << o.name << ":\n" << diff;
        }
        if (kNotInBtf.count(want.name))
            EXPECT_TRUE(in.empty()) << want.name << " is in BTF now: drop it from kNotInBtf";
        else
            EXPECT_FALSE(in.empty()) << "struct " << want.name << " is in no object's BTF";
    }
}

// The control map is mmap()ed by the agent and by `tardy kill`, and pinned once for every
// object: each object must define it the same way, BPF_F_MMAPABLE included (a pin reused
// with other flags fails to load). The metrics object injects nothing, so it has no switch to
// read: it measures until its links go with the agent.
TEST_F(AbiLayout, EveryObjectDefinesTheControlMapMmapable) {
    for (const auto& o : objs_) {
        if (!o.obj || o.name == std::string("metrics.bpf.o")) continue;
        const bpf_map* m = bpf_object__find_map_by_name(o.obj, "tardy_control");
        ASSERT_NE(m, nullptr) << o.name << " has no tardy_control";
        EXPECT_EQ(bpf_map__map_flags(m), static_cast<uint32_t>(BPF_F_MMAPABLE)) << o.name;
        EXPECT_EQ(bpf_map__max_entries(m), 1u) << o.name;
    }
}

// Every struct the header defines is in the table, so a new one cannot go unchecked.
TEST_F(AbiLayout, TableCoversTheHeader) {
    std::string root = repo_root();
    ASSERT_FALSE(root.empty());
    std::ifstream f(root + "/include/tardy/abi.h");
    std::stringstream text;
    text << f.rdbuf();
    std::regex def(R"(^struct (tardy_\w+) \{)", std::regex::multiline);
    std::set<std::string> in_header, in_table;
    const std::string s = text.str();
    for (std::sregex_iterator it(s.begin(), s.end(), def), end; it != end; ++it) in_header.insert((*it)[1]);
    for (const auto& l : kLayouts) in_table.insert(l.name);
    EXPECT_FALSE(in_header.empty());
    EXPECT_EQ(in_header, in_table);
}

TEST(Abi, Constants) {
    EXPECT_EQ(TARDY_PPM, 1'000'000u);
    EXPECT_EQ(TARDY_MAX_DELAY_NS, 5'000'000'000ULL);
    EXPECT_EQ(TARDY_HORIZON_NS, 8'000'000'000ULL);
    // A maximal delay plus jitter departs before the horizon, which is inside fq's 10 s.
    EXPECT_LT(TARDY_MAX_DELAY_NS, TARDY_HORIZON_NS);
    EXPECT_LT(TARDY_HORIZON_NS, 10'000'000'000ULL);
    EXPECT_EQ(TARDY_MAX_RULES, 16384);
    EXPECT_EQ(TARDY_CGROUP_CACHE, 65536);
    EXPECT_EQ(TARDY_MAX_CGROUP_LEVEL, 32);
    EXPECT_EQ(TARDY_TC_NEXT, -1);
    EXPECT_EQ(TARDY_TC_LOST_CLS, 4);  // TC_ACT_STOLEN
    EXPECT_EQ(TARDY_TC_LOST_TCX, 7);  // TCX_REDIRECT
    // loss_ppm of 100% fits the field; the limits are powers of two as the map sizes want.
    tardy_rule r{};
    r.loss_ppm = TARDY_PPM;
    EXPECT_EQ(r.loss_ppm, TARDY_PPM);
    EXPECT_EQ(TARDY_MAX_RULES & (TARDY_MAX_RULES - 1), 0);
    EXPECT_EQ(TARDY_CGROUP_CACHE & (TARDY_CGROUP_CACHE - 1), 0);
    // The counter slots index a map of TARDY_MAX_RULES entries with a __u32.
    EXPECT_LT(static_cast<uint64_t>(TARDY_MAX_RULES), static_cast<uint64_t>(UINT32_MAX));
}

// The header's constants are constant expressions for every compiler (the layouts are
// compared with the BTF of the real objects above).
const char* kLayoutChecks = R"(
#include <stddef.h>
#include <linux/types.h>
#include "tardy/abi.h"
#ifdef __cplusplus
#define TARDY_SA static_assert
#else
#define TARDY_SA _Static_assert
#endif
TARDY_SA(TARDY_PPM == 1000000u, "ppm");
)";

class AbiHeaderCompiles : public ::testing::Test {
protected:
    void SetUp() override {
        root = repo_root();
        ASSERT_FALSE(root.empty()) << "no include/tardy/abi.h above " << fs::read_symlink("/proc/self/exe");
    }

    // Compiles `source` (written to a file named `name`) with argv + the file; asserts success.
    void compiles(const std::string& name, const std::string& source, std::vector<std::string> argv) {
        std::string file = tmp.write(name, source);
        argv.push_back("-I" + root + "/include");
        argv.push_back(file);
        auto r = run_cmd(argv);
        ASSERT_TRUE(r) << r.error().message;
        std::string cmd;
        for (const auto& a : argv) cmd += a + " ";
        EXPECT_EQ(r->status, 0) << cmd << "\n" << r->err;
        EXPECT_EQ(r->err, "") << cmd;
    }

    std::string root;
    test::TempDir tmp;
};

const char* kAlone = "#include <linux/types.h>\n#include \"tardy/abi.h\"\n";
const char* kTwice = "#include <linux/types.h>\n#include \"tardy/abi.h\"\n#include \"tardy/abi.h\"\n";

TEST_F(AbiHeaderCompiles, AsC) {
    for (const char* std : {"-std=gnu11", "-std=c99", "-std=c11"})
        compiles("alone.c", kAlone, {"cc", std, "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic"});
    compiles("twice.c", kTwice, {"cc", "-fsyntax-only", "-Wall", "-Wextra", "-Werror"});
    compiles("layout.c", kLayoutChecks, {"cc", "-std=c11", "-fsyntax-only", "-Wall", "-Wextra", "-Werror"});
}

TEST_F(AbiHeaderCompiles, AsCxx) {
    for (const char* std : {"-std=c++17", "-std=c++20"})
        compiles("alone.cpp", kAlone, {"c++", std, "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic"});
    compiles("twice.cpp", kTwice, {"c++", "-fsyntax-only", "-Wall", "-Wextra", "-Werror"});
    compiles("layout.cpp", kLayoutChecks, {"c++", "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror"});
}

// The BPF programs are built with clang -target bpf; the layout must hold there too.
TEST_F(AbiHeaderCompiles, AsBpf) {
    auto which = run_cmd({"sh", "-c", "command -v clang"});
    if (!which || which->status != 0) GTEST_SKIP() << "clang not installed";
    utsname u{};
    ASSERT_EQ(uname(&u), 0);
    std::string arch = u.machine;  // as the Makefile's -I/usr/include/$(uname -m)-linux-gnu
    compiles("layout.bpf.c", kLayoutChecks,
             {"clang", "-target", "bpf", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
              "-I/usr/include/" + arch + "-linux-gnu"});
}

}  // namespace
}  // namespace tardy
