// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the unit tests: scratch directories and checks on tardy::Error.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "model/error.hpp"

namespace tardy::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/tardy-unit-XXXXXX";
        if (!mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

    // mkdir -p below the directory; returns the absolute path.
    std::string mkdirs(std::string_view rel) const {
        std::string p = *this / rel;
        std::filesystem::create_directories(p);
        return p;
    }
    // Writes (replaces) a file below the directory, making its parents; returns the absolute path.
    std::string write(std::string_view rel, std::string_view content) const {
        std::string p = *this / rel;
        std::filesystem::create_directories(std::filesystem::path(p).parent_path());
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out << content;
        return p;
    }

private:
    std::string path_;
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// An error a user can fix: kind User, one line, mentioning every string in `must`.
inline ::testing::AssertionResult IsUserError(const Error& e, std::initializer_list<std::string_view> must = {}) {
    if (!e.is_user()) return ::testing::AssertionFailure() << "not a user error: " << e.message;
    if (e.message.empty()) return ::testing::AssertionFailure() << "empty message";
    if (e.message.find('\n') != std::string::npos)
        return ::testing::AssertionFailure() << "message is more than one line: " << e.message;
    for (auto m : must)
        if (e.message.find(m) == std::string::npos)
            return ::testing::AssertionFailure() << "message does not mention '" << m << "': " << e.message;
    return ::testing::AssertionSuccess();
}

template <typename R>
::testing::AssertionResult FailsWithUserError(const R& r, std::initializer_list<std::string_view> must = {}) {
    if (r) return ::testing::AssertionFailure() << "succeeded, expected a user error";
    return IsUserError(r.error(), must);
}

// Nanoseconds.
inline constexpr uint64_t kUs = 1'000, kMs = 1'000'000, kS = 1'000'000'000, kM = 60 * kS, kH = 60 * kM;

// A 64-hex-digit container id that starts with `lead` (the rest `fill`).
inline std::string cid(const std::string& lead, char fill = '0') { return lead + std::string(64 - lead.size(), fill); }

}  // namespace tardy::test
