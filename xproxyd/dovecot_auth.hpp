// dovecot_auth.hpp: checking AUTH credentials. CredentialVerifier is what the session
// asks, one per mechanism family; DovecotAuth checks passwords against a Dovecot auth
// service over its auth-client protocol (common/wire's dovecot_auth.hpp, the codec), as
// Postfix does with smtpd_sasl_type = dovecot.
//
// DovecotAuth opens one connection per verify(): connect, handshake (VERSION, CPID; the
// server's MECH list must offer PLAIN by DONE), one AUTH PLAIN request with the password
// as its initial response, one reply, close. One deadline covers all of it. Whatever
// makes the answer unknown is `temporary` (454 4.7.0 to the client: try again later):
// a connect or I/O error, the deadline, a malformed or out-of-order line, a CONT (PLAIN
// needs no second round), a reply for another request, FAIL with `temp`. FAIL alone is
// `failed` (535 5.7.8). OK is `ok`, with Dovecot's canonical user= (else the authcid).
//
// Promises: the password is read from the Credentials' SecretBytes and copied only into
// SecretBytes (the PLAIN message and the request line); it is never logged nor kept.
// Verdict reasons are safe for a log line (Dovecot's own reason text is escaped) and
// never hold the password. An authzid other than the authcid is refused (failed): a
// Dovecot master user could otherwise log in as anybody, and xproxyd announces the login
// it accepts. The Dovecot auth protocol is plain text: use a unix socket, or loopback.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <xproxy/base/ip.hpp>
#include <xproxy/wire/sasl.hpp>

#include "conn.hpp"

namespace xproxy::xproxyd {

// Who authenticates, as Dovecot's passdb sees it (rip, lip, ports, secured=tls).
struct AuthPeer {
    Endpoint client;
    Endpoint server;
    bool tls = false;
};

struct AuthVerdict {
    enum class Kind : std::uint8_t { ok, failed, temporary } kind = Kind::temporary;
    std::string user;    // ok: the canonical user (Dovecot's user=, else the authcid); raw bytes
    std::string reason;  // for the log: why failed or temporary (escaped, no password)
};

// Checks one family of credentials (passwords: DovecotAuth; later, bearer tokens).
class CredentialVerifier {
public:
    virtual ~CredentialVerifier() = default;
    virtual asio::awaitable<AuthVerdict> verify(const sasl::Credentials& c, const AuthPeer& peer) = 0;
};

class DovecotAuth final : public CredentialVerifier {
public:
    struct Target {
        enum class Kind : std::uint8_t { unix_socket, inet } kind = Kind::unix_socket;
        std::string path;   // unix_socket: an absolute path
        Endpoint endpoint;  // inet
        std::string spec;   // as configured, for log lines
    };
    // "unix:/path" (absolute), or "inet:HOST:PORT" with HOST a numeric address ("[::1]"
    // for IPv6) or "localhost" (127.0.0.1): no name is looked up. nullopt and *error (if
    // given) set, written for the administrator, otherwise.
    static std::optional<Target> parse_target(std::string_view spec, std::string* error);

    DovecotAuth(Target t, std::chrono::seconds timeout);
    const Target& target() const { return target_; }

    asio::awaitable<AuthVerdict> verify(const sasl::Credentials& c, const AuthPeer& peer) override;

private:
    Target target_;
    std::chrono::seconds timeout_;
};

}  // namespace xproxy::xproxyd
