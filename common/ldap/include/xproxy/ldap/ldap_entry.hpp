// ldap_entry.hpp: one LDAP entry (its attributes, as the server sent them) -> one record
// of the directory: a domain, a user or a home MTA, by its object class and the attribute
// names of the LdapSchema (doc/directory.md, "LDAP backend").
//
// Promises:
// - parse_ldap_entry() is pure and never throws on bad input; an entry it refuses gets a
//   sentence saying why (the caller adds the DN and skips the entry).
// - Attribute and class names are compared without regard to ASCII case; values of
//   states, services, booleans, encodings and TLS levels too.
// - Several status attributes: the first value that is not active wins (in the order the
//   settings list them); an unknown value refuses the entry.
// - Entries of none of the three classes are LdapKind::other (not an error).
// - Records own their bytes; names are as the server sent them (DirectoryBuilder
//   validates and lower-cases them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/ldap/ldap_settings.hpp>
#include <xproxy/policy/directory.hpp>

namespace xproxy {

// Attribute name -> values, in the server's order.
using LdapAttributes = std::vector<std::pair<std::string, std::vector<std::string>>>;

enum class LdapKind : std::uint8_t { other, domain, user, mta };

struct LdapRecord {
    LdapKind kind = LdapKind::other;
    std::string name;  // domain name, user address (local@domain) or MTA name
    EntryState state = EntryState::active;
    // domain
    ServiceSet services = kDefaultServices;
    bool require_tls = false;
    std::string admin, postmaster;
    // domain and user
    std::string home;
    // user
    std::vector<std::string> aliases;  // local parts
    std::vector<std::string> logins;
    std::vector<std::string> fingerprints;
    // mta
    std::vector<MtaEndpoint> destinations;
    MtaEncoding encoding = MtaEncoding::automatic;
    MtaTls tls = MtaTls::unset;
    std::string tls_name;

    friend bool operator==(const LdapRecord&, const LdapRecord&) = default;
};

Expected<LdapRecord> parse_ldap_entry(const LdapSchema& schema, const LdapAttributes& attributes);

}  // namespace xproxy
