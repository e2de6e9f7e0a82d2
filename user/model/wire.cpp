// SPDX-License-Identifier: Apache-2.0
#include "model/wire.hpp"

namespace tardy::wire {

using json = nlohmann::json;

// Exactly what `tardy stop` has always sent: {"all":true} or {"name":...}.
void to_json(json& j, const Stop& s) {
    if (s.all)
        j = {{"all", true}};
    else
        j = {{"name", s.name}};
}

void from_json(const json& j, Stop& s) {
    s.all = j.value("all", false);
    s.name = j.value("name", std::string());
}

int64_t version_of(const json& line) {
    if (!line.is_object()) return -1;
    auto v = line.find("v");
    if (v == line.end()) return 1;
    if (v->is_number_unsigned()) return v->get<uint64_t>() > INT64_MAX ? -1 : static_cast<int64_t>(v->get<uint64_t>());
    if (v->is_number_integer()) return v->get<int64_t>();
    return -1;
}

Error request_version_error(const std::string& shown) {
    return Error::user("request protocol version " + shown + ": this agent speaks version " +
                       std::to_string(kProtocolVersion) +
                       "; use the tardy that started it, or end it (`tardy kill`) and retry");
}

Result<void> check_reply_version(const json& reply) {
    int64_t v = version_of(reply);
    if (v == kProtocolVersion) return ok();
    std::string theirs = v < 0 ? "unknown" : std::to_string(v);
    return Error::user("the running agent speaks protocol version " + theirs + " and this tardy version " +
                       std::to_string(kProtocolVersion) +
                       ": end the agent with `tardy kill` (it ends every fault) and retry, or use the tardy that "
                       "started it");
}

}  // namespace tardy::wire
