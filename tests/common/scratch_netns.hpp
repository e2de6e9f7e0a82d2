// SPDX-License-Identifier: Apache-2.0
// Moves the calling thread into a new, empty network namespace for the object's lifetime
// (unshare(CLONE_NEWNET)) and back after. The namespace and every device made in it vanish
// with the last reference, also when a test fails half way or the process is killed. Tests
// that send packets (or let a program under BPF_PROG_TEST_RUN redirect one) do it here, so
// nothing reaches the host's own devices.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace tardy::test {

inline ino_t netns_inode() {
    struct stat st{};
    stat("/proc/thread-self/ns/net", &st);
    return st.st_ino;
}

class ScratchNetns {
public:
    ScratchNetns() {
        old_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (old_ >= 0 && unshare(CLONE_NEWNET) == 0) entered_ = true;
    }
    ~ScratchNetns() {
        // Carrying on in the wrong namespace would make later tests touch the wrong devices.
        if (entered_ && setns(old_, CLONE_NEWNET) != 0) std::abort();
        if (old_ >= 0) close(old_);
    }
    ScratchNetns(const ScratchNetns&) = delete;
    ScratchNetns& operator=(const ScratchNetns&) = delete;
    bool entered() const { return entered_; }

private:
    int old_ = -1;
    bool entered_ = false;
};

}  // namespace tardy::test
