// include/tardy/abi.h: the layout and constants the BPF programs and user space share, and
// that the header stands alone for every compiler that includes it.
#include <gtest/gtest.h>
#include <limits.h>
#include <sys/utsname.h>
#include "model/tardy_abi.hpp"
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

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

TEST(Abi, StructLayout) {
    EXPECT_EQ(sizeof(tardy_control), 16u);
    EXPECT_EQ(offsetof(tardy_control, armed), 0u);
    EXPECT_EQ(offsetof(tardy_control, generation), 4u);
    EXPECT_EQ(offsetof(tardy_control, lease_deadline_ns), 8u);

    EXPECT_EQ(sizeof(tardy_rule), 32u);
    EXPECT_EQ(offsetof(tardy_rule, slot), 0u);
    EXPECT_EQ(offsetof(tardy_rule, loss_ppm), 4u);
    EXPECT_EQ(offsetof(tardy_rule, delay_ns), 8u);
    EXPECT_EQ(offsetof(tardy_rule, jitter_ns), 16u);
    EXPECT_EQ(offsetof(tardy_rule, expires_ns), 24u);

    EXPECT_EQ(sizeof(tardy_counters), 32u);
    EXPECT_EQ(offsetof(tardy_counters, matched), 0u);
    EXPECT_EQ(offsetof(tardy_counters, delayed), 8u);
    EXPECT_EQ(offsetof(tardy_counters, dropped), 16u);
    EXPECT_EQ(offsetof(tardy_counters, bytes), 24u);

    EXPECT_EQ(sizeof(tardy_cg_match), 16u);
    EXPECT_EQ(offsetof(tardy_cg_match, generation), 0u);
    EXPECT_EQ(offsetof(tardy_cg_match, pad), 4u);
    EXPECT_EQ(offsetof(tardy_cg_match, rule_cgid), 8u);
}

TEST(Abi, FieldWidths) {
    tardy_rule r{};
    tardy_control c{};
    tardy_cg_match m{};
    EXPECT_EQ(sizeof r.loss_ppm, 4u);
    EXPECT_EQ(sizeof r.delay_ns, 8u);
    EXPECT_EQ(sizeof r.jitter_ns, 8u);
    EXPECT_EQ(sizeof r.expires_ns, 8u);
    EXPECT_EQ(sizeof c.armed, 4u);
    EXPECT_EQ(sizeof c.generation, 4u);
    EXPECT_EQ(sizeof c.lease_deadline_ns, 8u);
    EXPECT_EQ(sizeof m.generation, sizeof c.generation);
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
    EXPECT_EQ(TARDY_TC_DROP, 2);
    // loss_ppm of 100% fits the field; the limits are powers of two as the map sizes want.
    tardy_rule r{};
    r.loss_ppm = TARDY_PPM;
    EXPECT_EQ(r.loss_ppm, TARDY_PPM);
    EXPECT_EQ(TARDY_MAX_RULES & (TARDY_MAX_RULES - 1), 0);
    EXPECT_EQ(TARDY_CGROUP_CACHE & (TARDY_CGROUP_CACHE - 1), 0);
    // The counter slots index a map of TARDY_MAX_RULES entries with a __u32.
    EXPECT_LT(static_cast<uint64_t>(TARDY_MAX_RULES), static_cast<uint64_t>(UINT32_MAX));
}

// What the C side (the BPF programs) sees must be what C++ sees.
const char* kLayoutChecks = R"(
#include <stddef.h>
#include <linux/types.h>
#include "tardy/abi.h"
#ifdef __cplusplus
#define TARDY_SA static_assert
#else
#define TARDY_SA _Static_assert
#endif
TARDY_SA(sizeof(struct tardy_control) == 16, "control");
TARDY_SA(offsetof(struct tardy_control, lease_deadline_ns) == 8, "control.lease");
TARDY_SA(sizeof(struct tardy_rule) == 32, "rule");
TARDY_SA(offsetof(struct tardy_rule, delay_ns) == 8, "rule.delay");
TARDY_SA(offsetof(struct tardy_rule, jitter_ns) == 16, "rule.jitter");
TARDY_SA(offsetof(struct tardy_rule, expires_ns) == 24, "rule.expires");
TARDY_SA(sizeof(struct tardy_counters) == 32, "counters");
TARDY_SA(sizeof(struct tardy_cg_match) == 16, "cg_match");
TARDY_SA(offsetof(struct tardy_cg_match, rule_cgid) == 8, "cg_match.rule_cgid");
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
