#include "kill.hpp"

#include <bpf/bpf.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "fd.hpp"
#include "journal.hpp"
#include "stall_object.hpp"
#include "tardy_abi.hpp"

namespace fs = std::filesystem;

namespace tardy {
namespace {

void sleep_ms(int ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1'000'000L};
    nanosleep(&ts, nullptr);
}

bool alive(pid_t pid) {
    if (kill(pid, 0) != 0) return false;
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(st, line);
    auto close = line.rfind(')');
    return !(close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z');
}

// Processes holding the agent's lock file open: the agent, whatever its pid file says.
std::set<pid_t> lock_holders(const std::string& lock) {
    std::set<pid_t> out;
    std::error_code ec;
    auto want = fs::weakly_canonical(lock, ec);
    for (const auto& pe : fs::directory_iterator("/proc", ec)) {
        std::string name = pe.path().filename();
        if (name.empty() || name[0] < '0' || name[0] > '9') continue;
        std::error_code ec2;
        for (const auto& fe : fs::directory_iterator(pe.path() / "fd", ec2)) {
            std::error_code ec3;
            if (fs::read_symlink(fe.path(), ec3) == want) {
                out.insert(std::stoi(name));
                break;
            }
        }
    }
    return out;
}

bool is_tardy_agent(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return cmd.find("tardy") != std::string::npos && cmd.find(std::string("\0agent", 6)) != std::string::npos;
}

void disarm(const Paths& p, KillReport& rep) {
    if (!fs::exists(p.control_pin())) return;
    Fd fd(bpf_obj_get(p.control_pin().c_str()));
    if (!fd.valid()) {
        rep.problems.push_back("open control map " + p.control_pin() + ": " + std::strerror(errno));
        return;
    }
    __u32 key = 0;
    tardy_control c{};
    (void)bpf_map_lookup_elem(fd.get(), &key, &c);
    c.armed = 0;
    if (bpf_map_update_elem(fd.get(), &key, &c, BPF_ANY) != 0) {
        rep.problems.push_back("disarm control map: " + std::string(std::strerror(errno)));
        return;
    }
    rep.done.push_back("disarmed the control map: every program passes traffic untouched");
}

void stop_agent(const Paths& p, KillReport& rep) {
    std::set<pid_t> pids = lock_holders(p.lock_file());
    std::ifstream pf(p.pid_file());
    pid_t recorded = 0;
    if (pf >> recorded && recorded > 0 && alive(recorded) && is_tardy_agent(recorded)) pids.insert(recorded);
    pids.erase(getpid());
    for (pid_t pid : pids) {
        kill(pid, SIGTERM);
        kill(pid, SIGCONT);  // a stopped agent handles SIGTERM only once it runs again
        bool gone = false;
        for (int i = 0; i < 40 && !(gone = !alive(pid)); i++) sleep_ms(50);
        if (!gone) {
            kill(pid, SIGKILL);
            for (int i = 0; i < 40 && !(gone = !alive(pid)); i++) sleep_ms(25);
            rep.done.push_back("killed agent " + std::to_string(pid) + " (SIGKILL: it did not end on SIGTERM)");
        } else {
            rep.done.push_back("stopped agent " + std::to_string(pid));
        }
        if (!gone) rep.problems.push_back("agent " + std::to_string(pid) + " is still alive after SIGKILL");
    }
}

void undo_journal(const Paths& p, KillReport& rep) {
    Journal j(p.journal());
    int corrupt = 0;
    for (const auto& e : j.open_entries(&corrupt)) {
        auto r = undo_journal_entry(e);
        std::string what = e.kind == "qdisc" ? "restored the root qdisc of " : "removed the clsact filter from ";
        if (r) {
            (void)j.done(e.id);
            rep.done.push_back(what + e.ifname);
        } else {
            rep.problems.push_back(r.error().message);
        }
    }
    if (corrupt) rep.done.push_back("ignored " + std::to_string(corrupt) + " unreadable journal line(s)");
    (void)j.compact();
}

void remove_files(const Paths& p, KillReport& rep) {
    std::error_code ec;
    if (fs::exists(p.control_pin(), ec)) {
        if (unlink(p.control_pin().c_str()) == 0)
            rep.done.push_back("removed pin " + p.control_pin());
        else
            rep.problems.push_back("remove pin " + p.control_pin() + ": " + std::strerror(errno));
    }
    rmdir(p.bpffs_dir.c_str());
    for (const auto& f : {p.socket(), p.pid_file(), p.lock_file()}) unlink(f.c_str());
}

}  // namespace

void resume_stalled(const Paths& p, KillReport& rep) {
    if (int n = resume_all_recorded(p.stalled_pin()); n > 0)
        rep.done.push_back("resumed " + std::to_string(n) + " stalled process(es)");
    std::error_code ec;
    if (fs::exists(p.stalled_pin(), ec) && unlink(p.stalled_pin().c_str()) == 0)
        rep.done.push_back("removed pin " + p.stalled_pin());
}

KillReport pull_kill_switch(const Paths& p) {
    KillReport rep;
    disarm(p, rep);
    stop_agent(p, rep);
    resume_stalled(p, rep);
    undo_journal(p, rep);
    remove_files(p, rep);
    return rep;
}

}  // namespace tardy
