// ldap_settings.cpp: the --directory URL and the --ldap-config file (ldap_settings.hpp).
#include <xproxy/base/escape.hpp>
#include <xproxy/base/ip.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/ldap/ldap_settings.hpp>

namespace xproxy {

namespace {

constexpr std::size_t kMaxSettingsLine = 4096;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3986 percent-decoding; nullopt on a broken escape or a NUL byte.
std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') return std::nullopt;
        out += c;
    }
    return out;
}

// Attribute and object class names: RFC 4512 descr (letters, digits, '-') or a numeric OID.
bool valid_attribute_name(std::string_view s) {
    if (s.empty() || s.size() > 128) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || ascii_digit(c) || c == '-' || c == '.')) return false;
    return true;
}

bool loopback_host(std::string_view host) {
    if (iequals(host, "localhost")) return true;
    const auto ip = IpAddress::parse(host);
    if (!ip) return false;
    const IpAddress n = ip->normalized();
    if (n.is_v4()) return n.data()[0] == 127;
    static const std::uint8_t kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return n == IpAddress::v6_bytes(kLoopback6);
}

Expected<void> parse_url(std::string_view url, LdapSettings& s) {
    std::string_view rest;
    if (istarts_with(url, "ldap://")) {
        s.scheme = LdapScheme::ldap;
        rest = url.substr(7);
    } else if (istarts_with(url, "ldaps://")) {
        s.scheme = LdapScheme::ldaps;
        rest = url.substr(8);
    } else if (istarts_with(url, "ldapi://")) {
        s.scheme = LdapScheme::ldapi;
        rest = url.substr(8);
    } else {
        return Failure{"not an LDAP URL (want ldap://, ldaps:// or ldapi://)"};
    }
    const std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash + 1 == rest.size())
        return Failure{"the URL names no base DN (ldap://HOST[:PORT]/BASE_DN)"};
    const std::string_view hostport = rest.substr(0, slash);
    const std::string_view dn = rest.substr(slash + 1);
    if (dn.find('?') != std::string_view::npos)
        return Failure{"the URL may hold only a base DN (no ?attributes?scope?filter)"};
    const auto base = percent_decode(dn);
    if (!base || base->empty()) return Failure{"the base DN of the URL is not well percent-encoded"};
    s.base_dn = *base;
    if (s.scheme == LdapScheme::ldapi) {
        const auto path = percent_decode(hostport);
        if (!path || path->empty() || (*path)[0] != '/')
            return Failure{
                "ldapi:// wants the socket's absolute path, percent-encoded (ldapi://%2Frun%2Fslapd%2Fldapi/BASE)"};
        s.host = *path;
        s.server_uri = "ldapi://" + std::string(hostport) + "/";
        return {};
    }
    if (hostport.empty()) return Failure{"the URL names no host"};
    std::string_view host = hostport, port;
    if (hostport[0] == '[') {
        const std::size_t close = hostport.find(']');
        if (close == std::string_view::npos) return Failure{"unclosed '[' in the URL's host"};
        host = hostport.substr(1, close - 1);
        const std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return Failure{"junk after the URL's host"};
            port = after.substr(1);
            if (port.empty()) return Failure{"empty port in the URL"};
        }
    } else if (const std::size_t colon = hostport.find(':'); colon != std::string_view::npos) {
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
        if (port.empty()) return Failure{"empty port in the URL"};
    }
    if (!port.empty()) {
        const auto p = parse_decimal<std::uint16_t>(port);
        if (!p || *p == 0) return Failure{"the URL's port must be 1 to 65535"};
    }
    if (host.empty()) return Failure{"the URL names no host"};
    for (char c : host)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || ascii_digit(c) || c == '-' || c == '.' || c == ':' ||
              c == '_'))
            return Failure{"the URL's host " + escape(host, 80) + " is not a host name or address"};
    s.host = std::string(host);
    s.server_uri = std::string(s.scheme == LdapScheme::ldaps ? "ldaps://" : "ldap://") + std::string(hostport) + "/";
    return {};
}

// Splits a list value at commas and white space.
std::vector<std::string> split_names(std::string_view v) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < v.size()) {
        while (i < v.size() && (v[i] == ',' || v[i] == ' ' || v[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < v.size() && v[j] != ',' && v[j] != ' ' && v[j] != '\t') ++j;
        if (j > i) out.emplace_back(v.substr(i, j - i));
        i = j;
    }
    return out;
}

std::optional<bool> parse_yes_no(std::string_view v) {
    if (iequals(v, "yes") || iequals(v, "true") || iequals(v, "on") || v == "1") return true;
    if (iequals(v, "no") || iequals(v, "false") || iequals(v, "off") || v == "0") return false;
    return std::nullopt;
}

struct Key {
    std::string_view name;
    std::string* text = nullptr;               // a string value ...
    std::vector<std::string>* list = nullptr;  // ... or a list of attribute names
    bool attribute = false;                    // the value(s) must be attribute names
};

}  // namespace

std::vector<std::string> LdapSchema::attributes() const {
    std::vector<std::string> out{"objectClass"};
    auto add = [&](const std::string& a) {
        for (const auto& have : out)
            if (iequals(have, a)) return;
        out.push_back(a);
    };
    for (const std::string* a : {&domain_name, &domain_services, &domain_require_tls, &domain_admin, &domain_postmaster,
                                 &domain_home, &user_address, &user_alias, &user_login, &user_cert, &user_home,
                                 &mta_name, &mta_destination, &mta_encoding, &mta_tls, &mta_tls_name})
        add(*a);
    for (const auto& a : domain_status) add(a);
    for (const auto& a : user_status) add(a);
    return out;
}

std::string LdapSchema::filter() const {
    return "(|(objectClass=" + domain_class + ")(objectClass=" + user_class + ")(objectClass=" + mta_class + "))";
}

std::string LdapSchema::fingerprint() const {
    std::string out = domain_class + "," + user_class + "," + mta_class;
    for (const auto& a : attributes()) (out += ",") += a;
    out += ";ds=";
    for (const auto& a : domain_status) (out += a) += ",";
    out += ";us=";
    for (const auto& a : user_status) (out += a) += ",";
    // The order of attributes() does not say which attribute plays which part: name them.
    for (const std::string* a : {&domain_name, &domain_services, &domain_require_tls, &domain_admin, &domain_postmaster,
                                 &domain_home, &user_address, &user_alias, &user_login, &user_cert, &user_home,
                                 &mta_name, &mta_destination, &mta_encoding, &mta_tls, &mta_tls_name})
        (out += ";") += *a;
    return to_lower(out);
}

std::string LdapSettings::display() const { return server_uri + escape(base_dn, 200); }

bool is_ldap_url(std::string_view spec) {
    return istarts_with(spec, "ldap://") || istarts_with(spec, "ldaps://") || istarts_with(spec, "ldapi://");
}

Expected<LdapSettings> parse_ldap_settings(std::string_view url, std::string_view file_text) {
    LdapSettings s;
    if (auto u = parse_url(url, s); !u) return Failure{"--directory " + escape(url, 200) + ": " + u.error()};
    LdapSchema& m = s.schema;
    std::string sasl_mech, start_tls, timeout, reconnect_max;
    const Key keys[] = {
        {"bind_dn", &s.bind_dn},
        {"bind_pw_file", &s.bind_pw_file},
        {"sasl_mech", &sasl_mech},
        {"start_tls", &start_tls},
        {"tls_ca_file", &s.tls_ca_file},
        {"tls_cert_file", &s.tls_cert_file},
        {"tls_key_file", &s.tls_key_file},
        {"state_file", &s.state_file},
        {"timeout", &timeout},
        {"reconnect_max", &reconnect_max},
        {"domain_class", &m.domain_class, nullptr, true},
        {"user_class", &m.user_class, nullptr, true},
        {"mta_class", &m.mta_class, nullptr, true},
        {"domain_name_attribute", &m.domain_name, nullptr, true},
        {"domain_status_attributes", nullptr, &m.domain_status, true},
        {"domain_services_attribute", &m.domain_services, nullptr, true},
        {"domain_require_tls_attribute", &m.domain_require_tls, nullptr, true},
        {"domain_admin_attribute", &m.domain_admin, nullptr, true},
        {"domain_postmaster_attribute", &m.domain_postmaster, nullptr, true},
        {"domain_home_attribute", &m.domain_home, nullptr, true},
        {"user_address_attribute", &m.user_address, nullptr, true},
        {"user_status_attributes", nullptr, &m.user_status, true},
        {"user_alias_attribute", &m.user_alias, nullptr, true},
        {"user_login_attribute", &m.user_login, nullptr, true},
        {"user_cert_attribute", &m.user_cert, nullptr, true},
        {"user_home_attribute", &m.user_home, nullptr, true},
        {"mta_name_attribute", &m.mta_name, nullptr, true},
        {"mta_destination_attribute", &m.mta_destination, nullptr, true},
        {"mta_encoding_attribute", &m.mta_encoding, nullptr, true},
        {"mta_tls_attribute", &m.mta_tls, nullptr, true},
        {"mta_tls_name_attribute", &m.mta_tls_name, nullptr, true},
    };
    std::vector<bool> seen(std::size(keys), false);
    std::size_t line_no = 0, pos = 0;
    while (pos < file_text.size()) {
        ++line_no;
        const std::size_t nl = file_text.find('\n', pos);
        const std::size_t end = nl == std::string_view::npos ? file_text.size() : nl;
        std::string_view line = file_text.substr(pos, end - pos);
        pos = end + 1;
        const std::string where = "line " + std::to_string(line_no) + ": ";
        if (line.size() > kMaxSettingsLine) return Failure{where + "longer than 4096 bytes"};
        if (line.find('\0') != std::string_view::npos) return Failure{where + "holds a NUL byte"};
        // A comment starts with '#' at the start of the line or after white space.
        for (std::size_t i = 0; i < line.size(); ++i)
            if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
                line = line.substr(0, i);
                break;
            }
        line = trim(line);
        if (line.empty()) continue;
        const std::size_t eq = line.find('=');
        if (eq == std::string_view::npos) return Failure{where + "expected key = value, got " + escape(line, 80)};
        const std::string_view key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
        std::size_t k = 0;
        while (k < std::size(keys) && keys[k].name != key) ++k;
        if (k == std::size(keys)) return Failure{where + "unknown key " + escape(key, 80)};
        if (seen[k]) return Failure{where + std::string(key) + " given twice"};
        seen[k] = true;
        if (value.empty()) return Failure{where + std::string(key) + " has an empty value"};
        if (keys[k].list) {
            *keys[k].list = split_names(value);
            for (const auto& a : *keys[k].list)
                if (!valid_attribute_name(a)) return Failure{where + "not an attribute name: " + escape(a, 80)};
            if (keys[k].list->empty()) return Failure{where + std::string(key) + " lists no attribute"};
        } else {
            *keys[k].text = std::string(value);
            if (keys[k].attribute && !valid_attribute_name(value))
                return Failure{where + "not an attribute or object class name: " + escape(value, 80)};
        }
    }
    if (!sasl_mech.empty()) {
        if (!iequals(sasl_mech, "EXTERNAL")) return Failure{"sasl_mech: only EXTERNAL is supported"};
        if (!s.bind_dn.empty()) return Failure{"bind_dn and sasl_mech exclude each other"};
        s.sasl_external = true;
    }
    if (!s.bind_dn.empty() && s.bind_pw_file.empty()) return Failure{"bind_dn needs bind_pw_file"};
    if (s.bind_dn.empty() && !s.bind_pw_file.empty()) return Failure{"bind_pw_file needs bind_dn"};
    if (s.tls_cert_file.empty() != s.tls_key_file.empty()) return Failure{"tls_cert_file and tls_key_file go together"};
    if (!start_tls.empty()) {
        const auto b = parse_yes_no(start_tls);
        if (!b) return Failure{"start_tls: want yes or no"};
        if (*b && s.scheme != LdapScheme::ldap) return Failure{"start_tls is for ldap:// URLs only"};
        s.start_tls = *b;
    }
    if (s.scheme == LdapScheme::ldap && start_tls.empty() && !loopback_host(s.host))
        return Failure{"ldap:// to " + escape(s.host, 80) +
                       " would carry the directory in clear: write start_tls = yes (or start_tls = no to accept "
                       "that), or use ldaps://"};
    if (!timeout.empty()) {
        const auto t = parse_decimal<unsigned>(timeout, 3600);
        if (!t || *t == 0) return Failure{"timeout: want 1 to 3600 seconds"};
        s.timeout = *t;
    }
    if (!reconnect_max.empty()) {
        const auto r = parse_decimal<unsigned>(reconnect_max, 86400);
        if (!r || *r == 0) return Failure{"reconnect_max: want 1 to 86400 seconds"};
        s.reconnect_max = *r;
    }
    return s;
}

}  // namespace xproxy
