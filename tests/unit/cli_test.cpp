// SPDX-License-Identifier: Apache-2.0
// The command line, run as a subprocess: bad input exits 2 with one line on stderr saying
// what is wrong, before anything needs root or touches the kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "sys/process.hpp"

namespace tardy {
namespace {

namespace fs = std::filesystem;

// build/tardy, next to this test binary.
std::string tardy_bin() {
    std::error_code ec;
    return (fs::read_symlink("/proc/self/exe", ec).parent_path() / "tardy").string();
}

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        bin = tardy_bin();
        ASSERT_TRUE(fs::exists(bin)) << bin << " is missing: build it first (make)";
        // State never touched by these runs, but keep it away from the real one all the same.
        setenv("TARDY_RUN_DIR", tmp_run.c_str(), 1);
        setenv("TARDY_BPFFS", tmp_bpffs.c_str(), 1);
    }

    CmdResult run(std::vector<std::string> args) {
        args.insert(args.begin(), bin);
        auto r = run_cmd(args);
        EXPECT_TRUE(r) << r.error().message;
        return r ? *r : CmdResult{};
    }

    // Exit 2, nothing on stdout, exactly one line on stderr starting "tardy: " and naming
    // every string in `must`.
    void user_error(std::vector<std::string> args, std::vector<std::string> must) {
        std::string cmd = "tardy";
        for (const auto& a : args) cmd += " '" + a + "'";
        CmdResult r = run(args);
        EXPECT_EQ(r.status, 2) << cmd << "\nstderr: " << r.err;
        EXPECT_EQ(r.out, "") << cmd;
        EXPECT_TRUE(r.err.starts_with("tardy: ")) << cmd << "\nstderr: " << r.err;
        ASSERT_FALSE(r.err.empty()) << cmd;
        EXPECT_EQ(r.err.back(), '\n') << cmd;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << cmd << "\nstderr: " << r.err;
        for (const auto& m : must) EXPECT_NE(r.err.find(m), std::string::npos) << cmd << ": no '" << m << "' in: " << r.err;
    }

    std::string bin;
    std::string tmp_run = "/nonexistent/tardy-cli-test/run";
    std::string tmp_bpffs = "/nonexistent/tardy-cli-test/bpffs";
};

TEST_F(Cli, UnknownSubcommand) { user_error({"bogus"}, {"bogus"}); }

TEST_F(Cli, NoSubcommand) { user_error({}, {"name a command", "inject"}); }

TEST_F(Cli, UnknownFlag) { user_error({"inject", "--bogus"}, {"--bogus"}); }

TEST_F(Cli, UnknownTopLevelFlag) { user_error({"--bogus"}, {"--bogus"}); }

TEST_F(Cli, FlagWithoutValue) { user_error({"inject", "--cgroup", "a", "--delay"}, {"--delay"}); }

TEST_F(Cli, InjectWithoutTarget) { user_error({"inject", "--loss", "5%"}, {"exactly one target"}); }

TEST_F(Cli, InjectWithTwoTargets) {
    user_error({"inject", "--cgroup", "a", "--pid", "1", "--loss", "5%"}, {"exactly one target"});
    user_error({"inject", "--container", "3f2a", "--pid", "1", "--delay", "5ms"}, {"exactly one target"});
}

TEST_F(Cli, PodTargets) {
    user_error({"inject", "--pod", "0b1c", "--cgroup", "a", "--loss", "5%"}, {"exactly one target", "--pod UID"});
    user_error({"inject", "--pod", "0b1c", "--pid", "1", "--loss", "5%"}, {"exactly one target"});
    user_error({"inject", "--pod", "0b1c", "--container", "3f", "--pid", "1", "--loss", "5%"}, {"exactly one target"});
}

// Several PIDs are one option (--pid 1 2, --pid 1,2, --pid 1 --pid 2); a bad one is one line.
TEST_F(Cli, SeveralPidsParseAndBadOnesAreOneLine) {
    user_error({"inject", "--pid", "1", "x2", "--loss", "5%"}, {"--pid", "1,x2", "not a process id"});
    user_error({"inject", "--pid", "1,-2", "--loss", "5%"}, {"--pid", "not a process id"});
    user_error({"inject", "--pid", "1", "2", "--pid", "3", "--cgroup", "a", "--loss", "5%"}, {"exactly one target"});
}

TEST_F(Cli, LossOver100) { user_error({"inject", "--cgroup", "a", "--loss", "120%"}, {"--loss", "120%", "100%"}); }

TEST_F(Cli, NegativeDelay) { user_error({"inject", "--cgroup", "a", "--delay", "-5ms"}, {"--delay", "-5ms", "negative"}); }

TEST_F(Cli, DelayNotADuration) { user_error({"inject", "--cgroup", "a", "--delay", "abc"}, {"--delay", "abc", "unit"}); }

TEST_F(Cli, JitterWithoutDelay) { user_error({"inject", "--cgroup", "a", "--jitter", "1ms"}, {"--jitter", "--delay"}); }

TEST_F(Cli, NoFault) { user_error({"inject", "--cgroup", "a"}, {"no fault"}); }

TEST_F(Cli, ForTooShort) {
    user_error({"inject", "--cgroup", "a", "--loss", "1%", "--for", "10us"}, {"--for", "too short"});
}

TEST_F(Cli, StopNeitherNameNorAll) { user_error({"stop"}, {"--all"}); }

TEST_F(Cli, StopBothNameAndAll) { user_error({"stop", "x", "--all"}, {"--all"}); }

TEST_F(Cli, StopBadName) { user_error({"stop", "bad name"}, {"--name", "bad name"}); }

TEST_F(Cli, BadName) {
    user_error({"inject", "--cgroup", "a", "--loss", "5%", "--name", "bad name"}, {"--name", "bad name"});
}

// A newline typed into a value must not turn the error into two lines.
TEST_F(Cli, BadNameWithNewlineStaysOneLine) {
    user_error({"inject", "--cgroup", "a", "--loss", "5%", "--name", "a\nb"}, {"--name"});
}

TEST_F(Cli, BadDevice) {
    user_error({"inject", "--cgroup", "a", "--loss", "5%", "--device", "a/b"}, {"--device", "a/b"});
}

TEST_F(Cli, Help) {
    CmdResult r = run({"--help"});
    EXPECT_EQ(r.status, 0) << r.err;
    for (const char* sub : {"inject", "list", "stop", "kill", "doctor", "agent", "demo"})
        EXPECT_NE(r.out.find(std::string("  ") + sub + " "), std::string::npos) << "no " << sub << " in:\n" << r.out;
    EXPECT_NE(r.out.find("Examples:"), std::string::npos);
    // The internal subcommands stay hidden.
    EXPECT_EQ(r.out.find("__probe"), std::string::npos);
    EXPECT_EQ(r.out.find("__echo"), std::string::npos);
}

TEST_F(Cli, InjectHelpShowsAnExample) {
    CmdResult r = run({"inject", "--help"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("tardy inject --"), std::string::npos) << r.out;
    for (const char* flag : {"--cgroup", "--pid", "--container", "--pod", "--delay", "--jitter", "--loss", "--for", "--name",
                             "--device", "--netns", "--force"})
        EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

TEST_F(Cli, Version) {
    CmdResult r = run({"--version"});
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(r.out.starts_with("tardy ")) << r.out;
}

}  // namespace
}  // namespace tardy
