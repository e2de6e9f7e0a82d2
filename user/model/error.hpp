// SPDX-License-Identifier: Apache-2.0
// Errors as values: what failed, on which object, the errno, and what to do.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace tardy {

// A user mistake exits 2 with one line and changes nothing; anything else exits 1.
enum class ErrorKind { User, System };

struct Error {
    ErrorKind kind = ErrorKind::System;
    std::string message;  // one line, says what failed and, where known, the fix
    int err = 0;          // errno, 0 when not a system call failure

    static Error user(std::string msg) { return {ErrorKind::User, one_line(std::move(msg)), 0}; }
    static Error sys(std::string what, int e) {
        return {ErrorKind::System, one_line(what + ": " + std::strerror(e)), e};
    }
    static Error other(std::string msg) { return {ErrorKind::System, one_line(std::move(msg)), 0}; }
    // Messages echo what the user typed; a control character in it must not break the line.
    static std::string one_line(std::string s) {
        for (char& c : s)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
        return s;
    }
    bool is_user() const { return kind == ErrorKind::User; }
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T v) : v_(std::move(v)) {}
    Result(Error e) : v_(std::move(e)) {}
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return std::get<0>(v_); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : e_(std::move(e)), ok_(false) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return e_; }

private:
    Error e_;
    bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace tardy

// Propagate an error from an expression returning Result<...>.
#define TARDY_TRY(expr)                        \
    do {                                       \
        auto tardy_try_r_ = (expr);            \
        if (!tardy_try_r_) return tardy_try_r_.error(); \
    } while (0)
