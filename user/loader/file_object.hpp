// SPDX-License-Identifier: Apache-2.0
// The loaded file-fault object (bpf/file.bpf.c): BPF LSM programs, linked only while a file
// rule exists (every process on the host runs them while they are).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model/error.hpp"
#include "model/tardy_abi.hpp"

struct tardy_file;
struct bpf_link;

namespace tardy {

// The active LSMs ("lockdown,capability,...,bpf"), mounting securityfs if needed; "" when
// they cannot be read.
std::string active_lsms();
bool bpf_lsm_active();

class FileObject {
public:
    static Result<std::unique_ptr<FileObject>> load(const std::string& pin_dir, uint64_t rng_seed = 0);
    ~FileObject();
    FileObject(const FileObject&) = delete;
    FileObject& operator=(const FileObject&) = delete;

    Result<void> attach();
    void detach();
    Result<void> put_rule(uint64_t cgid, const tardy_file_rule& r);
    Result<void> delete_rule(uint64_t cgid);
    Result<tardy_sock_counters> counters(uint32_t slot) const;
    Result<void> reset_counters(uint32_t slot);

private:
    FileObject() = default;
    struct tardy_file* skel_ = nullptr;
    bpf_link* open_ = nullptr;
    bpf_link* perm_ = nullptr;
    bpf_link* free_ = nullptr;
};

}  // namespace tardy
