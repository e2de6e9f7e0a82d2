// SPDX-License-Identifier: Apache-2.0
// The run directory's state files attacked and bounded (issue 7): symlinks planted where
// tardy keeps its journal, journal.rejected, journal.tmp, agent.pid and agent.log must be
// refused with one line, never followed or written through; the agent's log is capped.
#include <sys/stat.h>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;
namespace fs = std::filesystem;

namespace {

// A file outside the run directory that a planted symlink points to: its content, size and
// modification time must be what they were when it was made.
struct Bystander {
    std::string path, content;
    timespec mtime{};
    Bystander(std::string p, std::string c) : path(std::move(p)), content(std::move(c)) {
        std::ofstream(path) << content;
        struct stat st{};
        stat(path.c_str(), &st);
        mtime = st.st_mtim;
    }
    ~Bystander() { fs::remove(path); }
    bool untouched() const {
        struct stat st{};
        return stat(path.c_str(), &st) == 0 && st.st_mtim.tv_sec == mtime.tv_sec &&
               st.st_mtim.tv_nsec == mtime.tv_nsec && read_all(path) == content;
    }
};

class StateFileLab : public Lab {
protected:
    CmdResult tardy_env(const std::vector<std::string>& env, std::vector<std::string> args) {
        std::vector<std::string> argv{"env"};
        argv.insert(argv.end(), env.begin(), env.end());
        argv.push_back(build_dir() + "/tardy");
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_cmd(argv);
        return r ? *r : CmdResult{};
    }
    off_t size_of(const std::string& path) {
        struct stat st{};
        return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
    }
};

// 6. journal.rejected, journal.tmp, agent.pid, agent.log and the journal itself as symlinks
// to files outside the run directory: kill reports each as a step it could not do, inject
// refuses or logs it, and not one byte of the targets changes.
TEST_F(StateFileLab, SymlinkedStateFilesAreRefusedNeverWrittenThrough) {
    fs::create_directories(run_dir_);
    // Entries that parse but never decode: kill and the agent's start try to set them aside.
    std::ofstream(run_dir_ + "/journal") << "+ 1 qdisc 4026531840 1 lo not-a-qdisc-record\n"
                                         << "+ 2 clsact 4026531840 1 lo zz:yy\n";
    Bystander rejected(run_dir_ + "-outside-rejected", "precious rejected\n");
    Bystander pid(run_dir_ + "-outside-pid", "precious pid\n");
    Bystander tmp(run_dir_ + "-outside-tmp", "precious tmp\n");
    Bystander journal(run_dir_ + "-outside-journal", "+ 1 qdisc 4026531840 1 lo not-a-qdisc-record\n");
    fs::create_symlink(rejected.path, run_dir_ + "/journal.rejected");
    fs::create_symlink(pid.path, run_dir_ + "/agent.pid");
    fs::create_symlink(tmp.path, run_dir_ + "/journal.tmp");

    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 1) << k.out << k.err;
    EXPECT_NE(k.err.find(run_dir_ + "/journal.rejected is a symlink"), std::string::npos) << k.err;
    EXPECT_NE(k.err.find(run_dir_ + "/agent.pid alone: it is a symlink"), std::string::npos) << k.err;
    for (size_t at = 0, nl; (nl = k.err.find('\n', at)) != std::string::npos; at = nl + 1)
        EXPECT_EQ(k.err.compare(at, 11, "tardy kill:"), 0) << "not one line per problem: " << k.err;
    EXPECT_NE(read_all(run_dir_ + "/journal").find("zz:yy"), std::string::npos) << "entries lost with nowhere to go";
    EXPECT_TRUE(rejected.untouched() && pid.untouched() && tmp.untouched()) << "kill wrote through a symlink";

    // The agent refuses to start with agent.pid a symlink (exit 2, one line).
    auto r = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "1%"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("agent.pid"), std::string::npos) << r.err;
    EXPECT_TRUE(pid.untouched());

    // Nor with agent.log one, whose open would make it the agent's stderr.
    fs::remove(run_dir_ + "/agent.pid");
    Bystander log(run_dir_ + "-outside-log", "precious log\n");
    fs::create_symlink(log.path, run_dir_ + "/agent.log");
    r = tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "1%"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("agent.log"), std::string::npos) << r.err;
    EXPECT_TRUE(log.untouched()) << "the agent's log went through a symlink";
    fs::remove(run_dir_ + "/agent.log");

    // Without them, the agent starts: its recovery cannot set the entries aside (logged), and
    // the compaction at every stop rewrites the journal through a fresh journal.tmp.
    inject({"--loss", "1%"}, "one");
    EXPECT_EQ(tardy({"stop", "one"}).status, 0);
    EXPECT_NE(read_all(run_dir_ + "/agent.log").find("journal.rejected is a symlink"), std::string::npos)
        << read_all(run_dir_ + "/agent.log");
    EXPECT_FALSE(fs::is_symlink(run_dir_ + "/journal.tmp")) << "the compaction did not replace journal.tmp";
    EXPECT_NE(read_all(run_dir_ + "/journal").find("zz:yy"), std::string::npos);
    EXPECT_TRUE(rejected.untouched() && tmp.untouched()) << "the agent wrote through a symlink";
    EXPECT_EQ(tardy({"kill"}).status, 1);  // the entries still have nowhere to go

    // The journal itself a symlink: kill reads nothing through it and says so.
    fs::remove(run_dir_ + "/journal");
    fs::create_symlink(journal.path, run_dir_ + "/journal");
    k = tardy({"kill"});
    EXPECT_EQ(k.status, 1) << k.out << k.err;
    EXPECT_NE(k.err.find(run_dir_ + "/journal is a symlink"), std::string::npos) << k.err;
    EXPECT_TRUE(journal.untouched() && rejected.untouched() && pid.untouched() && tmp.untouched());

    fs::remove(run_dir_ + "/journal");
    fs::remove(run_dir_ + "/journal.rejected");
    fs::remove(run_dir_ + "/journal.tmp");
    k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.out << k.err;
}

// 6. ended.json.tmp and ended.json as symlinks: the record of an injection that ended by
// itself goes to a fresh file renamed over ended.json (the link replaced, not its target),
// and `list` reads no ended.json through a symlink.
TEST_F(StateFileLab, EndedRecordNeverGoesThroughASymlink) {
    Bystander tmp(run_dir_ + "-outside-ended-tmp", "precious tmp\n");
    fs::create_directories(run_dir_);
    fs::create_symlink(tmp.path, run_dir_ + "/ended.json.tmp");
    inject({"--loss", "1%", "--for", "300ms"}, "short");
    ASSERT_TRUE(eventually([&] { return read_all(run_dir_ + "/ended.json").find("short") != std::string::npos; }, 3000))
        << "the agent recorded no end";
    EXPECT_TRUE(tmp.untouched()) << "the agent wrote through ended.json.tmp";
    EXPECT_FALSE(fs::is_symlink(run_dir_ + "/ended.json"));
    EXPECT_NE(tardy({"list"}).out.find("ended short"), std::string::npos);
    Bystander planted(run_dir_ + "-outside-ended", "[{\"name\":\"ghost\",\"ended_at\":9999999999}]\n");
    fs::remove(run_dir_ + "/ended.json");
    fs::create_symlink(planted.path, run_dir_ + "/ended.json");
    auto l = tardy({"list"});
    EXPECT_EQ(l.status, 0) << l.err;
    EXPECT_EQ(l.out.find("ghost"), std::string::npos) << "list read ended.json through a symlink: " << l.out;
    fs::remove(run_dir_ + "/ended.json");
}

// 12. The agent's log is capped: past the cap it moves to agent.log.1 (replacing an older
// one), so the two never hold much more than twice the cap (it is checked every 100 ms).
// TARDY_LOG_CAP_BYTES exists for this test only: 4 MiB of log lines take minutes of requests.
TEST_F(StateFileLab, TheAgentsLogIsCapped) {
    constexpr int kCap = 4096;
    const std::string cap_env = "TARDY_LOG_CAP_BYTES=" + std::to_string(kCap);
    auto r = tardy_env({cap_env}, {"inject", "--cgroup", lab_->cgroup_rel(kCtl), "--loss", "1%", "--name", "keep"});
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string log = run_dir_ + "/agent.log", old = log + ".1";
    ino_t first_old = 0;
    int cycles = 0;
    double t0 = mono_ms();
    // Two rotations: the second replaces the first agent.log.1 instead of adding a file.
    for (int rotation = 0; rotation < 2; rotation++) {
        ino_t seen = 0;
        while (mono_ms() - t0 < 30000) {
            struct stat st{};
            if (stat(old.c_str(), &st) == 0 && st.st_ino != first_old) {
                seen = st.st_ino;
                break;
            }
            inject({"--loss", "1%"}, "c" + std::to_string(cycles));
            EXPECT_EQ(tardy({"stop", "c" + std::to_string(cycles)}).status, 0);
            cycles++;
            EXPECT_LT(size_of(log) + std::max<off_t>(size_of(old), 0), 2 * kCap + 4096)
                << "after " << cycles << " cycles the log holds more than twice its cap";
        }
        ASSERT_NE(seen, 0u) << "agent.log never moved to agent.log.1 (rotation " << rotation << ")";
        first_old = seen;
        EXPECT_GE(size_of(old), kCap);
        EXPECT_NE(read_all(log).find("log moved to " + old), std::string::npos) << read_all(log);
    }
    std::printf("  %d inject/stop cycles: agent.log %lld bytes, agent.log.1 %lld bytes (cap %d)\n", cycles,
                static_cast<long long>(size_of(log)), static_cast<long long>(size_of(old)), kCap);
    int logs = 0;
    for (const auto& e : fs::directory_iterator(run_dir_))
        if (e.path().filename().string().rfind("agent.log", 0) == 0) logs++;
    EXPECT_EQ(logs, 2) << "more log files than agent.log and agent.log.1";
}

}  // namespace
