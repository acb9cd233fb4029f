// ldap_entry.cpp: LDAP attributes -> a domain, user or MTA record (ldap_entry.hpp).
#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/ldap/ldap_entry.hpp>
#include <xproxy/policy/directory_file.hpp>

namespace xproxy {

namespace {

const std::vector<std::string>* values_of(const LdapAttributes& attrs, std::string_view name) {
    for (const auto& [n, v] : attrs)
        if (iequals(n, name)) return &v;
    return nullptr;
}

bool has_class(const LdapAttributes& attrs, std::string_view cls) {
    if (const auto* v = values_of(attrs, "objectClass"))
        for (const auto& c : *v)
            if (iequals(c, cls)) return true;
    return false;
}

std::string quoted(std::string_view s) { return "'" + escape(s, 80) + "'"; }

// The one value of a single-valued attribute: empty when absent; an error when repeated.
Expected<std::string> single(const LdapAttributes& attrs, const std::string& name) {
    const auto* v = values_of(attrs, name);
    if (!v || v->empty()) return std::string();
    if (v->size() > 1) return Failure{name + " has " + std::to_string(v->size()) + " values (want one)"};
    if (v->front().empty()) return Failure{name + " is empty"};
    return v->front();
}

// Every item of a list attribute: its values, each possibly a comma-separated list.
Expected<std::vector<std::string>> items(const LdapAttributes& attrs, const std::string& name) {
    std::vector<std::string> out;
    const auto* v = values_of(attrs, name);
    if (!v) return out;
    for (const auto& value : *v) {
        std::string_view rest = value;
        while (true) {
            const std::size_t comma = rest.find(',');
            const std::string_view item = trim(rest.substr(0, comma));
            if (item.empty()) return Failure{name + ": empty item in " + quoted(value)};
            out.emplace_back(item);
            if (comma == std::string_view::npos) break;
            rest = rest.substr(comma + 1);
        }
    }
    return out;
}

// The entry's status attributes, in the order of the settings, each value in turn: the
// first that is not active wins (combine_states(), the messaging schema's precedence).
Expected<EntryState> combined_state(const LdapAttributes& attrs, const std::vector<std::string>& names) {
    EntryState state = EntryState::active;
    for (const auto& name : names) {
        const auto* v = values_of(attrs, name);
        if (!v) continue;
        for (const auto& value : *v) {
            const auto s = parse_entry_state(value);
            if (!s)
                return Failure{name + ": unknown state " + quoted(value) +
                               " (want active, inactive, disabled, hold, overquota, deleted or removed)"};
            state = combine_states({state, *s});
        }
    }
    return state;
}

std::optional<bool> parse_ldap_bool(std::string_view v) {
    if (iequals(v, "TRUE") || iequals(v, "yes") || iequals(v, "on") || v == "1") return true;
    if (iequals(v, "FALSE") || iequals(v, "no") || iequals(v, "off") || v == "0") return false;
    return std::nullopt;
}

Expected<void> domain_fields(const LdapSchema& m, const LdapAttributes& a, LdapRecord& r) {
    auto name = single(a, m.domain_name);
    if (!name) return Failure{name.error()};
    if (name->empty()) return Failure{"no " + m.domain_name};
    r.name = std::move(*name);
    auto state = combined_state(a, m.domain_status);
    if (!state) return Failure{state.error()};
    r.state = *state;
    if (values_of(a, m.domain_services)) {
        auto list = items(a, m.domain_services);
        if (!list) return Failure{list.error()};
        r.services = ServiceSet{};
        for (const auto& item : *list) {
            if (iequals(item, "none") && list->size() == 1) break;
            const auto s = parse_service(item);
            if (!s)
                return Failure{m.domain_services + ": unknown service " + quoted(item) +
                               " (want smtp, submission, lmtp, imap, imaps, pop3, pop3s, webmail or none)"};
            r.services.add(*s);
        }
    }
    auto tls = single(a, m.domain_require_tls);
    if (!tls) return Failure{tls.error()};
    if (!tls->empty()) {
        const auto b = parse_ldap_bool(*tls);
        if (!b) return Failure{m.domain_require_tls + ": " + quoted(*tls) + " is not TRUE or FALSE"};
        r.require_tls = *b;
    }
    for (auto [attr, field] : {std::pair{&m.domain_admin, &r.admin}, std::pair{&m.domain_postmaster, &r.postmaster},
                               std::pair{&m.domain_home, &r.home}}) {
        auto v = single(a, *attr);
        if (!v) return Failure{v.error()};
        *field = std::move(*v);
    }
    return {};
}

Expected<void> user_fields(const LdapSchema& m, const LdapAttributes& a, LdapRecord& r) {
    auto address = single(a, m.user_address);
    if (!address) return Failure{address.error()};
    if (address->empty()) return Failure{"no " + m.user_address};
    const std::size_t at = address->rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 == address->size())
        return Failure{m.user_address + ": " + quoted(*address) + " is not local@domain"};
    r.name = std::move(*address);
    const std::string_view domain = std::string_view(r.name).substr(at + 1);
    auto state = combined_state(a, m.user_status);
    if (!state) return Failure{state.error()};
    r.state = *state;
    auto home = single(a, m.user_home);
    if (!home) return Failure{home.error()};
    r.home = std::move(*home);
    auto aliases = items(a, m.user_alias);
    if (!aliases) return Failure{aliases.error()};
    for (auto& alias : *aliases) {
        // A full address in the user's domain, or a bare local part.
        const std::size_t aat = alias.rfind('@');
        if (aat != std::string::npos) {
            if (!iequals(std::string_view(alias).substr(aat + 1), domain))
                return Failure{m.user_alias + ": " + quoted(alias) + " is not in the user's domain " + quoted(domain)};
            alias.resize(aat);
        }
        r.aliases.push_back(std::move(alias));
    }
    auto logins = items(a, m.user_login);
    if (!logins) return Failure{logins.error()};
    r.logins = std::move(*logins);
    auto certs = items(a, m.user_cert);
    if (!certs) return Failure{certs.error()};
    r.fingerprints = std::move(*certs);
    return {};
}

Expected<void> mta_fields(const LdapSchema& m, const LdapAttributes& a, LdapRecord& r) {
    auto name = single(a, m.mta_name);
    if (!name) return Failure{name.error()};
    if (name->empty()) return Failure{"no " + m.mta_name};
    r.name = std::move(*name);
    auto dests = items(a, m.mta_destination);
    if (!dests) return Failure{dests.error()};
    if (dests->empty()) return Failure{"no " + m.mta_destination};
    if (dests->size() > kMaxMtaDestinations) return Failure{m.mta_destination + " lists more than 16 addresses"};
    for (const auto& item : *dests) {
        auto e = parse_mta_destination(item);
        if (!e) return Failure{m.mta_destination + ": " + e.error()};
        r.destinations.push_back(*e);
    }
    auto encoding = single(a, m.mta_encoding);
    if (!encoding) return Failure{encoding.error()};
    if (!encoding->empty()) {
        const auto e = parse_mta_encoding(*encoding);
        if (!e) return Failure{m.mta_encoding + ": unknown encoding " + quoted(*encoding)};
        r.encoding = *e;
    }
    auto tls = single(a, m.mta_tls);
    if (!tls) return Failure{tls.error()};
    if (!tls->empty()) {
        const auto t = parse_mta_tls(*tls);
        if (!t) return Failure{m.mta_tls + ": unknown TLS level " + quoted(*tls)};
        r.tls = *t;
    }
    auto tls_name = single(a, m.mta_tls_name);
    if (!tls_name) return Failure{tls_name.error()};
    r.tls_name = std::move(*tls_name);
    return {};
}

}  // namespace

Expected<LdapRecord> parse_ldap_entry(const LdapSchema& schema, const LdapAttributes& attributes) {
    LdapRecord r;
    const bool domain = has_class(attributes, schema.domain_class);
    const bool user = has_class(attributes, schema.user_class);
    const bool mta = has_class(attributes, schema.mta_class);
    if (int(domain) + int(user) + int(mta) > 1)
        return Failure{"the entry has more than one of the directory's object classes"};
    Expected<void> ok;
    if (domain) {
        r.kind = LdapKind::domain;
        ok = domain_fields(schema, attributes, r);
    } else if (user) {
        r.kind = LdapKind::user;
        ok = user_fields(schema, attributes, r);
    } else if (mta) {
        r.kind = LdapKind::mta;
        ok = mta_fields(schema, attributes, r);
    }
    if (!ok) return Failure{ok.error()};
    return r;
}

}  // namespace xproxy
