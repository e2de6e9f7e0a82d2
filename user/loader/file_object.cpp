// SPDX-License-Identifier: Apache-2.0
#include "loader/file_object.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>

#include "loader/generation.hpp"
#include "loader/percpu.hpp"
#include <fstream>
#include <vector>

#include "file.skel.h"

namespace tardy {

std::string active_lsms() {
    const char* path = "/sys/kernel/security/lsm";
    if (access(path, R_OK) != 0) mount("securityfs", "/sys/kernel/security", "securityfs", 0, nullptr);
    std::ifstream lsm(path);
    std::string lsms;
    std::getline(lsm, lsms);
    return lsms;
}

bool bpf_lsm_active() { return ("," + active_lsms() + ",").find(",bpf,") != std::string::npos; }

Result<std::unique_ptr<FileObject>> FileObject::load(const std::string& pin_dir, uint64_t rng_seed) {
    std::string lsms = active_lsms();
    if (("," + lsms + ",").find(",bpf,") == std::string::npos)
        return Error::user("file faults need the BPF LSM, which this kernel does not run (active: " +
                           (lsms.empty() ? std::string("unknown") : lsms) +
                           "); boot with lsm=...,bpf (see `tardy doctor`)");
    std::unique_ptr<FileObject> o(new FileObject());
    LIBBPF_OPTS(bpf_object_open_opts, oo);
    if (!pin_dir.empty()) oo.pin_root_path = pin_dir.c_str();
    o->skel_ = tardy_file__open_opts(&oo);
    if (!o->skel_) return Error::sys("open BPF object file.bpf.o", errno);
    o->skel_->rodata->cfg_rng_seed = rng_seed;
    if (pin_dir.empty()) bpf_map__set_pin_path(o->skel_->maps.tardy_control, nullptr);
    if (int err = tardy_file__load(o->skel_); err)
        return Error{ErrorKind::User,
                     std::string("file faults need BPF LSM programs, which this kernel refuses to load: ") +
                         std::strerror(-err) + " (see `tardy doctor`)",
                     -err};
    return o;
}

FileObject::~FileObject() {
    detach();
    tardy_file__destroy(skel_);
}

Result<void> FileObject::attach() {
    if (!open_) {
        open_ = bpf_program__attach_lsm(skel_->progs.tardy_file_open);
        if (!open_) return Error::sys("attach the BPF LSM file_open program", errno);
    }
    if (!perm_) {
        perm_ = bpf_program__attach_lsm(skel_->progs.tardy_file_permission);
        if (!perm_) return Error::sys("attach the BPF LSM file_permission program", errno);
    }
    if (!free_) {
        free_ = bpf_program__attach_lsm(skel_->progs.tardy_file_free);
        if (!free_) return Error::sys("attach the BPF LSM file_free_security program", errno);
    }
    return ok();
}

void FileObject::detach() {
    bpf_link__destroy(open_);
    bpf_link__destroy(perm_);
    bpf_link__destroy(free_);
    open_ = perm_ = free_ = nullptr;
}

Result<void> FileObject::put_rule(uint64_t cgid, const tardy_file_rule& r) {
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tardy_file_rules), &cgid, &r, BPF_ANY))
        return Error::sys("write file rule", errno);
    bump_generation(bpf_map__fd(skel_->maps.tardy_control));
    return ok();
}

Result<void> FileObject::delete_rule(uint64_t cgid) {
    if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.tardy_file_rules), &cgid) && errno != ENOENT)
        return Error::sys("delete file rule", errno);
    bump_generation(bpf_map__fd(skel_->maps.tardy_control));
    return ok();
}

Result<tardy_sock_counters> FileObject::counters(uint32_t slot) const {
    return sum_percpu<tardy_sock_counters>(bpf_map__fd(skel_->maps.tardy_file_counters), slot, [](auto& s, const auto& c) { s.seen += c.seen; s.failed += c.failed; }, "file counters");
}

Result<void> FileObject::reset_counters(uint32_t slot) {
    return zero_percpu<tardy_sock_counters>(bpf_map__fd(skel_->maps.tardy_file_counters), slot, "file counters");
}

}  // namespace tardy
