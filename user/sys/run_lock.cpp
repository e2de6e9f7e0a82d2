// SPDX-License-Identifier: Apache-2.0
#include "sys/run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

namespace tardy {

std::optional<FileId> RunLock::identify(const std::string& path) {
    struct stat st{};
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return FileId{st.st_dev, st.st_ino};
}

Result<RunLock> RunLock::acquire(const std::string& path, int wait_ms) {
    for (int waited = 0;;) {
        Fd fd(open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!fd.valid()) {
            if (errno == ELOOP) return Error::user(path + " is a symlink; tardy never follows one there: remove it");
            return Error::sys("open " + path, errno);
        }
        if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            if (e != EWOULDBLOCK || waited >= wait_ms) return Error::sys("lock " + path, e);
            timespec ts{0, 20'000'000};
            nanosleep(&ts, nullptr);
            waited += 20;
            continue;
        }
        struct stat held{}, now{};
        if (fstat(fd.get(), &held) != 0) return Error::sys("stat " + path, errno);
        if (lstat(path.c_str(), &now) == 0 && now.st_dev == held.st_dev && now.st_ino == held.st_ino) {
            RunLock l;
            l.fd_ = std::move(fd);
            l.id_ = {held.st_dev, held.st_ino};
            return l;
        }
        // Unlinked (or replaced) between our open and our flock: that inode is nobody's lock.
    }
}

void RunLock::remove_and_release(const std::string& path) {
    if (auto cur = identify(path); cur && *cur == id_) unlink(path.c_str());
    fd_.reset();
}

}  // namespace tardy
