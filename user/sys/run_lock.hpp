// SPDX-License-Identifier: Apache-2.0
// The run directory's lock: whoever holds it is the only agent of the run directory, or the
// kill switch at work (while `tardy kill` holds it, no agent can start).
//
// The file is opened without following symlinks, and a holder checks after flock() that the
// path still names the inode it locked: a lock file unlinked by its last holder (kill does
// that) can never be held by two processes that both think they own the run directory.
#pragma once

#include "model/error.hpp"
#include "sys/fd.hpp"
#include "sys/holders.hpp"

namespace tardy {

class RunLock {
public:
    // Takes the lock, waiting up to wait_ms for it (0: do not wait). Fails with EWOULDBLOCK
    // when another process holds it, ELOOP when the path is a symlink.
    static Result<RunLock> acquire(const std::string& path, int wait_ms = 0);
    // The lock file's identity without taking it (for finding its holders); nullopt when absent.
    static std::optional<FileId> identify(const std::string& path);

    FileId id() const { return id_; }
    int fd() const { return fd_.get(); }
    // Unlinks the path while the lock is held (safe: see above), then releases it.
    void remove_and_release(const std::string& path);

private:
    Fd fd_;
    FileId id_;
};

}  // namespace tardy
