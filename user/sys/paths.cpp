// SPDX-License-Identifier: Apache-2.0
#include "sys/paths.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace tardy {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;
constexpr size_t kMaxPin = 200;  // leaves room for "/tardy_stalled" within bpffs' name limits

std::string parent_of(const std::string& dir) {
    auto p = std::filesystem::path(dir).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();  // "a/b/" -> "a/b"
    return p.parent_path().string();
}

bool plain_name(const std::string& s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    return true;
}

}  // namespace

Result<void> check_run_dir(const std::string& dir, bool files) {
    if (dir.empty() || dir[0] != '/' || !plain_name(dir))
        return Error::user("TARDY_RUN_DIR='" + dir + "': use an absolute path, e.g. /run/tardy");
    if (dir.size() + sizeof("/agent.sock") > sizeof(sockaddr_un::sun_path))
        return Error::user("TARDY_RUN_DIR is too long for the agent's Unix socket (" + std::to_string(dir.size()) +
                           " characters; at most " + std::to_string(sizeof(sockaddr_un::sun_path) - sizeof("/agent.sock")) +
                           "); use a shorter path");
    struct stat st{};
    std::string probe = dir;
    if (lstat(dir.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return Error::user("TARDY_RUN_DIR=" + dir + " is not a directory; use another path");
    } else {
        // The directory is made later; judge the nearest existing ancestor.
        while (probe.size() > 1 && lstat(probe.c_str(), &st) != 0) probe = parent_of(probe);
    }
    struct statvfs vs{};
    if (statvfs(probe.c_str(), &vs) == 0 && (vs.f_flag & ST_RDONLY))
        return Error::user("TARDY_RUN_DIR=" + dir + " is on a read-only file system; use a writable one, e.g. /run/tardy");
    if (access(probe.c_str(), W_OK) != 0)
        return Error::user("TARDY_RUN_DIR=" + dir + " is not writable (" + probe + "); use another path or run as root");
    const std::pair<const char*, mode_t> expected[] = {{"/agent.sock", S_IFSOCK}, {"/agent.lock", S_IFREG},
                                                       {"/agent.pid", S_IFREG},   {"/journal", S_IFREG},
                                                       {"/agent.log", S_IFREG}};
    for (const auto& [name, type] : expected) {
        if (!files) break;
        std::string f = dir + name;
        if (lstat(f.c_str(), &st) == 0 && (st.st_mode & S_IFMT) != type)
            return Error::user(f + " exists and is not a " + (type == S_IFSOCK ? "socket" : "regular file") +
                               " (a symlink or directory is never followed); remove it or use another TARDY_RUN_DIR");
    }
    return ok();
}

namespace {

Result<void> check_bpffs_dir(const std::string& dir) {
    if (dir.empty() || dir[0] != '/' || !plain_name(dir))
        return Error::user("TARDY_BPFFS='" + dir + "': use an absolute path under /sys/fs/bpf, e.g. /sys/fs/bpf/tardy");
    if (dir.size() > kMaxPin)
        return Error::user("TARDY_BPFFS is too long (" + std::to_string(dir.size()) + " characters; at most " +
                           std::to_string(kMaxPin) + "); use a shorter path under /sys/fs/bpf");
    auto norm = std::filesystem::path(dir).lexically_normal();
    std::string name = norm.has_filename() ? norm.filename().string() : norm.parent_path().filename().string();
    if (name.empty() || name == "." || name == "..")
        return Error::user("TARDY_BPFFS=" + dir + ": name a directory, e.g. /sys/fs/bpf/tardy");
    if (name.find('.') != std::string::npos)
        return Error::user("TARDY_BPFFS=" + dir + ": bpffs refuses names with a dot ('" + name +
                           "'); use e.g. /sys/fs/bpf/tardy");
    std::string parent = parent_of(dir);
    if (!is_bpffs(parent) && parent != kBpffsMount)
        return Error::user("TARDY_BPFFS=" + dir + ": " + parent +
                           " is not on a bpffs, and tardy mounts bpffs only on /sys/fs/bpf; use a directory under "
                           "/sys/fs/bpf");
    struct stat st{};
    if (lstat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
        return Error::user("TARDY_BPFFS=" + dir + " exists and is not a directory; use another path");
    return ok();
}

}  // namespace

Paths Paths::from_env() {
    const char* r = std::getenv("TARDY_RUN_DIR");
    const char* b = std::getenv("TARDY_BPFFS");
    return {r ? r : "/run/tardy", b ? b : "/sys/fs/bpf/tardy"};
}

Result<void> validate_paths(const Paths& p, bool files) {
    TARDY_TRY(check_run_dir(p.run_dir, files));
    return check_bpffs_dir(p.bpffs_dir);
}

bool is_bpffs(const std::string& path) {
    struct statfs s{};
    return statfs(path.c_str(), &s) == 0 && s.f_type == kBpfFsMagic;
}

Result<void> ensure_dir(const std::string& dir, int mode) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Error::sys("create directory " + dir, ec.value());
    chmod(dir.c_str(), mode);
    return ok();
}

Result<void> ensure_bpffs_dir(const std::string& dir) {
    TARDY_TRY(check_bpffs_dir(dir));
    std::string parent = parent_of(dir);
    if (!is_bpffs(parent)) {
        // check_bpffs_dir allowed this only for /sys/fs/bpf itself: never shadow another
        // directory with a mount.
        if (mount("bpf", kBpffsMount, "bpf", 0, "mode=0700") != 0)
            return Error::sys(std::string("mount bpffs on ") + kBpffsMount + " (are you root?)", errno);
    }
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Error::sys("create directory " + dir, errno);
    return ok();
}

}  // namespace tardy
