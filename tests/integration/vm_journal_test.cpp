// SPDX-License-Identifier: Apache-2.0
// The journal stays bounded (issue 7, item 12): every stop compacts it, so many inject/stop
// cycles leave it no larger than one. Only a delay journals on every kernel (a root qdisc
// replaced by fq, a clsact filter), and a delay needs sch_fq: a Vm* test, run in the
// stock-kernel VM by scripts/run-tests.sh (the host's kernel has no fq).
#include <sys/stat.h>

#include <algorithm>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class VmJournalLab : public Lab {
protected:
    void SetUp() override {
        auto fq = qdisc_kind_available("fq");
        ASSERT_TRUE(fq && *fq) << "a delay needs sch_fq (run it with `make vmtest`)";
        Lab::SetUp();
    }
    static off_t size_of(const std::string& path) {
        struct stat st{};
        return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
    }
};

// 8 cycles: without compaction each adds two lines, so the journal would grow by 16 lines past
// its first size; here it must never exceed that size. A cycle takes 1.3-1.6 s under the
// VM's emulation (50 took 66 s); 8 keep the suite's budget.
TEST_F(VmJournalLab, JournalStaysBoundedOverManyInjectStopCycles) {
    constexpr int kCycles = 8;
    const std::string journal = run_dir_ + "/journal";
    off_t first = 0, largest = 0;
    double t0 = mono_ms();
    for (int i = 0; i < kCycles; i++) {
        std::string n = "j" + std::to_string(i);
        inject({"--delay", "1ms"}, n);
        off_t during = size_of(journal);
        ASSERT_GT(during, 0) << "cycle " << i << ": the delay's qdisc change was not journaled";
        if (i == 0) first = during;
        largest = std::max(largest, during);
        auto s = tardy({"stop", n});
        ASSERT_EQ(s.status, 0) << s.err;
        EXPECT_EQ(size_of(journal), 0) << "cycle " << i << ": closed entries stay in the journal after a stop";
    }
    std::printf("  %d delay inject/stop cycles in %.1f s: journal %lld bytes with one delay, at most %lld\n",
                kCycles, (mono_ms() - t0) / 1000, static_cast<long long>(first), static_cast<long long>(largest));
    // Ids may gain a digit; a journal that grows with the cycles gains two lines per cycle.
    EXPECT_LE(largest, first + 16) << "the journal grew with the number of cycles";
}

}  // namespace
