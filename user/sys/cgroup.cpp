// SPDX-License-Identifier: Apache-2.0
#include "sys/cgroup.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

namespace fs = std::filesystem;

namespace tardy {
namespace {

bool hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool all_hex(const std::string& s) { return !s.empty() && std::all_of(s.begin(), s.end(), hex_digit); }

std::string trim_slashes(std::string s) {
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
}

bool is_container_id(const std::string& s) { return s.size() == 64 && all_hex(s); }

// A pod UID as kubelet writes it: 8-4-4-4-12 hex digits, or 32 hex digits (static pods).
bool is_pod_uid(const std::string& u) {
    if (u.size() == 32) return all_hex(u);
    if (u.size() != 36) return false;
    for (size_t i = 0; i < u.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (u[i] == '-')) return false;
        if (!dash && !hex_digit(u[i])) return false;
    }
    return true;
}

// Strips the first of `prefixes` that `s` starts with; false when none does.
template <size_t N>
bool strip_prefix(std::string& s, const char* const (&prefixes)[N]) {
    for (const char* p : prefixes) {
        if (s.starts_with(p)) {
            s.erase(0, std::char_traits<char>::length(p));
            return true;
        }
    }
    return false;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// What `kubectl get pod -o jsonpath='{..containerID}'` prints is "containerd://<id>",
// "cri-o://<id>" or "docker://<id>": accepted as the id.
std::string without_scheme(const std::string& s) {
    auto p = s.find("://");
    return p == std::string::npos ? s : s.substr(p + 3);
}

std::string short_ids(const std::map<std::string, std::string>& found) {
    std::string out;
    for (const auto& [id, dir] : found) out += (out.empty() ? "" : ", ") + id.substr(0, 12);
    return out;
}

}  // namespace

std::string container_id_of(const std::string& name) {
    static const char* const kScopes[] = {"docker-", "cri-containerd-", "nerdctl-", "crio-", "libpod-"};
    static const char* const kCgroupfs[] = {"libpod-", "crio-"};
    std::string s = name;
    if (s.ends_with(".scope")) {
        s.resize(s.size() - 6);
        if (!strip_prefix(s, kScopes)) return "";
    } else if (s.size() > 64 && !strip_prefix(s, kCgroupfs)) {
        return "";
    }
    return is_container_id(s) ? s : "";
}

std::string pod_uid_of(const std::string& name) {
    std::string uid;
    if (name.ends_with(".slice")) {
        std::string s = name.substr(0, name.size() - 6);
        auto pos = s.rfind("-pod");
        if (pos == std::string::npos) return "";
        std::string parent = s.substr(0, pos);
        if (!parent.ends_with("kubepods") && !parent.ends_with("kubepods-burstable") &&
            !parent.ends_with("kubepods-besteffort"))
            return "";
        uid = s.substr(pos + 4);
        if (uid.find('-') != std::string::npos) return "";  // systemd escapes the UID's dashes as '_'
        std::replace(uid.begin(), uid.end(), '_', '-');
    } else if (name.starts_with("pod")) {
        uid = name.substr(3);
    }
    return is_pod_uid(uid) ? uid : "";
}

Result<std::vector<pid_t>> parse_pids(const std::string& list, const std::string& opt) {
    std::vector<pid_t> out;
    size_t start = 0;
    while (true) {
        size_t comma = list.find(',', start);
        std::string one = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        pid_t pid = 0;
        auto [p, e] = std::from_chars(one.data(), one.data() + one.size(), pid);
        if (one.empty() || e != std::errc() || p != one.data() + one.size() || pid <= 0)
            return Error::user(opt + " '" + one + "': not a process id; give PIDs, e.g. " + opt + " 4242 or " + opt +
                               " 4242,4243");
        if (std::find(out.begin(), out.end(), pid) == out.end()) out.push_back(pid);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

CgroupFs::CgroupFs(std::string mount, std::string proc)
    : mount_(trim_slashes(std::move(mount))), proc_(std::move(proc)) {}

Result<CgroupFs> CgroupFs::detect() {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // id parent major:minor root mountpoint opts... - fstype source superopts
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream rest(line.substr(dash + 3));
        std::string fstype;
        rest >> fstype;
        if (fstype != "cgroup2") continue;
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, dev, root, mnt;
        head >> id >> parent >> dev >> root >> mnt;
        return CgroupFs(mnt);
    }
    return Error::user("no cgroup v2 hierarchy is mounted; mount one: mount -t cgroup2 none /sys/fs/cgroup");
}

Result<Cgroup> CgroupFs::at(const std::string& abs) const {
    struct stat st{};
    if (stat(abs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return Error::user("cgroup '" + abs + "' does not exist; check the path (see /proc/PID/cgroup)");
    std::string a = trim_slashes(abs);
    Cgroup cg;
    cg.path = a;
    cg.rel = a.size() > mount_.size() ? a.substr(mount_.size()) : "/";
    cg.id = st.st_ino;
    return cg;
}

Result<Cgroup> CgroupFs::by_path(const std::string& p) const {
    if (p.empty()) return Error::user("--cgroup: empty path");
    if (p.find("..") != std::string::npos)
        return Error::user("--cgroup '" + p + "': '..' is not allowed; give the path from the cgroup root");
    std::string abs;
    if (p.starts_with(mount_ + "/") || p == mount_)
        abs = p;
    else
        abs = mount_ + (p[0] == '/' ? "" : "/") + p;
    auto cg = at(abs);
    if (!cg)
        return Error::user("--cgroup '" + p + "': no such cgroup under " + mount_ +
                           "; give a path relative to it or its numeric id");
    return cg;
}

Result<Cgroup> CgroupFs::by_id(uint64_t id) const {
    std::error_code ec;
    auto root = at(mount_);
    if (root && root->id == id) return root;
    for (auto it = fs::recursive_directory_iterator(mount_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_directory(ec)) continue;
        struct stat st{};
        if (stat(it->path().c_str(), &st) == 0 && st.st_ino == id) return at(it->path());
    }
    return Error::user("--cgroup " + std::to_string(id) + ": no cgroup has this id under " + mount_);
}

Result<Cgroup> CgroupFs::by_pid(pid_t pid) const {
    std::ifstream in(proc_ + "/" + std::to_string(pid) + "/cgroup");
    if (!in) return Error::user("--pid " + std::to_string(pid) + ": no such process");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("0::")) {
            // A process in another cgroup namespace shows its cgroup relative to that
            // namespace's root, e.g. "0::/../x": not a path under our mount.
            if (line.find("/..") != std::string::npos)
                return Error::user("--pid " + std::to_string(pid) + ": its cgroup " + line.substr(3) +
                                   " is outside this cgroup namespace; give the cgroup path instead");
            auto cg = at(mount_ + trim_slashes(line.substr(3)));
            if (!cg) return Error::user("--pid " + std::to_string(pid) + ": its cgroup " + line.substr(3) +
                                        " is not under " + mount_);
            return cg;
        }
    }
    return Error::user("--pid " + std::to_string(pid) + ": the process is in no cgroup v2 group");
}

std::map<std::string, std::string> CgroupFs::containers_under(const std::string& root, const std::string& want) const {
    std::map<std::string, std::string> found;  // id -> shallowest directory
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_directory(ec)) continue;
        std::string id = container_id_of(it->path().filename());
        if (id.empty() || !id.starts_with(want)) continue;
        auto [pos, inserted] = found.emplace(id, it->path());
        if (!inserted && it->path().string().size() < pos->second.size()) pos->second = it->path();
    }
    return found;
}

Result<Cgroup> CgroupFs::by_container(const std::string& want) const {
    std::string w = lower(without_scheme(want));
    if (!all_hex(w) || w.size() > 64)
        return Error::user("--container '" + want + "': a container id is hexadecimal (full or a prefix)");
    auto found = containers_under(mount_, w);
    if (found.empty())
        return Error::user("--container " + want + ": no container with this id under " + mount_ +
                           "; check `docker ps --no-trunc`, `podman ps --no-trunc` or `crictl ps`");
    if (found.size() > 1)
        return Error::user("--container " + want + ": ambiguous, " + std::to_string(found.size()) +
                           " containers start with it (" + short_ids(found) + "); give more characters");
    return at(found.begin()->second);
}

Result<Cgroup> CgroupFs::by_pod(const std::string& uid, const std::string& container) const {
    std::string u = lower(uid);
    std::replace(u.begin(), u.end(), '_', '-');
    if (u.empty() || u.size() > 36 || !std::all_of(u.begin(), u.end(), [](char c) { return c == '-' || hex_digit(c); }))
        return Error::user("--pod '" + uid + "': a pod UID is hexadecimal with dashes (full or a prefix); "
                           "`kubectl get pod NAME -o jsonpath='{.metadata.uid}'` prints it");
    std::map<std::string, std::string> pods;  // uid -> shallowest directory
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(mount_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_directory(ec)) continue;
        std::string id = pod_uid_of(it->path().filename());
        if (id.empty() || !id.starts_with(u)) continue;
        auto [pos, inserted] = pods.emplace(id, it->path());
        if (!inserted && it->path().string().size() < pos->second.size()) pos->second = it->path();
    }
    if (pods.empty())
        return Error::user("--pod " + uid + ": no pod with this UID under " + mount_ +
                           " (kubepods.slice/... or kubepods/...); is this the pod's node? "
                           "`kubectl get pod NAME -o wide` names it");
    if (pods.size() > 1)
        return Error::user("--pod " + uid + ": ambiguous, " + std::to_string(pods.size()) +
                           " pods start with it; give more characters");
    const std::string& dir = pods.begin()->second;
    if (container.empty()) return at(dir);
    std::string w = lower(without_scheme(container));
    const std::string which = "--pod " + uid + " --container " + container;
    const std::string how = "`kubectl get pod NAME -o jsonpath='{.status.containerStatuses[*].containerID}'` "
                            "prints the ids";
    if (w.empty() || !all_hex(w) || w.size() > 64)
        return Error::user(which + ": the cgroup tree names a pod's containers by id, not by name; give the id: " + how);
    auto all = containers_under(dir, "");
    auto found = containers_under(dir, w);
    if (found.empty())
        return Error::user(which + ": no container of this pod has this id (it has " +
                           (all.empty() ? std::string("none") : short_ids(all)) + "); --container takes an id: " + how);
    if (found.size() > 1)
        return Error::user(which + ": ambiguous, " + std::to_string(found.size()) + " containers of the pod start with it (" +
                           short_ids(found) + "); give more characters");
    return at(found.begin()->second);
}

Result<Cgroup> CgroupFs::by_pids(const std::vector<pid_t>& pids) const {
    if (pids.size() == 1) return by_pid(pids[0]);
    std::map<std::string, std::string> where;  // cgroup rel -> its PIDs
    std::string all;
    std::optional<Cgroup> first;
    for (pid_t pid : pids) {
        auto cg = by_pid(pid);
        if (!cg) return cg.error();
        std::string& list = where[cg->rel];
        list += (list.empty() ? "" : ",") + std::to_string(pid);
        all += (all.empty() ? "" : ",") + std::to_string(pid);
        if (!first) first = *cg;
    }
    if (where.size() == 1) return *first;
    std::string desc;
    for (const auto& [rel, list] : where) desc += (desc.empty() ? "" : "; ") + list + " in " + rel;
    return Error::user("--pid " + all + ": the processes are in " + std::to_string(where.size()) + " cgroups (" + desc +
                       "); one injection targets one cgroup: name PIDs of one, or --cgroup a common parent");
}

Result<Cgroup> CgroupFs::resolve(const TargetRef& t) const {
    switch (t.kind) {
    case TargetRef::Kind::Pid: {
        auto pids = parse_pids(t.value);
        if (!pids) return pids.error();
        return by_pids(*pids);
    }
    case TargetRef::Kind::Container:
        return by_container(t.value);
    case TargetRef::Kind::Pod:
        return by_pod(t.value, t.container);
    case TargetRef::Kind::Cgroup:
        break;
    }
    uint64_t id = 0;
    auto [p, e] = std::from_chars(t.value.data(), t.value.data() + t.value.size(), id);
    if (e == std::errc() && p == t.value.data() + t.value.size()) return by_id(id);
    return by_path(t.value);
}

std::vector<pid_t> CgroupFs::procs(const Cgroup& cg) const {
    std::vector<pid_t> out;
    auto read_one = [&](const fs::path& dir) {
        std::ifstream in(dir / "cgroup.procs");
        pid_t p;
        while (in >> p) out.push_back(p);
    };
    read_one(cg.path);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(cg.path, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec)) read_one(it->path());
    }
    return out;
}

std::map<uint64_t, std::string> topmost_cgroups(const std::map<uint64_t, std::string>& cgroups) {
    std::map<uint64_t, std::string> top;
    for (const auto& c : cgroups)  // not a structured binding: clang 14 cannot capture one
        if (std::none_of(cgroups.begin(), cgroups.end(),
                         [&](const auto& o) { return o.first != c.first && c.second.starts_with(o.second + "/"); }))
            top[c.first] = c.second;
    return top;
}

}  // namespace tardy
