// SPDX-License-Identifier: Apache-2.0
#include "sys/cgroup.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace tardy {
namespace {

bool all_hex(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    });
}

std::string trim_slashes(std::string s) {
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
}

}  // namespace

std::string container_id_of(const std::string& name) {
    std::string s = name;
    if (s.ends_with(".scope")) {
        s.resize(s.size() - 6);
        static const char* const kPrefixes[] = {"docker-", "cri-containerd-", "crio-", "libpod-"};
        bool found = false;
        for (const char* p : kPrefixes) {
            if (s.starts_with(p)) {
                s = s.substr(std::char_traits<char>::length(p));
                found = true;
                break;
            }
        }
        if (!found) return "";
    }
    return s.size() == 64 && all_hex(s) ? s : "";
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

Result<Cgroup> CgroupFs::by_container(const std::string& want) const {
    std::string w = want;
    std::transform(w.begin(), w.end(), w.begin(), ::tolower);
    if (!all_hex(w) || w.size() > 64)
        return Error::user("--container '" + want + "': a container id is hexadecimal (full or a prefix)");
    std::map<std::string, std::string> found;  // id -> shallowest directory
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(mount_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_directory(ec)) continue;
        std::string id = container_id_of(it->path().filename());
        if (id.empty() || !id.starts_with(w)) continue;
        auto [pos, inserted] = found.emplace(id, it->path());
        if (!inserted && it->path().string().size() < pos->second.size()) pos->second = it->path();
    }
    if (found.empty())
        return Error::user("--container " + want + ": no container with this id under " + mount_ +
                           "; check `docker ps --no-trunc` or `crictl ps`");
    if (found.size() > 1)
        return Error::user("--container " + want + ": ambiguous, " + std::to_string(found.size()) +
                           " containers start with it; give more characters");
    return at(found.begin()->second);
}

Result<Cgroup> CgroupFs::resolve(const TargetRef& t) const {
    switch (t.kind) {
    case TargetRef::Kind::Pid: {
        pid_t pid = 0;
        auto [p, e] = std::from_chars(t.value.data(), t.value.data() + t.value.size(), pid);
        if (e != std::errc() || p != t.value.data() + t.value.size() || pid <= 0)
            return Error::user("--pid '" + t.value + "': not a process id");
        return by_pid(pid);
    }
    case TargetRef::Kind::Container:
        return by_container(t.value);
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

}  // namespace tardy
