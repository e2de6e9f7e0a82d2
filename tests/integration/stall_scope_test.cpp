// SPDX-License-Identifier: Apache-2.0
// What --stall names cover, and --on / --path, through the real tracepoints with real glibc
// programs: coreutils (stat, sleep, cat) and python3, whose calls go through glibc as any
// program's do (stat -> newfstatat, open -> openat, sleep -> clock_nanosleep, send -> sendto).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

// Joins the cgroup in argv[1] after start-up (so only the timed calls can be stalled), then
// times one call of each kind and prints {kind: ms}. argv[2] is a directory "in" the path
// scope, argv[3] one outside it.
const char* kProbe = R"(
import json, os, socket, sys, time
cg, d_in, d_out = sys.argv[1:4]
fin = os.open(os.path.join(d_in, "f"), os.O_RDWR | os.O_CREAT, 0o600)
fout = os.open(os.path.join(d_out, "f"), os.O_RDWR | os.O_CREAT, 0o600)
a, b = socket.socketpair()
with open(cg + "/cgroup.procs", "w") as f:
    f.write(str(os.getpid()))
def t(fn):
    s = time.monotonic(); fn(); return round((time.monotonic() - s) * 1000, 2)
r = {"write_in": t(lambda: os.write(fin, b"x")), "write_out": t(lambda: os.write(fout, b"x")),
     "write_sock": t(lambda: os.write(a.fileno(), b"x")), "send_sock": t(lambda: a.send(b"x")),
     "pwrite": t(lambda: os.pwrite(fin, b"x", 0)), "writev": t(lambda: os.writev(fin, [b"x"])),
     "read": t(lambda: os.pread(fin, 1, 0)), "fsync": t(lambda: os.fsync(fin)),
     "fdatasync": t(lambda: os.fdatasync(fin)), "stat": t(lambda: os.stat("/")),
     "open": t(lambda: os.close(os.open("/", os.O_RDONLY))), "sleep": t(lambda: time.sleep(0.001))}
print(json.dumps(r))
)";

class StallScope : public Lab {
protected:
    void SetUp() override {
        Lab::SetUp();
        dir_ = "/tmp/tardy-scope-" + name_;
        std::filesystem::create_directories(dir_ + "/in/sub");
        std::filesystem::create_directories(dir_ + "/out");
    }
    void TearDown() override {
        Lab::TearDown();
        std::filesystem::remove_all(dir_);
    }
    nlohmann::json probe_calls(Sandbox::Cohort c) {
        auto r = run_cmd({"python3", "-c", kProbe, lab_->cgroup(c), dir_ + "/in/sub", dir_ + "/out"});
        EXPECT_TRUE(r && r->status == 0) << (r ? r->err : r.error().message);
        auto j = r ? nlohmann::json::parse(r->out, nullptr, false) : nlohmann::json();
        return j.is_discarded() ? nlohmann::json::object() : j;
    }
    // Wall time of a real program run as a member of the cohort (a shell joins, then execs it).
    double run_ms(Sandbox::Cohort c, std::vector<std::string> argv) {
        argv.insert(argv.begin(), {"sh", "-c", "echo $$ > \"$0\"/cgroup.procs && exec \"$@\"", lab_->cgroup(c)});
        double t0 = mono_ms();
        auto r = run_cmd(argv);
        EXPECT_TRUE(r && r->status == 0) << argv[4] << ": " << (r ? r->err : r.error().message);
        return mono_ms() - t0;
    }
    std::string dir_;
};

// Issue 9.4: stat, nanosleep and open stalled nothing of a glibc program on x86_64.
TEST_F(StallScope, NamesStallRealGlibcPrograms) {
    struct Case {
        std::string stall;
        std::vector<std::string> argv;
        double gain;  // at least this many ms more than in the control cohort
    };
    // Relative to the same program in the control cohort at the same moment: starting a
    // process takes 3-40 ms on the host under the suites' load (this test is not in the VM
    // filters, where it takes 200-800 ms), so the control's time is the best of two runs and
    // each bound leaves 90 ms or more for the start-up's noise. `stat` and `cat` make about 30
    // stat or open calls each (about 0.9 s at 30 ms a stall); `sleep` one nanosleep, whose
    // 10 ms run out during the stall (the restarted call keeps its end time): it gains 290 ms.
    // (With 100 ms and a bound of 80 it failed once in CI: 103 ms in the experiment, 37 ms
    // for the control's start-up.) EachNameCoversWhatGlibcCalls checks the control cohort
    // call by call.
    for (const auto& c : std::vector<Case>{{"stat=30ms", {"stat", "/"}, 300},
                                           {"nanosleep=300ms", {"sleep", "0.01"}, 200},
                                           {"open=30ms", {"cat", "/etc/hostname"}, 300}}) {
        run_ms(kCtl, c.argv);  // warm the page cache
        inject({"--stall", c.stall}, "names");
        double e = run_ms(kExp, c.argv), k = std::min(run_ms(kCtl, c.argv), run_ms(kCtl, c.argv));
        std::printf("  --stall %s: `%s` took %.0f ms in the experiment, %.0f ms in the control cohort\n",
                    c.stall.c_str(), c.argv[0].c_str(), e, k);
        EXPECT_GE(e, k + c.gain) << c.stall << " did not stall " << c.argv[0];
        EXPECT_GE(list_json()["injections"][0]["counters"]["stalled"].get<int>(), 1);
        EXPECT_EQ(tardy({"stop", "names"}).status, 0);
    }
}

// Stalls of 150 ms, and a call of the control counts as stalled from 100 ms: a call of the
// host's disk (fsync, fdatasync) under the suites' load, or the probe's own scheduling, can
// take tens of ms by itself. With 50 ms stalls and a 45 ms bound the test failed once in a
// full host run (its values not kept) and passed 12 times alone right after.
TEST_F(StallScope, EachNameCoversWhatGlibcCalls) {
    inject({"--stall", "stat=150ms", "--stall", "open=150ms", "--stall", "nanosleep=150ms", "--stall", "write=150ms",
            "--stall", "read=150ms", "--stall", "fsync=150ms", "--stall", "fdatasync=150ms"});
    auto e = probe_calls(kExp), k = probe_calls(kCtl);
    std::printf("  experiment: %s\n  control:    %s\n", e.dump().c_str(), k.dump().c_str());
    for (const char* call : {"stat", "open", "sleep", "write_in", "write_out", "write_sock", "pwrite", "writev", "read",
                             "fsync", "fdatasync"}) {
        EXPECT_GE(e.value(call, 0.0), 150) << call << " was not stalled";
        EXPECT_LT(k.value(call, 999.0), 100) << call << " was stalled in the control cohort";
    }
    EXPECT_LT(e.value("send_sock", 999.0), 100) << "send() is sendto(2), not a write";
}

// Issue 9.5: a write stall scoped to files or to sockets, or to files under a path.
TEST_F(StallScope, OnFilesOnSocketsAndPath) {
    inject({"--stall", "write=50ms", "--on", "files"}, "scope");
    auto e = probe_calls(kExp);
    std::printf("  --on files:   %s\n", e.dump().c_str());
    EXPECT_GE(e.value("write_in", 0.0), 50);
    EXPECT_GE(e.value("write_out", 0.0), 50);
    EXPECT_LT(e.value("write_sock", 999.0), 45) << "--on files stalled a socket write";
    EXPECT_EQ(tardy({"stop", "scope"}).status, 0);

    inject({"--stall", "write=50ms", "--stall", "send=50ms", "--on", "sockets"}, "scope");
    e = probe_calls(kExp);
    std::printf("  --on sockets: %s\n", e.dump().c_str());
    EXPECT_GE(e.value("write_sock", 0.0), 50);
    EXPECT_GE(e.value("send_sock", 0.0), 50);
    EXPECT_LT(e.value("write_in", 999.0), 45) << "--on sockets stalled a file write";
    EXPECT_LT(e.value("pwrite", 999.0), 45);
    EXPECT_EQ(tardy({"stop", "scope"}).status, 0);

    inject({"--stall", "write=50ms", "--stall", "flush=50ms", "--path", dir_ + "/in"}, "scope");
    e = probe_calls(kExp);
    auto k = probe_calls(kCtl);
    std::printf("  --path:       %s\n  control:      %s\n", e.dump().c_str(), k.dump().c_str());
    EXPECT_GE(e.value("write_in", 0.0), 50) << "a write below --path was not stalled";
    EXPECT_GE(e.value("fdatasync", 0.0), 50);
    EXPECT_LT(e.value("write_out", 999.0), 45) << "a write outside --path was stalled";
    EXPECT_LT(e.value("write_sock", 999.0), 45);
    EXPECT_LT(k.value("write_in", 999.0), 45) << "the control cohort was stalled";
}

// Issue 8: a 32-bit (ia32) syscall is never matched by its number: int 0x80 with eax 4 is
// write there, where x86_64's 4 is stat.
TEST_F(StallScope, CompatSyscallsAreNeverMatchedByNumber) {
#if defined(__x86_64__)
    inject({"--stall", "stat=200ms"});
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t child = fork();
    if (child == 0) {
        std::ofstream(lab_->cgroup(kExp) + "/cgroup.procs") << getpid() << std::flush;
        int null = open("/dev/null", O_WRONLY);
        double t[2];
        long ret = -1;
        t[0] = mono_ms();
        asm volatile("int $0x80" : "=a"(ret) : "a"(4L), "b"(static_cast<long>(null)), "c"(0L), "d"(0L) : "memory");
        t[0] = mono_ms() - t[0];
        struct stat st{};
        t[1] = mono_ms();
        syscall(SYS_stat, "/", &st);
        t[1] = mono_ms() - t[1];
        if (ret != 0) t[0] = -1;  // ia32 write of 0 bytes returns 0; ENOSYS without IA32 emulation
        (void)!write(p[1], t, sizeof t);
        _exit(0);
    }
    close(p[1]);
    double t[2] = {-2, -2};
    ssize_t got = read(p[0], t, sizeof t);
    close(p[0]);
    int status = 0;
    waitpid(child, &status, 0);
    // Some kernels have no int 0x80 entry at all (a firecracker guest seen here: SIGSEGV, with
    // CONFIG_IA32_EMULATION=y); the 6.1 VM suite runs this test where it has one.
    if (got == 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)
        GTEST_SKIP() << "int 0x80 kills the caller on this kernel: it runs no ia32 syscalls";
    ASSERT_EQ(got, static_cast<ssize_t>(sizeof t));
    std::printf("  ia32 write (nr 4): %.2f ms; x86_64 stat (nr 4): %.2f ms\n", t[0], t[1]);
    if (t[0] == -1) GTEST_SKIP() << "this kernel runs no ia32 syscalls";
    EXPECT_LT(t[0], 100) << "a compat syscall was stalled by an x86_64 number";
    EXPECT_GE(t[1], 200) << "the native stat was not stalled";
#else
    GTEST_SKIP() << "x86_64 only";
#endif
}

TEST_F(StallScope, ScopesThatCannotApplyAreRefused) {
    for (auto [args, needle] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"--stall", "nanosleep=50ms", "--on", "files"}, "nanosleep takes none"},
             {{"--stall", "open=50ms", "--path", "/tmp"}, "open takes none"},
             {{"--stall", "write=50ms", "--on", "disks"}, "use files"},
             {{"--stall", "write=50ms", "--on", "sockets", "--path", "/tmp"}, "never meets one"},
             {{"--stall", "fstat=50ms"}, "use stat"},
             {{"--stall", "open=50ms", "--stall", "openat=50ms"}, "already covers openat"},
             {{"--loss", "1%", "--on", "files"}, "--on needs a --stall"}}) {
        args.insert(args.begin(), {"inject", "--cgroup", lab_->cgroup_rel(kExp)});
        auto r = tardy(args);
        EXPECT_EQ(r.status, 2) << args[3] << ": " << r.err;
        EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
    }
}

}  // namespace
