// SPDX-License-Identifier: Apache-2.0
#include "model/request_fields.hpp"

namespace tardy::request_fields {

// A value as an error message shows it: short, one line, valid UTF-8.
std::string shown(const json& v) {
    if (v.is_object()) return "an object";
    if (v.is_array()) return "an array";
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (s.size() > 60) {
        size_t cut = 57;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;  // not inside a character
        s = s.substr(0, cut) + "...";
    }
    return s;
}

Error bad(const std::string& field, const std::string& why) {
    return Error::user("request field " + field + ": " + why);
}

const json* member(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
}

// Absent: `dflt` when there is one (the agent reads the field with value()), else missing.
Result<uint64_t> get_uint(const json& obj, const char* key, const std::string& where, uint64_t lo, uint64_t hi,
                          std::optional<uint64_t> dflt) {
    const json* v = member(obj, key);
    if (!v) {
        if (dflt) return *dflt;
        return bad(where, "missing");
    }
    // Whole numbers only: get<uint64_t>() would wrap a negative and truncate a fraction.
    bool whole = v->is_number_unsigned() || (v->is_number_integer() && v->get<int64_t>() >= 0);
    std::string range = hi == kMaxU64 ? ">= " + std::to_string(lo)
                                      : "from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (!whole) return bad(where, "want a whole number " + range + ", got " + shown(*v));
    uint64_t x = v->get<uint64_t>();
    if (x < lo || x > hi) return bad(where, std::to_string(x) + " is out of range; want " + range);
    return x;
}

Result<std::string> get_string(const json& obj, const char* key, const std::string& where, bool required) {
    const json* v = member(obj, key);
    if (!v) {
        if (required) return bad(where, "missing");
        return std::string();
    }
    if (!v->is_string()) return bad(where, "want a string, got " + shown(*v));
    const auto& s = v->get_ref<const std::string&>();
    // C APIs (open, inet_pton) would stop at a NUL and act on a prefix of what was checked.
    if (s.find('\0') != std::string::npos) return bad(where, "contains a NUL byte");
    return s;
}

Result<void> check_abs_path(const std::string& p, const std::string& where, size_t max) {
    if (p.empty() || p[0] != '/') return bad(where, "want an absolute path, got " + shown(json(p)));
    if (p.size() >= max) return bad(where, "longer than " + std::to_string(max - 1) + " bytes");
    return ok();
}

Result<const json*> get_array(const json& obj, const char* key, const std::string& where, size_t max) {
    const json* a = member(obj, key);
    if (!a) return static_cast<const json*>(nullptr);
    if (!a->is_array()) return bad(where, "want an array, got " + shown(*a));
    if (a->size() > max) return bad(where, std::to_string(a->size()) + " entries; at most " + std::to_string(max));
    return a;
}

Result<const json*> need_object(const json& v, const std::string& where, const char* shape) {
    if (!v.is_object()) return bad(where, std::string("want an object ") + shape + ", got " + shown(v));
    return &v;
}

}  // namespace tardy::request_fields
