// SPDX-License-Identifier: Apache-2.0
// The kill switch attacked: races with inject, processes it must not signal, foreign pins,
// a hostile environment, garbage and slow clients on the agent's socket. Each test is a
// reproduction of a way the rollback once broke (issue 7).
#include <bpf/bpf.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

#include "../common/harness.hpp"
#include "sys/fd.hpp"
#include "sys/paths.hpp"

using namespace tardy;
using namespace tardy::test;
namespace fs = std::filesystem;

namespace {

// Processes whose environment names this run directory and whose command line is an agent.
std::vector<pid_t> agents_of(const std::string& run_dir) {
    std::vector<pid_t> out;
    for (const auto& e : fs::directory_iterator("/proc")) {
        std::string n = e.path().filename();
        if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
        std::string cmd = read_all(e.path() / "cmdline");
        if (cmd.find(std::string("\0agent", 6)) == std::string::npos) continue;
        std::string env = read_all(e.path() / "environ");
        if (env.find("TARDY_RUN_DIR=" + run_dir + std::string("\0", 1)) != std::string::npos &&
            process_alive(std::stoi(n)))
            out.push_back(std::stoi(n));
    }
    return out;
}

bool one_line_error(const std::string& err) {
    return !err.empty() && err.find('\n') == err.size() - 1 && err.rfind("tardy", 0) == 0;
}

// Sends one line to the agent's socket and returns the reply line ("" when it closed).
std::string raw_call(const std::string& sock, const std::string& line) {
    Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "<connect failed>";
    (void)!send(s.get(), line.data(), line.size(), MSG_NOSIGNAL);
    std::string in;
    char buf[4096];
    timeval tv{5, 0};
    setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (ssize_t n; (n = read(s.get(), buf, sizeof buf)) > 0;) {
        in.append(buf, n);
        if (in.back() == '\n') break;
    }
    return in;
}

Fd connect_to(const std::string& sock) {
    Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Fd();
    return s;
}

class KillLab : public Lab {
protected:
    CmdResult tardy_env(const std::vector<std::string>& env, std::vector<std::string> args) {
        std::vector<std::string> argv{"env"};
        argv.insert(argv.end(), env.begin(), env.end());
        argv.push_back(build_dir() + "/tardy");
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_cmd(argv);
        return r ? *r : CmdResult{};
    }
    std::vector<std::string> exp_loss() { return {"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "100%"}; }
};

// 12. An entry kill cannot decode is set aside and reported, not retried forever.
TEST_F(KillLab, AnUndecodableJournalEntryNeverBlocksKill) {
    fs::create_directories(run_dir_);
    std::ofstream(run_dir_ + "/journal") << "+ 1 qdisc 4026531840 1 lo not-a-qdisc-record\n"
                                         << "+ 2 clsact 4026531840 1 lo zz:yy\n";
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.out << k.err;
    EXPECT_NE(k.out.find("set aside 2"), std::string::npos) << k.out;
    EXPECT_FALSE(fs::exists(run_dir_ + "/journal"));
    EXPECT_TRUE(fs::exists(run_dir_ + "/journal.rejected"));
    auto again = tardy({"kill"});
    EXPECT_EQ(again.status, 0) << again.err;
    EXPECT_NE(again.out.find("nothing to do"), std::string::npos) << again.out;
}

// 1. An inject racing kill must never leave an agent that kill calls clean, nor two agents.
TEST_F(KillLab, KillRacingInjectsNeverLeavesAnInvisibleAgent) {
    for (int round = 0; round < 4; round++) {
        std::vector<std::thread> ts;
        std::atomic<int> killed_clean{0};
        for (int i = 0; i < 6; i++)
            ts.emplace_back([&, i] {
                (void)tardy({"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "100%", "--name",
                             "r" + std::to_string(round) + "-" + std::to_string(i)});
            });
        ts.emplace_back([&] {
            sleep_ms(20 * round);
            if (tardy({"kill"}).status == 0) killed_clean++;
        });
        for (auto& t : ts) t.join();
        auto agents = agents_of(run_dir_);
        ASSERT_LE(agents.size(), 1u) << "round " << round << ": two agents serve one run directory";
        auto l = list_json();
        size_t listed = l["injections"].size();
        if (agents.empty()) {
            EXPECT_EQ(probe(kExp, "udp", false, 10).answered(), 10) << "round " << round << ": a fault with no agent";
        } else if (listed == 0) {
            // An agent with no injection is about to leave; it must not hold a fault.
            EXPECT_EQ(probe(kExp, "udp", false, 10).answered(), 10) << "round " << round << ": an invisible fault";
        }
        auto k = tardy({"kill"});
        EXPECT_EQ(k.status, 0) << k.out << k.err;
        EXPECT_NE(k.out.find("clean"), std::string::npos);
        for (int i = 0; i < 40 && !agents_of(run_dir_).empty(); i++) sleep_ms(50);
        EXPECT_TRUE(agents_of(run_dir_).empty()) << "round " << round << ": an agent outlived a clean kill";
        EXPECT_EQ(probe(kExp, "udp", false, 10).answered(), 10) << "round " << round << ": loss after a clean kill";
    }
}

// 6. Only a process proven to be this run directory's agent is signalled.
TEST_F(KillLab, KillSignalsNoProcessAPidFileOrSymlinkNames) {
    fs::create_directories(run_dir_);
    // A process whose command line looks like an agent's, named by the pid file.
    int out = -1;
    auto decoy = spawn_cmd({"sh", "-c", "sleep 30", "tardy", "agent"}, &out);
    ASSERT_TRUE(decoy);
    Fd decoy_out(out);
    std::ofstream(run_dir_ + "/agent.pid") << *decoy << "\n";
    // A process holding a file that agent.lock points to.
    std::string target = run_dir_ + "-victim";
    std::ofstream(target) << "x";
    auto holder = spawn_cmd({"sh", "-c", "exec 9<" + target + "; sleep 30"}, nullptr);
    ASSERT_TRUE(holder);
    // until the holder has opened the file (its fd 9)
    eventually([&] { return fs::exists("/proc/" + std::to_string(*holder) + "/fd/9"); }, 2000, 5);
    fs::create_symlink(target, run_dir_ + "/agent.lock");
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.out << k.err;
    EXPECT_TRUE(process_alive(*decoy)) << "kill signalled the process the pid file names";
    EXPECT_TRUE(process_alive(*holder)) << "kill signalled the holder of agent.lock's symlink target";
    EXPECT_FALSE(fs::is_symlink(run_dir_ + "/agent.lock"));
    stop_process(*decoy, 100);
    stop_process(*holder, 100);
    fs::remove(target);
}

TEST_F(KillLab, KillLeavesAnotherInstancesAgentAlone) {
    std::string other_run = run_dir_ + "-b", other_bpffs = bpffs_ + "b";
    std::vector<std::string> env{"TARDY_RUN_DIR=" + other_run, "TARDY_BPFFS=" + other_bpffs};
    auto r = tardy_env(env, {"inject", "--cgroup", lab_->cgroup_rel(kCtl), "--loss", "100%"});
    ASSERT_EQ(r.status, 0) << r.err;
    std::string other_pid = read_all(other_run + "/agent.pid");
    fs::create_directories(run_dir_);
    std::ofstream(run_dir_ + "/agent.pid") << other_pid;
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.err;
    EXPECT_TRUE(process_alive(std::stoi(other_pid))) << "kill stopped another instance's agent";
    EXPECT_EQ(probe(kCtl, "udp", false, 10).answered(), 0) << "kill removed another instance's fault";
    EXPECT_EQ(tardy_env(env, {"kill"}).status, 0);
    EXPECT_EQ(probe(kCtl, "udp", false, 10).answered(), 10);
    fs::remove_all(other_run);
}

// 5. A foreign map pinned under our name is inspected, reported and left alone.
TEST_F(KillLab, KillReportsAForeignControlPinAndDoesNotCrash) {
    ASSERT_TRUE(ensure_bpffs_dir(bpffs_));
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "foreign", 4, 64, 1, nullptr);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(bpf_obj_pin(fd, (bpffs_ + "/tardy_control").c_str()), 0);
    close(fd);
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 1) << k.out << k.err;
    EXPECT_NE(k.err.find("not tardy's"), std::string::npos) << k.err;
    EXPECT_TRUE(fs::exists(bpffs_ + "/tardy_control")) << "a foreign pin was removed";
    fs::remove(bpffs_ + "/tardy_control");
    fs::remove(bpffs_);
}

TEST_F(KillLab, KillWithAnUnusableBpffsPathReportsAndFinishes) {
    for (const std::string& b : std::vector<std::string>{"/sys/fs/bpf/a.b", "relative/dir", "/sys/fs/bpf/" + std::string(300, 'x')}) {
        auto k = tardy_env({"TARDY_BPFFS=" + b}, {"kill"});
        EXPECT_LT(k.status, 128) << b << ": kill crashed: " << k.err;
        EXPECT_NE(k.err.find("TARDY_BPFFS"), std::string::npos) << b << ": " << k.err;
    }
    // With a hung agent (so it removes nothing itself), the run directory's steps still
    // happen: the agent is ended, its socket and pid file go, and kill says what it skipped.
    inject({"--loss", "100%"});
    pid_t a = agent_pid();
    ASSERT_GT(a, 0);
    ASSERT_EQ(::kill(a, SIGSTOP), 0);
    auto k = tardy_env({"TARDY_BPFFS=/sys/fs/bpf/a.b"}, {"kill"});
    EXPECT_EQ(k.status, 1) << k.out << k.err;
    EXPECT_TRUE(eventually([&] { return !process_alive(a); }, 3000)) << "kill left the agent running: " << k.err;
    EXPECT_FALSE(fs::exists(run_dir_ + "/agent.sock")) << k.err;
    EXPECT_FALSE(fs::exists(run_dir_ + "/agent.pid")) << k.err;
}

// 9, 10. A bad environment is one line and exit 2, fast, with nothing left behind.
TEST_F(KillLab, BadEnvironmentIsRefusedAtOnceWithNothingLeft) {
    std::string ro = run_dir_ + "-ro";
    fs::create_directories(ro);
    ASSERT_EQ(mount("tmpfs", ro.c_str(), "tmpfs", MS_RDONLY, nullptr), 0);
    std::string sockdir = run_dir_ + "-sockdir";
    fs::create_directories(sockdir + "/agent.sock");
    std::string outside = "/tmp/" + name_ + "-nobpffs/tardy";
    struct Case {
        std::string env, needle;
    };
    for (const auto& c : std::vector<Case>{{"TARDY_RUN_DIR=/tmp/" + std::string(120, 'r'), "too long"},
                                           {"TARDY_RUN_DIR=relative", "absolute"},
                                           {"TARDY_RUN_DIR=" + ro, "read-only"},
                                           {"TARDY_RUN_DIR=" + sockdir, "not a socket"},
                                           {"TARDY_BPFFS=/sys/fs/bpf/a.b", "dot"},
                                           {"TARDY_BPFFS=rel", "absolute"},
                                           {"TARDY_BPFFS=" + outside, "not on a bpffs"},
                                           {"TARDY_BPFFS=/sys/fs/bpf/" + std::string(300, 'b'), "too long"}}) {
        double t0 = mono_ms();
        auto r = tardy_env({c.env}, exp_loss());
        EXPECT_EQ(r.status, 2) << c.env << ": " << r.err;
        EXPECT_LT(mono_ms() - t0, 1500) << c.env << ": slow refusal";
        EXPECT_TRUE(one_line_error(r.err)) << c.env << ": " << r.err;
        EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.env << ": " << r.err;
        EXPECT_TRUE(agents_of(run_dir_).empty());
    }
    EXPECT_FALSE(fs::exists("/tmp/" + name_ + "-nobpffs")) << "a bpffs path outside bpffs was created";
    EXPECT_EQ(read_all("/proc/mounts").find(name_ + "-nobpffs"), std::string::npos) << "bpffs mounted outside /sys/fs/bpf";
    EXPECT_FALSE(fs::exists(ro + "/agent.lock"));
    EXPECT_FALSE(fs::exists(sockdir + "/agent.lock")) << "a failed start left its lock";
    EXPECT_EQ(probe(kExp, "udp", false, 10).answered(), 10);
    umount(ro.c_str());
    fs::remove_all(ro);
    fs::remove_all(sockdir);
}

// 11. Unprivileged users are told they need root, not that nothing is running.
TEST_F(KillLab, NonRootIsToldItNeedsRoot) {
    inject({"--loss", "100%"}, "held");
    for (auto args : std::vector<std::vector<std::string>>{{"list"}, {"stop", "held"}, {"stop", "--all"}, {"kill"}}) {
        std::vector<std::string> argv{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      build_dir() + "/tardy"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_cmd(argv);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 2) << args[0] << ": " << r->out << r->err;
        EXPECT_NE(r->err.find("root"), std::string::npos) << r->err;
        EXPECT_EQ(r->out.find("no active injections"), std::string::npos) << r->out;
    }
    EXPECT_EQ(list_json()["injections"].size(), 1u);
}

// 13. Empty values and option-like names are mistakes, not defaults.
TEST_F(KillLab, EmptyValuesAndOptionLikeNamesAreRefused) {
    for (auto extra : std::vector<std::vector<std::string>>{
             {"--for", ""}, {"--name", ""}, {"--name", "-x"}, {"--loss", ""}, {"--device", ""}}) {
        auto args = exp_loss();
        args.insert(args.end(), extra.begin(), extra.end());
        auto r = tardy(args);
        EXPECT_EQ(r.status, 2) << extra[0] << " '" << extra[1] << "': " << r.err;
        EXPECT_TRUE(one_line_error(r.err)) << r.err;
    }
    EXPECT_TRUE(agents_of(run_dir_).empty()) << "a refused inject started an agent";
}

TEST_F(KillLab, AClientWhoseAgentDiesMidRequestSaysSo) {
    fs::create_directories(run_dir_);
    Fd l(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, (run_dir_ + "/agent.sock").c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(l.get(), 4), 0);
    std::thread t([&] {
        for (int i = 0; i < 3; i++) {  // the client may first check that something listens
            Fd c(accept(l.get(), nullptr, nullptr));
            char buf[256];
            if (read(c.get(), buf, sizeof buf) > 0) break;  // got the request: "die" without a reply
        }
    });
    auto r = tardy({"list"});
    t.join();
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("exited before it answered"), std::string::npos) << r.err;
    fs::remove(run_dir_ + "/agent.sock");
}

// 3. Garbage on the socket gets an error reply; the agent and its fault live on.
TEST_F(KillLab, GarbageOnTheSocketIsAnsweredAndTheAgentLivesOn) {
    inject({"--loss", "100%"}, "kept");
    pid_t agent = agent_pid();
    std::string deep(100000, '[');
    for (const std::string& g : {std::string("[]\n"), std::string("1\n"), std::string("null\n"),
                                 std::string("{\"op\":5}\n"), std::string("{\"op\":\"inject\"}\n"),
                                 std::string("{\"op\":\"stop\",\"name\":7}\n"), deep + "\n",
                                 std::string("{\"op\":\"inject\",\"cgroup\":[],\"net\":1,\"for_ns\":-1}\n"),
                                 std::string("\xff\xfe\n")}) {
        std::string rep = raw_call(run_dir_ + "/agent.sock", g);
        auto j = nlohmann::json::parse(rep, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << g.substr(0, 40) << ": " << rep;
        if (!j.is_discarded()) {
            EXPECT_EQ(j.value("ok", true), false) << g.substr(0, 40) << ": " << rep;
        }
        ASSERT_TRUE(process_alive(agent)) << "the agent died of: " << g.substr(0, 40);
    }
    EXPECT_EQ(list_json()["injections"].size(), 1u);
    EXPECT_EQ(probe(kExp, "udp", false, 10).answered(), 0);
}

// 4. Slow and silent clients delay nobody: not list, not the lease, not expiry.
TEST_F(KillLab, SlowAndSilentClientsDelayNothing) {
    inject({"--loss", "100%", "--for", "4s"}, "timed");
    double t0 = mono_ms();
    std::vector<Fd> silent;
    for (int i = 0; i < 10; i++) silent.push_back(connect_to(run_dir_ + "/agent.sock"));
    std::atomic<bool> stop{false};
    std::thread slow([&] {
        Fd s = connect_to(run_dir_ + "/agent.sock");
        std::string req = "{\"op\":\"list\"}";
        for (size_t i = 0; !stop && i < req.size(); i++) {
            (void)!send(s.get(), &req[i], 1, MSG_NOSIGNAL);
            sleep_ms(300);
        }
    });
    double l0 = mono_ms();
    auto l = list_json();
    double list_ms = mono_ms() - l0;
    EXPECT_LT(list_ms, 1000) << "list waited for other clients";
    EXPECT_EQ(l["injections"].size(), 1u);
    // Past the 1 s lease: the fault must still hold (the lease was renewed all along).
    sleep_ms(static_cast<int>(2500 - (mono_ms() - t0)));
    EXPECT_EQ(probe(kExp, "udp", false, 10, 2, 60).answered(), 0) << "the fault lapsed while clients dawdled";
    EXPECT_TRUE(answers_within(kExp, static_cast<int>(4300 - (mono_ms() - t0)))) << "the fault outlived --for";
    EXPECT_EQ(probe(kExp, "udp", false, 10).answered(), 10) << "the fault outlived --for";
    stop = true;
    slow.join();
}

// Many clients at once, for a while: inject, stop, list and kill in every order. Then a last
// kill must be clean, and from outside (the kernel's program list, /proc, bpffs) nothing of
// tardy is left.
TEST_F(KillLab, ManyClientsAtOnceLeaveNothingBehind) {
    std::atomic<bool> stop{false};
    std::atomic<int> ops{0}, crashes{0};
    auto worker = [&](unsigned seed) {
        std::vector<std::vector<std::string>> menu{
            {"inject", "--cgroup", lab_->cgroup_rel(kExp), "--loss", "50%", "--name", "a", "--for", "2s"},
            {"inject", "--cgroup", lab_->cgroup_rel(kCtl), "--loss", "10%", "--name", "b"},
            {"inject", "--cgroup", lab_->cgroup_rel(kExp), "--stall", "write=5ms:10%", "--name", "c"},
            {"stop", "a"}, {"stop", "--all"}, {"list"}, {"list", "--json"}, {"kill"}};
        while (!stop) {
            seed = seed * 1103515245 + 12345;
            const auto& cmd = menu[(seed >> 16) % menu.size()];
            auto r = tardy(cmd);
            if (r.status >= 128 && crashes++ < 3)
                std::printf("  crash: tardy %s %s: status %d: %s\n", cmd[0].c_str(), cmd[1].c_str(), r.status,
                            r.err.c_str());
            ops++;
        }
    };
    std::vector<std::thread> ts;
    for (unsigned i = 0; i < 4; i++) ts.emplace_back(worker, i * 7919 + 1);
    sleep_ms(8000);
    stop = true;
    for (auto& t : ts) t.join();
    std::printf("  %d commands from 4 clients in 8 s\n", ops.load());
    EXPECT_EQ(crashes, 0) << "a command crashed";
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.out << k.err;
    EXPECT_NE(k.out.find("clean"), std::string::npos) << k.out;
    for (int i = 0; i < 60 && (count_our_programs() || !agents_of(run_dir_).empty()); i++) sleep_ms(50);
    EXPECT_EQ(count_our_programs(), 0) << "a program of ours is still loaded";
    EXPECT_TRUE(agents_of(run_dir_).empty()) << "an agent is alive after a clean kill";
    EXPECT_FALSE(fs::exists(bpffs_)) << "pins left";
    EXPECT_FALSE(fs::exists(run_dir_ + "/agent.sock"));
    EXPECT_EQ(probe(kExp, "udp", false, 20).answered(), 20);
    EXPECT_EQ(probe(kCtl, "udp", false, 20).answered(), 20);
}

}  // namespace
