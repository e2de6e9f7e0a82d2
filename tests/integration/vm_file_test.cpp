// SPDX-License-Identifier: Apache-2.0
// File faults through the BPF LSM: only where the kernel runs it, so in the stock-kernel VM
// (these are Vm* tests; scripts/run-tests.sh runs them there).
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <fstream>

#include "../common/harness.hpp"
#include "loader/file_object.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class VmFileLab : public Lab {
protected:
    void SetUp() override {
        ASSERT_TRUE(bpf_lsm_active()) << "the file-fault suite needs the BPF LSM (run it with `make vmtest`)";
        Lab::SetUp();
        if (HasFatalFailure()) return;
        dir_ = "/tmp/tardy-files-" + name_;
        for (const auto& d : {dir_, dir_ + "/app", dir_ + "/apple", dir_ + "/other"}) {
            ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d;
            std::ofstream(d + "/f") << "data\n";
        }
    }
    void TearDown() override {
        Lab::TearDown();
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }
    nlohmann::json calls(Sandbox::Cohort c, const std::string& op, const std::string& file, int count) {
        auto r = testkit({"filecall", "--cgroup", lab_->cgroup(c), "--op", op, "--file", file, "--count",
                        std::to_string(count)});
        EXPECT_EQ(r.status, 0) << r.err;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? nlohmann::json::object() : j;
    }
    static int n(const nlohmann::json& j, const char* k) { return j.value(k, 0); }
    std::string dir_;
};

TEST_F(VmFileLab, OpenFailsUnderThePathOnlyInTheExperimentCohort) {
    inject({"--fail", "open=EIO", "--path", dir_ + "/app"});
    EXPECT_EQ(n(calls(kExp, "open", dir_ + "/app/f", 10), "EIO"), 10);
    EXPECT_EQ(n(calls(kExp, "open", dir_ + "/other/f", 10), "OK"), 10) << "a file outside the path was hit";
    EXPECT_EQ(n(calls(kExp, "open", dir_ + "/apple/f", 10), "OK"), 10) << "a prefix of a name is not a directory";
    EXPECT_EQ(n(calls(kCtl, "open", dir_ + "/app/f", 10), "OK"), 10) << "the control cohort was hit";
}

TEST_F(VmFileLab, ReadAndWriteFailWithTheirOwnErrnos) {
    inject({"--fail", "read=EIO", "--fail", "write=ENOSPC", "--path", dir_});
    EXPECT_EQ(n(calls(kExp, "read", dir_ + "/app/f", 10), "EIO"), 10);
    EXPECT_EQ(n(calls(kExp, "write", dir_ + "/app/f", 10), "ENOSPC"), 10);
    EXPECT_EQ(n(calls(kCtl, "read", dir_ + "/app/f", 10), "OK"), 10);
    EXPECT_EQ(n(calls(kCtl, "write", dir_ + "/app/f", 10), "OK"), 10);
}

TEST_F(VmFileLab, RateAndEnd) {
    inject({"--fail", "open=EACCES:30%", "--path", dir_}, "files");
    auto r = calls(kExp, "open", dir_ + "/app/f", 300);
    // Binomial, n = 300, p = 0.3: sd = 0.026; 5 sd.
    EXPECT_NEAR(n(r, "EACCES") / 300.0, 0.30, 0.13) << r;
    ASSERT_EQ(tardy({"stop", "files"}).status, 0);
    EXPECT_EQ(n(calls(kExp, "open", dir_ + "/app/f", 10), "OK"), 10) << "outlived stop";
}

// overlayfs opens the real file beneath the one the user opened, in the user's task: the
// LSM sees two opens for one call. Judged twice, a 30% open fault failed 51% of opens
// (1 - 0.7^2); the kernel's own file is told by a flag of f_mode (bpf/lib/kernel.bpf.h).
TEST_F(VmFileLab, OverlayFileIsJudgedOnce) {
    const std::string t = dir_ + "/ovl";
    ASSERT_EQ(mkdir(t.c_str(), 0755), 0);
    ASSERT_EQ(mount("tmpfs", t.c_str(), "tmpfs", 0, "size=4m"), 0) << strerror(errno);
    struct Unmount {
        std::string at;
        ~Unmount() {
            umount2((at + "/merged").c_str(), MNT_DETACH);
            umount2(at.c_str(), MNT_DETACH);
        }
    } unmount{t};
    for (const char* d : {"/lower", "/upper", "/work", "/merged"}) ASSERT_EQ(mkdir((t + d).c_str(), 0755), 0);
    std::ofstream(t + "/lower/f") << "data\n";
    std::string opts = "lowerdir=" + t + "/lower,upperdir=" + t + "/upper,workdir=" + t + "/work";
    ASSERT_EQ(mount("overlay", (t + "/merged").c_str(), "overlay", 0, opts.c_str()), 0) << strerror(errno);
    struct statfs fs{};
    ASSERT_EQ(statfs((t + "/merged").c_str(), &fs), 0);
    ASSERT_EQ(static_cast<unsigned long>(fs.f_type), 0x794c7630ul) << "not overlayfs";
    inject({"--fail", "open=EACCES:30%", "--path", t});  // covers the overlay and what is beneath
    auto r = calls(kExp, "open", t + "/merged/f", 400);
    double share = n(r, "EACCES") / 400.0;
    std::printf("  30%% open fault on overlayfs: %.3f of 400 opens failed\n", share);
    // Binomial, n = 400, p = 0.3: sd = 0.023; 4 sd either side, and 0.51 far outside.
    EXPECT_NEAR(share, 0.30, 0.092) << r;
    EXPECT_EQ(n(calls(kCtl, "open", t + "/merged/f", 20), "OK"), 20);
}

}  // namespace
