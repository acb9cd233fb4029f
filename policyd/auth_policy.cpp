// auth_policy.cpp: see auth_policy.hpp. One log line per refusal and per report:
//   event=auth_policy_refuse login=".." remote=.. protocol=.. service=.. tls=.. reason=..
//       session=.. peer=..
//   event=auth_policy_report login=".." remote=.. protocol=.. success=.. policy_reject=..
//       session=.. peer=..
// An allowed login is logged at debug level (event=auth_policy_allow). A Dovecot
// master-user login adds master=".." after the login; the decision is the login's alone.
#include "auth_policy.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/secret_file.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/policy/access_decision.hpp>
#include <xproxy/wire/auth_policy.hpp>

namespace xproxy::policyd {

namespace {

namespace bhttp = boost::beast::http;
using dovecot::AuthPolicyRequest;
using dovecot::PolicyCommand;

constexpr std::size_t kMinKeyBytes = 16;

std::string_view view(boost::beast::string_view v) { return {v.data(), v.size()}; }

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

Digest digest(std::string_view bytes) {
    Digest d{};
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d.data());
    return d;
}

// The key the request presents: X-API-Key: KEY, or Authorization: Bearer KEY. nullopt
// when there is none, or more than one header that could carry it.
std::optional<std::string_view> presented_key(const http::Request& req) {
    const std::size_t api = req.count("X-API-Key");
    const std::size_t authz = req.count(bhttp::field::authorization);
    if (api + authz != 1) return std::nullopt;
    if (api == 1) return trim(view(req["X-API-Key"]));
    std::string_view v = trim(view(req[bhttp::field::authorization]));
    if (!istarts_with(v, "Bearer ")) return std::nullopt;
    return trim(v.substr(7));
}

// Comparing digests: the time taken says nothing about the key, not even its length.
bool key_matches(const http::Request& req, const SecretBytes& key) {
    const auto presented = presented_key(req);
    if (!presented) return false;
    const Digest want = digest(key.view());
    const Digest got = digest(*presented);
    return CRYPTO_memcmp(want.data(), got.data(), want.size()) == 0;
}

http::Response reply(int status, std::string_view msg) {
    return http::json_response(http::Status::ok, dovecot::encode_auth_policy_reply(status, msg));
}

http::Response refuse_request(http::Status status, const char* event, std::string_view peer, const char* reason) {
    log::warning("event=%s peer=%s status=%u reason=\"%s\"", event, escape_value(peer, 64, false).c_str(),
                 static_cast<unsigned>(status), reason);
    return http::text_response(status, std::string(reason) + "\n");
}

struct Fields {
    std::string login, master, remote, protocol, session, peer;  // master: ` master=".."`, or empty
};

// An unquoted value: escaped, "-" when empty.
std::string word(std::string_view v, std::size_t max) { return v.empty() ? "-" : escape_value(v, max, false); }

Fields escaped(const AuthPolicyRequest& r, std::string_view peer) {
    Fields f{escape_value(r.login, 256, true),
             {},
             word(r.remote, 64),
             word(r.protocol, 32),
             word(r.session_id, 64),
             word(peer, 64)};
    if (!r.master.empty()) f.master = " master=\"" + escape_value(r.master, 256, true) + "\"";
    return f;
}

AccessDecision decide(const Directory& dir, const AuthPolicyRequest& r) {
    if (!r.has_login || !r.has_protocol)
        return {AccessDecision::Kind::refuse, "request_incomplete",
                "Login refused: the policy request lacks the login or the protocol"};
    const auto choice = service_for_protocol(r.protocol, r.tls);
    if (!choice) return {AccessDecision::Kind::refuse, "service_unknown", "Service not available"};
    AccessDecision d = decide_access(dir, r.login, choice->primary);
    if (d.kind != AccessDecision::Kind::allow && choice->over_tls) {
        AccessDecision tls = decide_access(dir, r.login, *choice->over_tls);
        if (tls.kind == AccessDecision::Kind::allow) d = std::move(tls);
    }
    return d;
}

std::string service_name(const AuthPolicyRequest& r) {
    const auto choice = service_for_protocol(r.protocol, r.tls);
    if (!choice) return "-";
    std::string out(to_string(choice->primary));
    if (choice->over_tls) out += "," + std::string(to_string(*choice->over_tls));
    return out;
}

http::Response allow_command(const State& s, const AuthPolicyRequest& r, std::string_view peer) {
    const auto directory = s.current_directory();
    const AccessDecision d = decide(*directory, r);
    const Fields f = escaped(r, peer);
    if (d.kind == AccessDecision::Kind::allow) {
        log::debug("event=auth_policy_allow login=\"%s\"%s remote=%s protocol=%s service=%s tls=%s session=%s peer=%s",
                   f.login.c_str(), f.master.c_str(), f.remote.c_str(), f.protocol.c_str(), service_name(r).c_str(),
                   r.tls ? "yes" : "no", f.session.c_str(), f.peer.c_str());
        return reply(0, "");
    }
    log::info(
        "event=auth_policy_refuse login=\"%s\"%s remote=%s protocol=%s service=%s tls=%s reason=%s session=%s peer=%s",
        f.login.c_str(), f.master.c_str(), f.remote.c_str(), f.protocol.c_str(), service_name(r).c_str(),
        r.tls ? "yes" : "no", std::string(d.reason).c_str(), f.session.c_str(), f.peer.c_str());
    return reply(-1, d.text);
}

http::Response report_command(const AuthPolicyRequest& r, std::string_view peer) {
    const Fields f = escaped(r, peer);
    auto flag = [](const std::optional<bool>& b) { return b ? (*b ? "yes" : "no") : "-"; };
    log::info(
        "event=auth_policy_report login=\"%s\"%s remote=%s protocol=%s success=%s policy_reject=%s session=%s "
        "peer=%s",
        f.login.c_str(), f.master.c_str(), f.remote.c_str(), f.protocol.c_str(), flag(r.success), flag(r.policy_reject),
        f.session.c_str(), f.peer.c_str());
    return reply(0, "");
}

}  // namespace

bool auth_policy_open_address(const daemon::ListenSpec& spec) {
    if (spec.kind != daemon::ListenSpec::Kind::inet) return false;
    const auto a = IpAddress::parse_mta(spec.host);
    if (!a) return true;  // not a numeric address: treated as open
    const IpAddress n = a->normalized();
    if (n.is_v4()) return n.data()[0] != 127;
    static const auto kLoopback6 = IpAddress::parse("::1");
    return !(kLoopback6 && n == *kLoopback6);
}

http::Limits auth_policy_limits(const daemon::ListenSpec* spec, const CidrSet* allow) {
    http::Limits l;
    if (spec && allow && auth_policy_open_address(*spec)) l.allow_peers = *allow;
    l.max_header_bytes = 8192;
    l.max_body_bytes = 16384;
    l.idle_timeout = std::chrono::seconds(30);
    l.max_connections = 256;
    return l;
}

std::optional<ServiceChoice> service_for_protocol(std::string_view protocol, bool tls) {
    if (iequals(protocol, "imap"))
        return ServiceChoice{Service::imap, tls ? std::optional(Service::imaps) : std::nullopt};
    if (iequals(protocol, "pop3"))
        return ServiceChoice{Service::pop3, tls ? std::optional(Service::pop3s) : std::nullopt};
    // smtp: Postfix's SMTP AUTH through Dovecot (smtpd_sasl_type = dovecot): a submission.
    if (iequals(protocol, "submission") || iequals(protocol, "smtp"))
        return ServiceChoice{Service::submission, std::nullopt};
    if (iequals(protocol, "lmtp")) return ServiceChoice{Service::lmtp, std::nullopt};
    return std::nullopt;
}

Expected<daemon::ListenSpec> check_auth_policy_options(const Options& o, SecretBytes* key) {
    auto spec = daemon::parse_listen(o.auth_policy_listen);
    if (!spec) return Failure{o.origins.locate("auth-policy-listen", "--auth-policy-listen: " + spec.error())};
    if (spec->kind != daemon::ListenSpec::Kind::inet && spec->kind != daemon::ListenSpec::Kind::unix_)
        return Failure{o.origins.locate("auth-policy-listen", "--auth-policy-listen takes inet:, inet6: or unix:")};
    if (auth_policy_open_address(*spec)) {
        auto allow = CidrSet::parse(o.allow_peers);
        if (!allow || allow->empty())
            return Failure{o.origins.locate(
                "auth-policy-listen",
                "TCP listener " + spec->text +
                    " for the auth policy is not on a loopback address: it needs --allow-peers (the clients "
                    "served), or use 127.0.0.1, ::1 or a unix socket")};
    }
    if (spec->kind == daemon::ListenSpec::Kind::unix_) {
        if (auto group = daemon::check_socket_group(o.auth_policy_socket_group, spec->path); !group)
            return Failure{
                o.origins.locate("auth-policy-socket-group", "--auth-policy-socket-group: " + group.error())};
    }
    if (o.auth_policy_secret_file.empty()) {
        if (spec->kind == daemon::ListenSpec::Kind::inet)
            return Failure{o.origins.locate(
                "auth-policy-listen",
                "TCP listener " + spec->text +
                    " for the auth policy needs --auth-policy-secret-file: every local user can reach a TCP port")};
        return spec;
    }
    auto k = read_secret_file(o.auth_policy_secret_file, kMinKeyBytes, true);
    if (!k) return Failure{o.origins.locate("auth-policy-secret-file", "--auth-policy-secret-file: " + k.error())};
    for (char c : k->view()) {
        if (c <= ' ' || c > '~')
            return Failure{o.origins.locate("auth-policy-secret-file",
                                            "--auth-policy-secret-file: " + o.auth_policy_secret_file +
                                                " must hold printable ASCII without spaces (it is sent in an HTTP "
                                                "header)")};
    }
    if (key) *key = std::move(*k);
    return spec;
}

Expected<UniqueFd> open_auth_policy_listener(const Options& o, unsigned unix_mode) {
    auto spec = daemon::parse_listen(o.auth_policy_listen);
    if (!spec) return Failure{spec.error()};
    if (spec->kind == daemon::ListenSpec::Kind::unix_) {
        if (auto dir = daemon::check_socket_directory(spec->path); !dir) return Failure{dir.error()};
    }
    auto fds = daemon::open_listeners(*spec, unix_mode);
    if (!fds) return Failure{fds.error()};
    if (spec->kind == daemon::ListenSpec::Kind::unix_) {
        auto given = daemon::set_socket_access(spec->path, o.user, o.auth_policy_socket_group, unix_mode);
        if (!given) return Failure{given.error()};
    }
    return std::move(fds->front());
}

http::Response AuthPolicyService::handle(const http::Request& req, std::string_view peer) const {
    const auto s = states_.get();  // one configuration and one directory for this request
    if (!s->auth_policy_key.empty() && !key_matches(req, s->auth_policy_key)) {
        if (unauthorized_.fetch_add(1) == 0)
            log::warning(
                "event=auth_policy_unauthorized peer=%s status=401 reason=\"missing or wrong API key\" "
                "(further refusals are counted until a request with the key)",
                escape_value(peer, 64, false).c_str());
        return http::text_response(http::Status::unauthorized, "missing or wrong API key\n");
    }
    if (std::size_t n = unauthorized_.exchange(0); n > 1)
        log::warning("event=auth_policy_unauthorized_end refused=%zu", n);
    if (req.method() != bhttp::verb::post)
        return refuse_request(http::Status::method_not_allowed, "auth_policy_bad_request", peer, "not a POST");
    auto command = dovecot::parse_policy_command(view(req.target()));
    if (!command)
        return refuse_request(http::Status::bad_request, "auth_policy_bad_request", peer, "no valid command=");
    auto r = dovecot::decode_auth_policy_request(req.body());
    if (!r) {
        log::warning("event=auth_policy_bad_request peer=%s status=400 reason=\"%s\"",
                     escape_value(peer, 64, false).c_str(), r.error().c_str());
        return http::text_response(http::Status::bad_request, r.error() + "\n");
    }
    if (*command == PolicyCommand::report) return report_command(*r, peer);
    return allow_command(*s, *r, peer);
}

}  // namespace xproxy::policyd
