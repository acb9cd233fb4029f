// ldap_settings.hpp: where the LDAP directory is and how to read it: the --directory URL
// (ldap://, ldaps://, ldapi://, RFC 4516 with the search base as its DN) and the
// --ldap-config settings file (doc/directory.md, "LDAP backend").
//
// Promises:
// - parse_ldap_settings() is pure: text in, settings or a message out (the line of the
//   settings file is named: "line N: ..."); never throws on bad input.
// - Closed defaults: a URL without a base DN, an unknown key, a key given twice, plain
//   ldap:// to a host that is not loopback without an explicit start_tls (yes, or a
//   written "no"), a password without a bind DN, a client certificate without its key:
//   all refused.
// - The password is never in the settings: only the path of its file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>

namespace xproxy {

// Which LDAP attributes and object classes hold the directory (defaults: the xproxy schema
// of packaging/ldap/). Names are compared without regard to ASCII case.
struct LdapSchema {
    std::string domain_class = "xproxyDomain";
    std::string user_class = "xproxyUser";
    std::string mta_class = "xproxyMta";
    std::string domain_name = "xproxyDomainName";
    std::vector<std::string> domain_status{"xproxyStatus"};  // the first value that is not active wins
    std::string domain_services = "xproxyServices";
    std::string domain_require_tls = "xproxyRequireTLS";
    std::string domain_admin = "xproxyAdmin";
    std::string domain_postmaster = "xproxyPostmaster";
    std::string domain_home = "xproxyHome";
    std::string user_address = "mail";
    std::vector<std::string> user_status{"xproxyStatus"};
    std::string user_alias = "xproxyAlias";
    std::string user_login = "xproxyLogin";
    std::string user_cert = "xproxyCertFingerprint";
    std::string user_home = "xproxyHome";
    std::string mta_name = "cn";
    std::string mta_destination = "xproxyDestination";
    std::string mta_encoding = "xproxyEncoding";
    std::string mta_tls = "xproxyTLS";
    std::string mta_tls_name = "xproxyTLSName";

    // Every attribute above (plus objectClass) once, for the search request.
    std::vector<std::string> attributes() const;
    // The search filter: entries of any of the three classes.
    std::string filter() const;
    // A text that changes when any mapping changes (kept in the state file).
    std::string fingerprint() const;
};

enum class LdapScheme : std::uint8_t { ldap, ldaps, ldapi };

struct LdapSettings {
    LdapScheme scheme = LdapScheme::ldap;
    std::string server_uri;    // scheme://host[:port]/ (ldapi: the encoded socket path) for libldap
    std::string host;          // decoded host name (ldapi: the socket path)
    std::string base_dn;       // decoded search base
    std::string bind_dn;       // simple bind as this DN ...
    std::string bind_pw_file;  // ... with the password in this file
    bool sasl_external = false;
    bool start_tls = false;
    std::string tls_ca_file, tls_cert_file, tls_key_file;
    std::string state_file;
    unsigned timeout = 10;        // seconds: connect, bind, operations
    unsigned reconnect_max = 60;  // seconds: the backoff's ceiling
    LdapSchema schema;

    // "ldap://host:port/base" for logs (no secret in it).
    std::string display() const;
};

// True when `spec` (a --directory value) names an LDAP server rather than a file.
bool is_ldap_url(std::string_view spec);

// The settings from a --directory URL and the text of a --ldap-config file (may be empty).
Expected<LdapSettings> parse_ldap_settings(std::string_view url, std::string_view file_text);

}  // namespace xproxy
