// SPDX-License-Identifier: Apache-2.0
// deploy/kubernetes/tardy-daemonset.yaml, checked without a cluster: the objects and their
// API versions, a DaemonSet that runs `tardy agent` with flags the CLI has (from the built
// binary's --help) and a metrics address the agent's parser takes, hostPID, the capabilities
// of packaging/tardy.service.in, every volumeMount backed by a hostPath volume at the same
// path, the run directory and bpffs where TARDY_RUN_DIR and TARDY_BPFFS say, tolerations
// for every taint. Broken copies of the manifest must fail the same checks.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agent/metrics_http.hpp"
#include "sys/process.hpp"

namespace tardy {
namespace {

namespace fs = std::filesystem;

const char* const kManifest = "deploy/kubernetes/tardy-daemonset.yaml";

fs::path exe_dir() {
    std::error_code ec;
    return fs::read_symlink("/proc/self/exe", ec).parent_path();
}

// The checkout: the first ancestor of this binary's directory, else of the current one,
// that holds the manifest.
fs::path deploy_root() {
    std::error_code ec;
    for (fs::path start : {exe_dir(), fs::current_path(ec)})
        for (fs::path p = start; !p.empty(); p = p.parent_path()) {
            if (fs::exists(p / kManifest)) return p;
            if (p == p.root_path()) break;
        }
    return {};
}

// n[path[0]][path[1]]...: an undefined node where any step is missing (yaml-cpp throws when
// a missing key is indexed further, and inserts on non-const lookups: this does neither).
YAML::Node get(const YAML::Node& n, std::initializer_list<const char*> path) {
    YAML::Node cur(n);
    for (const char* k : path) {
        if (!cur || !cur.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
        const YAML::Node& c = cur;
        YAML::Node next(c[k]);
        if (!next) return YAML::Node(YAML::NodeType::Undefined);
        cur.reset(next);
    }
    return cur;
}

std::string str(const YAML::Node& n) { return n && n.IsScalar() ? n.as<std::string>() : ""; }
std::string str(const YAML::Node& n, std::initializer_list<const char*> path) { return str(get(n, path)); }
bool yes(const YAML::Node& n, std::initializer_list<const char*> path) { return str(n, path) == "true"; }

// "--metrics", "--verbose", ... as `tardy agent --help` lists them.
std::set<std::string> flags_in_help(const std::string& help) {
    std::set<std::string> out;
    std::regex opt(R"(^\s+(?:-\w,)?(--[a-z][a-z0-9-]*))");
    std::istringstream in(help);
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_search(line, m, opt)) out.insert(m[1]);
    }
    return out;
}

// "BPF", "NET_ADMIN", ... from the unit's CapabilityBoundingSet= line.
std::set<std::string> unit_capabilities(const std::string& unit) {
    std::set<std::string> out;
    std::istringstream in(unit);
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("CapabilityBoundingSet=")) continue;
        std::istringstream caps(line.substr(line.find('=') + 1));
        for (std::string c; caps >> c;) out.insert(c.starts_with("CAP_") ? c.substr(4) : c);
    }
    return out;
}

std::string env_of(const YAML::Node& c, const std::string& name, const std::string& dflt) {
    for (const auto& e : get(c, {"env"}))
        if (str(e["name"]) == name) return str(e["value"]);
    return dflt;
}

struct CliFacts {
    std::set<std::string> agent_flags;
    std::set<std::string> capabilities;  // what the systemd unit grants the agent
    std::string version;                 // `tardy --version`
};

// Every problem found, one line each; empty when the manifest is sound.
std::vector<std::string> check_manifest(const std::vector<YAML::Node>& docs, const CliFacts& cli) {
    std::vector<std::string> bad;
    auto fail = [&](const std::string& s) { bad.push_back(s); };
    const std::vector<std::pair<std::string, std::string>> want = {
        {"Namespace", "v1"}, {"ServiceAccount", "v1"}, {"DaemonSet", "apps/v1"}};
    if (docs.size() != want.size())
        fail("expected 3 documents (Namespace, ServiceAccount, DaemonSet), found " + std::to_string(docs.size()));
    for (size_t i = 0; i < std::min(docs.size(), want.size()); ++i)
        if (str(docs[i], {"kind"}) != want[i].first || str(docs[i], {"apiVersion"}) != want[i].second)
            fail("document " + std::to_string(i + 1) + ": kind " + str(docs[i], {"kind"}) + " apiVersion " +
                 str(docs[i], {"apiVersion"}) + ", expected " + want[i].first + " " + want[i].second);
    if (!bad.empty()) return bad;
    const std::string ns = str(docs[0], {"metadata", "name"});
    if (str(docs[0], {"metadata", "labels", "pod-security.kubernetes.io/enforce"}) != "privileged")
        fail("Namespace: pod-security.kubernetes.io/enforce must be privileged (hostPID, hostPath, capabilities)");
    for (size_t i = 1; i < docs.size(); ++i)
        if (str(docs[i], {"metadata", "namespace"}) != ns) fail(str(docs[i], {"kind"}) + ": not in namespace " + ns);
    const YAML::Node ds = get(docs[2], {"spec"});
    const YAML::Node pod = get(ds, {"template", "spec"});
    const YAML::Node labels = get(ds, {"template", "metadata", "labels"});
    for (const auto& kv : get(ds, {"selector", "matchLabels"})) {
        std::string k = kv.first.as<std::string>();
        if (str(labels, {k.c_str()}) != str(kv.second))
            fail("DaemonSet: selector label " + k + " is not on the pod template");
    }
    if (str(pod, {"serviceAccountName"}) != str(docs[1], {"metadata", "name"}))
        fail("DaemonSet: serviceAccountName is not the ServiceAccount " + str(docs[1], {"metadata", "name"}));
    if (!yes(pod, {"hostPID"}))
        fail("DaemonSet: hostPID must be true (/proc/PID/ns/net of a pod's processes, stalled PIDs)");
    if (yes(pod, {"hostNetwork"}))
        fail("DaemonSet: hostNetwork is not needed (the agent enters each target's namespace)");
    bool all_taints = false;
    for (const auto& t : get(pod, {"tolerations"}))
        all_taints |= str(t, {"operator"}) == "Exists" && !get(t, {"key"}) && !get(t, {"effect"});
    if (!all_taints) fail("DaemonSet: no toleration {operator: Exists} for every taint");
    if (str(pod, {"nodeSelector", "kubernetes.io/arch"}) != "amd64")
        fail("DaemonSet: nodeSelector kubernetes.io/arch must be amd64 (tardy is x86_64 only)");

    std::map<std::string, std::string> volumes;  // name -> the node's path
    for (const auto& v : get(pod, {"volumes"})) {
        if (!get(v, {"hostPath"})) fail("volume " + str(v, {"name"}) + " is not a hostPath: the state is the node's");
        volumes[str(v, {"name"})] = str(v, {"hostPath", "path"});
    }
    std::set<std::string> used;
    const YAML::Node containers = get(pod, {"containers"});
    if (!containers.IsSequence() || containers.size() == 0) {
        fail("DaemonSet: no containers");
        return bad;
    }
    int agents = 0;
    for (size_t ci = 0; ci < containers.size(); ++ci) {
        const YAML::Node c = containers[ci];
        const std::string name = "container " + str(c, {"name"});
        if (!str(c, {"image"}).ends_with(":" + cli.version))
            fail(name + ": image " + str(c, {"image"}) + " is not of this version (tardy " + cli.version + ")");
        std::vector<std::string> cmd;
        for (const char* part : {"command", "args"})
            for (const auto& a : get(c, {part})) cmd.push_back(str(a));
        std::string prog = cmd.empty() ? "" : fs::path(cmd[0]).filename().string();
        if (cmd.size() >= 2 && prog == "tardy" && cmd[1] == "agent") {
            if (++agents > 1) fail(name + ": a second container runs tardy agent (one agent per node)");
            for (size_t i = 2; i < cmd.size(); ++i) {
                if (!cmd[i].starts_with("--")) continue;
                std::string flag = cmd[i].substr(0, cmd[i].find('='));
                if (!cli.agent_flags.count(flag)) fail(name + ": `tardy agent` has no option " + flag);
                if (flag != "--metrics" || i + 1 >= cmd.size()) continue;
                auto at = parse_listen_address(cmd[i + 1]);
                if (!at) {
                    fail(name + ": --metrics " + cmd[i + 1] + ": " + at.error().message);
                    continue;
                }
                std::string port;
                for (const auto& p : get(c, {"ports"}))
                    if (str(p, {"name"}) == "metrics") port = str(p, {"containerPort"});
                if (std::to_string(at->second) != port)
                    fail(name + ": --metrics port " + std::to_string(at->second) +
                         " is not the containerPort named metrics");
                if (at->first.starts_with("127.") || at->first == "::1")
                    fail(name + ": --metrics on loopback: kubelet's probes reach the pod IP only");
            }
            for (const char* probe : {"readinessProbe", "livenessProbe"})
                if (str(c, {probe, "httpGet", "path"}) != "/metrics" || str(c, {probe, "httpGet", "port"}) != "metrics")
                    fail(name + ": " + probe + " must GET /metrics on the port named metrics");
            if (get(c, {"resources", "limits", "cpu"}))
                fail(name + ": a CPU limit throttles the agent: stalls last longer, leases renew late");
        } else if (prog != "tardy" && prog != "sleep") {
            fail(name + ": runs neither tardy nor sleep");
        }
        if (!get(c, {"resources", "limits", "memory"})) fail(name + ": no memory limit");
        const YAML::Node sc = get(c, {"securityContext"});
        bool privileged = yes(sc, {"privileged"});
        std::set<std::string> added;
        for (const auto& a : get(sc, {"capabilities", "add"})) {
            std::string cap = str(a);
            added.insert(cap.starts_with("CAP_") ? cap.substr(4) : cap);
        }
        if (!privileged) {
            for (const auto& cap : cli.capabilities)
                if (!added.count(cap))
                    fail(name + ": capability " + cap + " missing (packaging/tardy.service.in has it)");
            bool drops_all = false;
            for (const auto& d : get(sc, {"capabilities", "drop"})) drops_all |= str(d) == "ALL";
            if (!drops_all) fail(name + ": capabilities.drop must be [ALL]: only what tardy needs");
        }
        // The API server refuses this pair (a capability that can undo no_new_privs).
        if (str(sc, {"allowPrivilegeEscalation"}) == "false" && (privileged || added.count("SYS_ADMIN")))
            fail(name + ": allowPrivilegeEscalation: false is refused with SYS_ADMIN or privileged");
        if (get(sc, {"runAsUser"}) && str(sc, {"runAsUser"}) != "0") fail(name + ": tardy runs as root (uid 0)");

        std::set<std::string> paths;
        for (const auto& m : get(c, {"volumeMounts"})) {
            std::string v = str(m, {"name"}), path = str(m, {"mountPath"});
            used.insert(v);
            paths.insert(path);
            if (!volumes.count(v))
                fail(name + ": volumeMount " + v + " has no volume");
            else if (volumes[v] != path)
                fail(name + ": " + path + " mounts the node's " + volumes[v] + ": tardy and the node must agree");
        }
        std::string run_dir = env_of(c, "TARDY_RUN_DIR", "/run/tardy");
        std::string bpffs = env_of(c, "TARDY_BPFFS", "/sys/fs/bpf/tardy");
        for (const std::string& p : {std::string("/sys/fs/bpf"), std::string("/sys/fs/cgroup"), run_dir})
            if (!paths.count(p)) fail(name + ": nothing mounted at " + p);
        if (!bpffs.starts_with("/sys/fs/bpf/")) fail(name + ": TARDY_BPFFS " + bpffs + " is not on the bpffs mount");
        const YAML::Node first = containers[0];
        if (ci > 0 && YAML::Dump(sc) != YAML::Dump(get(first, {"securityContext"})))
            fail(name + ": securityContext differs from " + str(first, {"name"}) + "'s (kill needs the same)");
        if (ci > 0 && YAML::Dump(get(c, {"volumeMounts"})) != YAML::Dump(get(first, {"volumeMounts"})))
            fail(name + ": volumeMounts differ from " + str(first, {"name"}) + "'s (kill needs the same state)");
    }
    if (agents == 0) fail("DaemonSet: no container runs `tardy agent`");
    for (const auto& [v, path] : volumes)
        if (!used.count(v)) fail("volume " + v + " (" + path + ") is mounted nowhere");
    return bad;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += "\n  " + s;
    return out;
}

class DeployManifest : public ::testing::Test {
protected:
    void SetUp() override {
        root = deploy_root();
        ASSERT_FALSE(root.empty()) << "no " << kManifest << " above the test binary or the current directory";
        docs = YAML::LoadAllFromFile((root / kManifest).string());
        std::string bin = (exe_dir() / "tardy").string();
        ASSERT_TRUE(fs::exists(bin)) << bin << " is missing: build it first (make)";
        auto help = run_cmd({bin, "agent", "--help"});
        ASSERT_TRUE(help && help->status == 0) << "tardy agent --help failed";
        cli.agent_flags = flags_in_help(help->out);
        ASSERT_TRUE(cli.agent_flags.count("--metrics")) << help->out;
        auto version = run_cmd({bin, "--version"});
        ASSERT_TRUE(version && version->out.starts_with("tardy ")) << "tardy --version failed";
        cli.version = version->out.substr(6, version->out.find_first_of(" \n", 6) - 6);
        std::ifstream unit(root / "packaging/tardy.service.in");
        std::stringstream s;
        s << unit.rdbuf();
        cli.capabilities = unit_capabilities(s.str());
        ASSERT_GE(cli.capabilities.size(), 4u) << "no CapabilityBoundingSet= in packaging/tardy.service.in";
    }

    // A deep copy of the manifest, changed by `edit`, must fail with a problem naming `expect`.
    void expect_refused(const std::string& what, const std::function<void(std::vector<YAML::Node>&)>& edit,
                        const std::string& expect) {
        std::vector<YAML::Node> copy;
        for (const auto& d : docs) copy.push_back(YAML::Clone(d));
        edit(copy);
        auto bad = check_manifest(copy, cli);
        bool named =
            std::any_of(bad.begin(), bad.end(), [&](const std::string& s) { return s.find(expect) != s.npos; });
        EXPECT_TRUE(named) << what << ": expected a problem naming '" << expect << "', got:" << join(bad);
    }

    YAML::Node pod(std::vector<YAML::Node>& d) { return d[2]["spec"]["template"]["spec"]; }
    YAML::Node agent(std::vector<YAML::Node>& d) { return pod(d)["containers"][0]; }

    fs::path root;
    std::vector<YAML::Node> docs;
    CliFacts cli;
};

TEST_F(DeployManifest, PassesEveryCheck) {
    auto bad = check_manifest(docs, cli);
    EXPECT_TRUE(bad.empty()) << kManifest << ":" << join(bad);
}

TEST_F(DeployManifest, TheAgentContainerComesFirstAndCtlIdles) {
    ASSERT_EQ(docs.size(), 3u);
    const YAML::Node c = get(docs[2], {"spec", "template", "spec", "containers"});
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(str(c[0], {"name"}), "agent");
    EXPECT_EQ(str(c[1], {"name"}), "ctl");
    EXPECT_EQ(str(c[1]["command"][0]), "/usr/bin/sleep") << "scripts/build-image.sh puts sleep there";
    EXPECT_EQ(str(docs[2], {"spec", "template", "metadata", "annotations", "kubectl.kubernetes.io/default-container"}),
              "ctl") << "kubectl exec must land where the agent's exit cannot kill the command";
}

TEST_F(DeployManifest, FlagsAreReadFromTheHelp) {
    auto f = flags_in_help("Options:\n  -h,--help    Print\n  --exit-when-idle  Leave\n  --metrics TEXT  Serve\n");
    EXPECT_EQ(f, (std::set<std::string>{"--help", "--exit-when-idle", "--metrics"}));
    EXPECT_EQ(unit_capabilities("X=1\nCapabilityBoundingSet=CAP_BPF CAP_KILL\n"),
              (std::set<std::string>{"BPF", "KILL"}));
}

TEST_F(DeployManifest, BrokenCopiesAreRefused) {
    using Docs = std::vector<YAML::Node>;
    expect_refused("a mount without its volume", [&](Docs& d) { pod(d)["volumes"].remove(0); }, "has no volume");
    expect_refused("hostPID off", [&](Docs& d) { pod(d)["hostPID"] = false; }, "hostPID");
    expect_refused(
        "no SYS_ADMIN",
        [&](Docs& d) {
            agent(d)["securityContext"]["capabilities"]["add"] =
                YAML::Load("[BPF, PERFMON, NET_ADMIN, SYS_PTRACE, KILL]");
        },
        "capability SYS_ADMIN missing");
    expect_refused("a misspelt subcommand", [&](Docs& d) { agent(d)["command"][1] = "agnt"; },
                   "no container runs `tardy agent`");
    expect_refused("an unknown flag", [&](Docs& d) { agent(d)["command"][2] = "--metric"; }, "no option --metric");
    expect_refused("a bad metrics address", [&](Docs& d) { agent(d)["command"][3] = "localhost:9464"; },
                   "--metrics localhost:9464");
    expect_refused("metrics port not the containerPort", [&](Docs& d) { agent(d)["command"][3] = "0.0.0.0:9465"; },
                   "not the containerPort");
    expect_refused("metrics on loopback", [&](Docs& d) { agent(d)["command"][3] = "127.0.0.1:9464"; }, "loopback");
    expect_refused("no tolerations", [&](Docs& d) { pod(d).remove("tolerations"); }, "every taint");
    expect_refused("run dir elsewhere", [&](Docs& d) { agent(d)["env"][0]["value"] = "/run/elsewhere"; },
                   "nothing mounted at /run/elsewhere");
    expect_refused("a volume at another host path",
                   [&](Docs& d) { pod(d)["volumes"][2]["hostPath"]["path"] = "/var/tardy"; },
                   "mounts the node's /var/tardy");
    expect_refused("no_new_privs with SYS_ADMIN",
                   [&](Docs& d) { agent(d)["securityContext"]["allowPrivilegeEscalation"] = false; },
                   "allowPrivilegeEscalation");
    expect_refused("an old image", [&](Docs& d) { agent(d)["image"] = "tardy:0.0.1"; }, "not of this version");
    expect_refused("a wrong apiVersion", [&](Docs& d) { d[2]["apiVersion"] = "extensions/v1beta1"; }, "apiVersion");
    expect_refused("a missing document", [&](Docs& d) { d.pop_back(); }, "expected 3 documents");
    expect_refused(
        "ctl without the agent's capabilities",
        [&](Docs& d) { pod(d)["containers"][1]["securityContext"]["capabilities"]["add"] = YAML::Load("[BPF]"); },
        "differs from agent");
    EXPECT_TRUE(check_manifest(docs, cli).empty()) << "the edits above must have changed copies only";
}

}  // namespace
}  // namespace tardy
