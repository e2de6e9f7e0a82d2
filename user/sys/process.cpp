// SPDX-License-Identifier: Apache-2.0
#include "sys/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace tardy {
namespace {

int decode_status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

[[noreturn]] void exec_child(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
}

}  // namespace

Result<CmdResult> run_cmd(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return Error::sys("pipe", errno);
    pid_t pid = fork();
    if (pid < 0) return Error::sys("fork", errno);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        exec_child(argv);
    }
    close(out[1]);
    close(err[1]);
    CmdResult r;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            char buf[8192];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i ? r.err : r.out).append(buf, n);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r.status = decode_status(st);
    return r;
}

Result<pid_t> spawn_cmd(const std::vector<std::string>& argv, int* stdout_fd) {
    int out[2];
    if (pipe2(out, O_CLOEXEC)) return Error::sys("pipe", errno);
    pid_t pid = fork();
    if (pid < 0) return Error::sys("fork", errno);
    if (pid == 0) {
        dup2(out[1], 1);
        exec_child(argv);
    }
    close(out[1]);
    if (stdout_fd)
        *stdout_fd = out[0];
    else
        close(out[0]);
    return pid;
}

void stop_process(pid_t pid, int grace_ms) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    kill(pid, SIGCONT);
    for (int waited = 0; waited < grace_ms; waited += 10) {
        if (waitpid(pid, nullptr, WNOHANG) == pid) return;
        timespec ts{0, 10'000'000};
        nanosleep(&ts, nullptr);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

}  // namespace tardy
