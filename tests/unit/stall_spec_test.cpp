// SPDX-License-Identifier: Apache-2.0
// --stall names, --on and --path: what each name covers on this architecture and what is
// refused, before anything reaches the kernel.
#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <algorithm>
#include <string>

#include "model/spec.hpp"
#include "model/syscalls.hpp"
#include "model/tardy_abi.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

using test::FailsWithUserError;

bool covers(const std::string& name, long nr) {
    auto s = stall_syscalls(name);
    return s && std::find(s->nrs.begin(), s->nrs.end(), nr) != s->nrs.end();
}

InjectArgs stalls(std::vector<std::string> specs) {
    InjectArgs a;
    a.cgroup = "batch.slice";
    a.stalls = std::move(specs);
    return a;
}

// What glibc calls for each (x86_64, glibc 2.36): the "stalls that never fire".
TEST(StallNames, CoverWhatGlibcCalls) {
    EXPECT_TRUE(covers("stat", SYS_newfstatat));
    EXPECT_TRUE(covers("stat", SYS_statx));
    EXPECT_TRUE(covers("open", SYS_openat));
    EXPECT_TRUE(covers("open", SYS_openat2));
    EXPECT_TRUE(covers("nanosleep", SYS_clock_nanosleep));
    EXPECT_TRUE(covers("sleep", SYS_clock_nanosleep));
    for (long nr : {SYS_write, SYS_writev, SYS_pwrite64, SYS_pwritev, SYS_pwritev2}) EXPECT_TRUE(covers("write", nr));
    for (long nr : {SYS_read, SYS_readv, SYS_pread64, SYS_preadv, SYS_preadv2}) EXPECT_TRUE(covers("read", nr));
    for (long nr : {SYS_fsync, SYS_fdatasync, SYS_sync_file_range}) EXPECT_TRUE(covers("flush", nr));
    EXPECT_TRUE(covers("send", SYS_sendto));
    EXPECT_TRUE(covers("io_uring_enter", SYS_io_uring_enter));
    // A name that is one syscall stays exactly that syscall.
    EXPECT_EQ(stall_syscalls("fsync")->nrs, std::vector<long>{SYS_fsync});
    EXPECT_EQ(stall_syscalls("pwrite64")->nrs, std::vector<long>{SYS_pwrite64});
}

TEST(StallNames, NamesThatWouldNeverFireAreRefusedWithWhatWorks) {
    EXPECT_TRUE(FailsWithUserError(stall_syscalls("fstat"), {"newfstatat", "use stat"}));
    EXPECT_TRUE(FailsWithUserError(stall_syscalls("lstat"), {"use stat"}));
    EXPECT_TRUE(FailsWithUserError(stall_syscalls("creat"), {"use open"}));
    EXPECT_TRUE(FailsWithUserError(stall_syscalls("frob"), {"unknown or unsupported syscall", "write"}));
}

TEST(StallNames, EveryNameFitsTheRuleAndParses) {
    std::string all = stall_names();
    size_t start = 0;
    while (start < all.size()) {
        size_t comma = all.find(", ", start);
        std::string name = all.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? all.size() : comma + 2;
        auto s = stall_syscalls(name);
        ASSERT_TRUE(s) << name;
        EXPECT_FALSE(s->nrs.empty()) << name;
        for (long nr : s->nrs) {
            EXPECT_GE(nr, 0) << name;
            EXPECT_LT(nr, TARDY_STALL_NR_MAX) << name;
        }
        EXPECT_TRUE(parse_stall(name + "=5ms")) << name;
    }
}

TEST(StallSpec, OverlappingNamesAreRefused) {
    EXPECT_TRUE(FailsWithUserError(build_inject_request(stalls({"open=5ms", "openat=5ms"})), {"already covers openat"}));
    EXPECT_TRUE(FailsWithUserError(build_inject_request(stalls({"write=5ms", "pwritev=5ms"})), {"covers pwritev"}));
    EXPECT_TRUE(build_inject_request(stalls({"fsync=5ms", "fdatasync=5ms", "write=5ms", "read=5ms"})));
    std::vector<std::string> nine{"read=1ms", "write=1ms", "stat=1ms", "open=1ms", "nanosleep=1ms",
                                  "fsync=1ms", "fdatasync=1ms", "close=1ms", "connect=1ms"};
    EXPECT_TRUE(FailsWithUserError(build_inject_request(stalls(nine)), {"too many --stall"}));
}

TEST(StallSpec, OnAndPathScopeEveryStall) {
    auto a = stalls({"write=50ms", "flush=100ms:10%"});
    a.on = "files";
    a.path = "/var/lib/pg/";
    auto r = build_inject_request(a);
    ASSERT_TRUE(r) << r.error().message;
    for (const auto& st : r->stalls) {
        EXPECT_EQ(st.on, "files");
        EXPECT_EQ(st.path, "/var/lib/pg");
    }
    EXPECT_EQ(describe(r->stalls), "stall write 50ms, stall flush 100ms 10% on files under /var/lib/pg");
    EXPECT_FALSE(r->sock.any_file());
    // The JSON the agent gets carries the names; the numbers come from the agent's own table.
    nlohmann::json j = r->stalls;
    auto back = j.get<std::vector<StallSpec>>();
    EXPECT_EQ(back[1].nrs, stall_syscalls("flush")->nrs);
    EXPECT_EQ(back[1].path, "/var/lib/pg");
}

TEST(StallSpec, ScopesThatCannotApplyAreRefused) {
    auto a = stalls({"nanosleep=50ms"});
    a.on = "files";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"nanosleep takes none"}));
    a = stalls({"write=50ms", "open=50ms"});
    a.path = "/var";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"open takes none"}));
    a = stalls({"write=50ms"});
    a.on = "disks";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"use files", "sockets"}));
    a.on = "sockets";
    a.path = "/var";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"never meets one"}));
    a = stalls({"write=50ms"});
    a.path = "var/lib";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"absolute"}));
    a = stalls({});
    a.loss = "1%";
    a.on = "files";
    EXPECT_TRUE(FailsWithUserError(build_inject_request(a), {"--on needs a --stall"}));
}

TEST(StallSpec, PathWithFileFaultsAndStallsFiltersBoth) {
    auto a = stalls({"write=50ms"});
    a.fails = {"open=EIO"};
    a.path = "/srv/app";
    auto r = build_inject_request(a);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->sock.path, "/srv/app");
    EXPECT_EQ(r->stalls[0].path, "/srv/app");
}

}  // namespace
}  // namespace tardy
