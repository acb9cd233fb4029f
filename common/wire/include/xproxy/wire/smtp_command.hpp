// smtp_command.hpp: the front side's SMTP command syntax (RFC 5321 4.1), as pure functions.
//
// split_command() separates the verb from its argument; parse_path() reads the
// "FROM:<path> params" / "TO:<path> params" argument of MAIL and RCPT, and
// check_mail_params() decides which ESMTP parameters this proxy accepts from a client.
// Nothing here does I/O or throws; errors come back as a complete SMTP reply line
// ("501 5.5.4 ...") that the session sends as it is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xproxy::smtp {

struct CommandLine {
    std::string verb;  // upper case; empty for an empty line
    std::string arg;   // the rest after one or more spaces, trailing spaces removed
};

// line: one command without its CRLF.
CommandLine split_command(std::string_view line);

struct PathArg {
    std::string path;                                         // between < and >, may be empty (null reverse-path)
    std::vector<std::pair<std::string, std::string>> params;  // NAME upper case, value as sent
    bool has(std::string_view name) const;
    const std::string* get(std::string_view name) const;
};

// arg: "FROM:<a@b> SIZE=10" (keyword "FROM") or "TO:<c@d>" (keyword "TO"). A space after
// the colon is tolerated, as most servers do. Bytes >= 0x80 are allowed in the path only
// when allow_8bit (SMTPUTF8 transactions). On error returns nullopt and sets *reply.
std::optional<PathArg> parse_path(std::string_view arg, std::string_view keyword, bool allow_null, bool allow_8bit,
                                  std::string* reply);

// What the front side advertises and therefore accepts in MAIL FROM.
struct MailLimits {
    std::uint64_t max_size = 0;  // SIZE; 0 = no limit
    bool requiretls = false;     // REQUIRETLS offered (only after STARTTLS)
};

struct MailParams {
    std::uint64_t size = 0;   // SIZE=, 0 = not given
    bool eight_bit = false;   // BODY=8BITMIME
    bool smtputf8 = false;    // SMTPUTF8
    bool requiretls = false;  // REQUIRETLS
};

// Checks MAIL FROM parameters against what we advertise. On error returns nullopt and
// sets *reply: 555 5.5.4 for an unknown or malformed parameter, 552 5.3.4 for a
// declared SIZE above our limit.
std::optional<MailParams> check_mail_params(const PathArg& mail, const MailLimits& limits, std::string* reply);

// A parsed reply line from the downstream's EHLO: keyword (upper case) -> its parameters.
struct EhloKeywords {
    std::vector<std::pair<std::string, std::string>> items;
    bool has(std::string_view kw) const;
    const std::string* get(std::string_view kw) const;
};
// reply_lines: the lines of a 250 reply without code and separator ("250-"), first line
// (the greeting name) skipped.
EhloKeywords parse_ehlo(const std::vector<std::string>& reply_lines);

// The downstream's view of one transaction: refuses what the client asked for and the
// next hop cannot take (SMTPUTF8 553 5.6.7, 8BITMIME 554 5.6.3, SIZE 552 5.3.4,
// REQUIRETLS 550 5.7.30). downstream_tls: the downstream connection is encrypted and its
// certificate verified (RFC 8689 asks for an authenticated next hop).
// Returns the refusal reply, or nullopt when the transaction can be proxied.
std::optional<std::string> refuse_for_downstream(const MailParams& p, const EhloKeywords& ds, bool downstream_tls);

// The MAIL FROM line sent downstream: the path and the parameters the downstream
// advertises (SIZE is dropped when it does not, which is harmless).
std::string downstream_mail_line(const PathArg& mail, const MailParams& p, const EhloKeywords& ds);

}  // namespace xproxy::smtp
