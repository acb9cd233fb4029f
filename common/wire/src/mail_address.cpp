// mail_address.cpp: canonical envelope addresses (mail_address.hpp, doc/wire-formats.md).
//
// The address is split into a local part and a domain at the last '@' whose domain side
// holds no '"' (a domain never does; a '@' before a '"' is inside a quoted local part).
// The local part's quoted strings are resolved into raw bytes; the raw bytes are then
// written in exactly one spelling. Idempotence follows: the canonical domain holds no '@'
// and no '"', so the split of a canonical address finds the same '@', and its local part
// is a Dot-string or one well-formed quoted string, which resolves to the same bytes.
#include <xproxy/base/text.hpp>
#include <xproxy/wire/mail_address.hpp>

namespace xproxy {

namespace {

// atext of RFC 5322, plus every byte >= 0x80 (UTF8-non-ascii of RFC 6531).
bool is_atext(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) return true;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    for (char s : std::string_view("!#$%&'*+-/=?^_`{|}~"))
        if (c == s) return true;
    return false;
}

// Dot-string = Atom *("." Atom), Atom = 1*atext.
bool is_dot_string(std::string_view s) {
    if (s.empty() || s.front() == '.' || s.back() == '.') return false;
    char prev = 0;
    for (char c : s) {
        if (c == '.') {
            if (prev == '.') return false;
        } else if (!is_atext(c)) {
            return false;
        }
        prev = c;
    }
    return true;
}

// The raw bytes of a local part: quoted strings lose their quotes and their quoted pairs
// are resolved; text outside quotes is taken as it is (an MTA's internal form). A quote
// left open, or a backslash ending a quoted string, makes the whole local part literal.
std::string raw_local(std::string_view local) {
    std::string out;
    out.reserve(local.size());
    bool quoted = false;
    for (std::size_t i = 0; i < local.size(); ++i) {
        const char c = local[i];
        if (c == '"') {
            quoted = !quoted;
        } else if (quoted && c == '\\') {
            if (++i == local.size()) return std::string(local);
            out += local[i];
        } else {
            out += c;
        }
    }
    return quoted ? std::string(local) : out;
}

}  // namespace

std::string canonical_address(std::string_view address) {
    std::string_view s = trim(address);
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = trim(s.substr(1, s.size() - 2));
    // Source route: "@a,@b:" before the mailbox (RFC 5321 A-d-l, obsolete but legal).
    while (!s.empty() && s.front() == '@') {
        const auto colon = s.find(':');
        if (colon == std::string_view::npos) break;
        s.remove_prefix(colon + 1);
    }
    if (s.empty()) return {};

    std::string_view local = s, domain;
    bool has_domain = false;
    if (const auto at = s.rfind('@'); at != std::string_view::npos && s.find('"', at) == std::string_view::npos) {
        local = s.substr(0, at);
        domain = s.substr(at + 1);
        has_domain = true;
    }
    const std::string raw = raw_local(local);
    std::string out;
    out.reserve(raw.size() + domain.size() + 4);
    if (is_dot_string(raw)) {
        out = raw;
    } else {
        out += '"';
        for (char c : raw) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    // The root dot of a domain name goes, as Postfix drops it ("a.example." is
    // "a.example"): one trailing dot after a letter, digit or hyphen; anything else is no
    // host name, and is left as it is so that the form stays a fixed point.
    if (domain.size() >= 2 && domain.back() == '.') {
        const char c = domain[domain.size() - 2];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
            domain.remove_suffix(1);
    }
    if (has_domain) {
        out += '@';
        out += to_lower(domain);
    }
    return out;
}

}  // namespace xproxy
