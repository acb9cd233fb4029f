// dovecot_auth.hpp: the client side of Dovecot's authentication protocol (the auth-client
// socket Postfix uses with smtpd_sasl_type = dovecot), the subset a PLAIN check needs;
// doc/wire-formats.md, "Dovecot auth client". No I/O.
//
// Lines end with LF; fields are separated by TAB; values are tab-escaped (\001 is the
// escape byte: \0011 = \001, \001t = TAB, \001r = CR, \001n = LF, \0010 = NUL).
//
//   C: VERSION TAB 1 TAB 2 LF  CPID TAB <pid> LF
//   S: VERSION TAB 1 TAB <minor> LF  (MECH TAB <name> [TAB <flag>]... LF)...
//      SPID TAB <pid> LF  CUID TAB <n> LF  COOKIE TAB <hex> LF  DONE LF
//   C: AUTH TAB <id> TAB PLAIN TAB service=smtp ... TAB resp=<base64> LF
//   S: OK TAB <id> [TAB user=<name>]... LF  |  FAIL TAB <id> [TAB temp] [TAB reason=..]... LF
//      |  CONT TAB <id> TAB <base64> LF
//
// Promises: the AUTH line and the PLAIN message in it are built in SecretBytes only (they
// hold the password). ServerDecoder reads one line at a time from the bytes received so
// far (DecodeResult: consume exactly `consumed`), at most kMaxLine bytes before the LF,
// and checks the order of the handshake: VERSION first with major version 1, a MECH
// before SPID (else this is the auth-master socket, which would never answer), PLAIN
// among the MECH lines by DONE, no reply before DONE. Unknown commands and parameters are
// ignored, as the protocol says. Nothing here throws on bad input or reads past it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/base/secret_bytes.hpp>

namespace xproxy::dovecot {

inline constexpr unsigned kMajorVersion = 1;  // a server with another major is refused
inline constexpr unsigned kMinorVersion = 2;
inline constexpr std::size_t kMaxLine = 8192;  // bytes of a server line before its LF

// Dovecot's str_tabescape: \001, TAB, CR and LF escaped with \001 (and NUL as \0010).
std::string tab_escape(std::string_view raw);
// The reverse: \001 followed by 0, 1, t, r or n is that byte, \001 before any other byte
// stands for that byte. False (out unspecified) when \001 ends the text.
bool tab_unescape(std::string_view escaped, std::string& out);

// "VERSION\t1\t2\nCPID\t<pid>\n": what the client sends first.
std::string encode_handshake(std::uint64_t pid);

struct AuthRequest {
    std::uint32_t id = 1;  // the request's id on this connection, not 0
    std::string_view service = "smtp";
    bool tls = false;                // the client's connection is TLS: "secured=tls"
    std::optional<Endpoint> local;   // lip= lport= (the address the client connected to)
    std::optional<Endpoint> remote;  // rip= rport= (the client)
    std::string_view authcid;        // the user name
    std::string_view password;       // a view of the SecretBytes holding it
};

// "AUTH\t<id>\tPLAIN\tservice=..\tnologin\tno-penalty[\tsecured=tls]\tlip=..\trip=..\tlport=..
// \trport=..\tresp=<base64 of NUL authcid NUL password>\n" into `out`. No authzid is sent:
// the user authenticates as itself. no-penalty: xproxyd throttles on its own and Dovecot
// sees xproxyd's connection, not the client's. False (out empty) when authcid or
// password is empty or holds a NUL, or id is 0.
bool encode_auth_plain(const AuthRequest& request, SecretBytes& out);

// One line from the server.
struct ServerLine {
    enum class Kind : std::uint8_t { version, mech, spid, cuid, cookie, done, ok, fail, cont, other };
    Kind kind = Kind::other;
    unsigned major = 0, minor = 0;  // version
    std::uint32_t id = 0;           // ok, fail, cont
    // mech: the name; spid, cuid, cookie: the value; cont: the data (base64); other: the
    // command name. Unescaped.
    std::string word;
    // The parameters after the required ones, unescaped: name=value, or a flag with an
    // empty value (mech: its flags; fail: temp, authz ...).
    std::vector<std::pair<std::string, std::string>> params;

    // The value of parameter `name`, or nullptr.
    const std::string* param(std::string_view name) const;
    bool has(std::string_view name) const { return param(name) != nullptr; }
};

class ServerDecoder {
public:
    // Decodes the first line of `in` (bytes received and not yet consumed) into *out.
    // complete: consume `consumed` bytes; need_more: no LF yet; invalid: the connection
    // is unusable (reason says why).
    DecodeResult decode(std::string_view in, ServerLine& out);
    // DONE was read: the handshake is over and PLAIN was offered.
    bool handshake_done() const { return phase_ == Phase::requests; }

private:
    enum class Phase : std::uint8_t { version, handshake, requests, broken };
    DecodeResult check_order(const ServerLine& line, std::size_t consumed);
    Phase phase_ = Phase::version;
    bool saw_mech_ = false;
    bool plain_ = false;
};

}  // namespace xproxy::dovecot
