// SPDX-License-Identifier: Apache-2.0
// File faults through the BPF LSM: only where the kernel runs it, so in the stock-kernel VM
// (these are Vm* tests; scripts/run-tests.sh runs them there).
#include <sys/stat.h>

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

}  // namespace
