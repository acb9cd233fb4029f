// fuzz_auth_policy: the Dovecot auth policy request decoder and the command parser on
// arbitrary bytes. A decoded request keeps its bounds (fields of at most
// kMaxAuthPolicyField bytes); decoding is deterministic; a request rebuilt from the
// decoded members (as Dovecot would write it) decodes to the same members; the reply
// encoder turns any bytes into JSON that decodes as an object.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <xproxy/wire/auth_policy.hpp>

using namespace xproxy;
using namespace xproxy::dovecot;

namespace {

std::string dump(const AuthPolicyRequest& r) {
    return r.login + "|" + r.master + "|" + r.protocol + "|" + r.remote + "|" + r.session_id + "|" +
           (r.tls ? "t" : "f") + "|" + (r.success ? (*r.success ? "t" : "f") : "-") + "|" +
           (r.policy_reject ? (*r.policy_reject ? "t" : "f") : "-");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)parse_policy_command(in);
    auto r = decode_auth_policy_request(in);
    auto again = decode_auth_policy_request(in);
    if (r.has_value() != again.has_value()) __builtin_trap();
    if (r) {
        for (const std::string* f : {&r->login, &r->master, &r->protocol, &r->remote, &r->session_id})
            if (f->size() > kMaxAuthPolicyField) __builtin_trap();
        if (dump(*r) != dump(*again)) __builtin_trap();
        nlohmann::json j = nlohmann::json::object();
        if (r->has_login) j["login"] = r->login;
        if (!r->master.empty()) j["master"] = r->master;
        if (r->has_protocol) j["protocol"] = r->protocol;
        j["remote"] = r->remote;
        j["session_id"] = r->session_id;
        j["tls"] = r->tls;
        if (r->success) j["success"] = *r->success;
        if (r->policy_reject) j["policy_reject"] = *r->policy_reject;
        auto rebuilt = decode_auth_policy_request(j.dump());
        if (!rebuilt || dump(*rebuilt) != dump(*r)) __builtin_trap();
    }
    const std::string reply = encode_auth_policy_reply(-1, in);
    if (!nlohmann::json::accept(reply)) __builtin_trap();
    return 0;
}
