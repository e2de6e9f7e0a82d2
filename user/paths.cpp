#include "paths.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cstdlib>
#include <filesystem>

namespace tardy {
namespace {
constexpr long kBpfFsMagic = 0xcafe4a11;
}

Paths Paths::from_env() {
    const char* r = std::getenv("TARDY_RUN_DIR");
    const char* b = std::getenv("TARDY_BPFFS");
    return {r && *r ? r : "/run/tardy", b && *b ? b : "/sys/fs/bpf/tardy"};
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
    std::string parent = std::filesystem::path(dir).parent_path();
    if (!is_bpffs(parent)) {
        TARDY_TRY(ensure_dir(parent, 0755));
        if (mount("bpf", parent.c_str(), "bpf", 0, "mode=0700") != 0)
            return Error::sys("mount bpffs on " + parent + " (are you root?)", errno);
    }
    return ensure_dir(dir);
}

}  // namespace tardy
