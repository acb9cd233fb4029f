// fuzz_ldap_settings: parse_ldap_settings on arbitrary text (the first line is the
// --directory URL, the rest the settings file), checking its promises: no crash or read
// past the text; accepted settings have a base DN, a server URI of their scheme, valid
// timeouts, and never both a bind DN and SASL EXTERNAL; a search filter that names the
// three classes; a refusal of a file line names it ("line N: ...").
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <xproxy/ldap/ldap_settings.hpp>

using namespace xproxy;

namespace {
void check(bool ok) {
    if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::size_t nl = text.find('\n');
    const std::string_view url = text.substr(0, nl);
    const std::string_view file = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    const auto s = parse_ldap_settings(url, file);
    if (!s) {
        check(!s.error().empty());
        return 0;
    }
    check(!s->base_dn.empty() && !s->host.empty());
    check(s->server_uri.starts_with(s->scheme == LdapScheme::ldap    ? "ldap://"
                                    : s->scheme == LdapScheme::ldaps ? "ldaps://"
                                                                     : "ldapi://"));
    check(s->timeout >= 1 && s->reconnect_max >= 1);
    check(!(s->sasl_external && !s->bind_dn.empty()));
    check(s->bind_dn.empty() == s->bind_pw_file.empty());
    check(!s->start_tls || s->scheme == LdapScheme::ldap);
    const std::string filter = s->schema.filter();
    check(filter.find(s->schema.user_class) != std::string::npos);
    check(!s->schema.attributes().empty());
    (void)s->schema.fingerprint();
    (void)s->display();
    return 0;
}
