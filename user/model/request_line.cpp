// SPDX-License-Identifier: Apache-2.0
// The line level of the request protocol: one request line parsed under caps, validated
// (request.cpp), dispatched, and answered with one reply line.
#include <string>

#include "model/request.hpp"

namespace tardy {
namespace {

using json = nlohmann::json;

// Whether JSON text nests arrays and objects deeper than `limit`, found without recursion
// or a tree. Brackets inside strings do not count; text that is not JSON is the parser's
// to refuse, so an unbalanced count here does no harm.
bool too_deep(std::string_view text, int limit) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

const char* type_of(const json& j) {
    switch (j.type()) {
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::null: return "null";
    default: return "a number";
    }
}

}  // namespace

Result<nlohmann::json> parse_request(std::string_view line) {
    if (line.size() > kMaxRequestBytes)
        return Error::user("request of " + std::to_string(line.size()) + " bytes; at most " +
                           std::to_string(kMaxRequestBytes));
    if (too_deep(line, kMaxRequestDepth))
        return Error::user("request nests arrays or objects deeper than " + std::to_string(kMaxRequestDepth) +
                           " levels");
    json j;
    try {
        j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    } catch (...) {  // allocation failure: the request is refused, the agent goes on
        return Error::other("request could not be parsed");
    }
    if (j.is_discarded()) return Error::user("request is not valid JSON");
    if (!j.is_object()) return Error::user(std::string("request is ") + type_of(j) + ", not a JSON object");
    return j;
}

nlohmann::json error_reply(const Error& e) {
    return {{"ok", false}, {"user", e.is_user()}, {"error", e.message}, {"v", kProtocolVersion}};
}

std::string handle_line(std::string_view line, const Dispatch& dispatch) {
    try {
        json rep;
        auto req = parse_request(line);
        auto valid = req ? validate_request(*req) : Result<void>(req.error());
        if (!valid) {
            rep = error_reply(valid.error());
        } else {
            try {
                rep = dispatch(*req);
            } catch (const std::exception& e) {
                rep = error_reply(Error::other(std::string("the agent failed on this request: ") + e.what()));
            } catch (...) {
                rep = error_reply(Error::other("the agent failed on this request"));
            }
            auto okv = rep.is_object() ? rep.find("ok") : rep.end();
            if (!rep.is_object() || okv == rep.end() || !okv->is_boolean())
                rep = error_reply(Error::other("the agent made a reply without \"ok\""));
        }
        rep["v"] = kProtocolVersion;  // every reply, so a client of another version can tell
        // replace: an echoed string cut inside a character must not make dump() throw.
        return rep.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    } catch (...) {
        static_assert(kProtocolVersion == 7, "the line below spells the version");
        return "{\"error\":\"the agent could not answer this request\",\"ok\":false,\"user\":false,\"v\":7}\n";
    }
}

}  // namespace tardy
