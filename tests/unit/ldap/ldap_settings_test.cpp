// ldap_settings_test: the --directory URL and the --ldap-config file (ldap_settings.hpp).
#include <gtest/gtest.h>

#include <xproxy/ldap/ldap_settings.hpp>

using namespace xproxy;

namespace {

struct UrlRow {
    const char* url;
    const char* file;
    bool want_ok;
    const char* want_uri;  // server_uri, or the start of the error
    const char* want_base;
    const char* want_host;
};

TEST(LdapSettings, Urls) {
    const UrlRow rows[] = {
        {"ldap://127.0.0.1:3891/dc=example,dc=com", "", true, "ldap://127.0.0.1:3891/", "dc=example,dc=com",
         "127.0.0.1"},
        {"LDAP://localhost/ou=x%2Cdc=example", "", true, "ldap://localhost/", "ou=x,dc=example", "localhost"},
        {"ldap://[::1]:389/dc=x", "", true, "ldap://[::1]:389/", "dc=x", "::1"},
        {"ldaps://ldap.example.com/dc=example,dc=com", "", true, "ldaps://ldap.example.com/", "dc=example,dc=com",
         "ldap.example.com"},
        {"ldapi://%2Frun%2Fslapd%2Fldapi/dc=example,dc=com", "", true, "ldapi://%2Frun%2Fslapd%2Fldapi/",
         "dc=example,dc=com", "/run/slapd/ldapi"},
        {"ldap://ldap.example.com/dc=x", "start_tls = yes\n", true, "ldap://ldap.example.com/", "dc=x",
         "ldap.example.com"},
        {"ldap://ldap.example.com/dc=x", "start_tls = no   # inside a private network\n", true,
         "ldap://ldap.example.com/", "dc=x", "ldap.example.com"},
        // refused
        {"ldap://127.0.0.1:3891/", "", false, "--directory ldap://127.0.0.1:3891/: the URL names no base DN", "", ""},
        {"ldap://127.0.0.1:3891", "", false, "--directory ldap://127.0.0.1:3891: the URL names no base DN", "", ""},
        {"ldap:///dc=x", "", false, "--directory ldap:///dc=x: the URL names no host", "", ""},
        {"ldap://127.0.0.1:0/dc=x", "", false, "--directory ldap://127.0.0.1:0/dc=x: the URL's port", "", ""},
        {"ldap://127.0.0.1:70000/dc=x", "", false, "--directory ldap://127.0.0.1:70000/dc=x: the URL's port", "", ""},
        {"ldap://127.0.0.1/dc=x?cn?sub", "", false, "--directory ldap://127.0.0.1/dc=x?cn?sub: the URL may hold only",
         "", ""},
        {"ldap://127.0.0.1/dc=%zz", "", false, "--directory ldap://127.0.0.1/dc=%zz: the base DN", "", ""},
        {"ldap://127.0.0.1/dc=%00", "", false, "--directory ldap://127.0.0.1/dc=%00: the base DN", "", ""},
        {"ldapi://run/dc=x", "", false, "--directory ldapi://run/dc=x: ldapi:// wants", "", ""},
        {"http://x/dc=x", "", false, "--directory http://x/dc=x: not an LDAP URL", "", ""},
        {"ldap://ldap.example.com/dc=x", "", false, "ldap:// to ldap.example.com would carry the directory in clear",
         "", ""},
        {"ldap://192.0.2.1/dc=x", "", false, "ldap:// to 192.0.2.1 would carry", "", ""},
        {"ldaps://ldap.example.com/dc=x", "start_tls = yes\n", false, "start_tls is for ldap:// URLs only", "", ""},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.url);
        auto s = parse_ldap_settings(r.url, r.file);
        ASSERT_EQ(s.has_value(), r.want_ok) << (s ? "" : s.error());
        if (r.want_ok) {
            EXPECT_EQ(s->server_uri, r.want_uri);
            EXPECT_EQ(s->base_dn, r.want_base);
            EXPECT_EQ(s->host, r.want_host);
        } else {
            EXPECT_TRUE(s.error().starts_with(r.want_uri)) << s.error();
        }
    }
}

TEST(LdapSettings, FileKeys) {
    const char* text =
        "# a comment\n"
        "bind_dn = cn=xproxy,ou=services,dc=example,dc=com   # simple bind\n"
        "bind_pw_file = /etc/xproxy/ldap.secret\n"
        "tls_ca_file=/etc/ssl/ca.pem\n"
        "state_file = /var/lib/xproxy/policyd.ldap\n"
        "timeout = 3\n"
        "reconnect_max = 30\n"
        "domain_status_attributes = inetDomainStatus, mailDomainStatus\n"
        "user_status_attributes = inetUserStatus mailUserStatus\n"
        "user_alias_attribute = mailAlternateAddress\n"
        "user_login_attribute = uid\n"
        "\n";
    auto s = parse_ldap_settings("ldap://127.0.0.1/dc=example,dc=com", text);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->bind_dn, "cn=xproxy,ou=services,dc=example,dc=com");
    EXPECT_EQ(s->bind_pw_file, "/etc/xproxy/ldap.secret");
    EXPECT_EQ(s->tls_ca_file, "/etc/ssl/ca.pem");
    EXPECT_EQ(s->state_file, "/var/lib/xproxy/policyd.ldap");
    EXPECT_EQ(s->timeout, 3u);
    EXPECT_EQ(s->reconnect_max, 30u);
    EXPECT_EQ(s->schema.domain_status, (std::vector<std::string>{"inetDomainStatus", "mailDomainStatus"}));
    EXPECT_EQ(s->schema.user_status, (std::vector<std::string>{"inetUserStatus", "mailUserStatus"}));
    EXPECT_EQ(s->schema.user_alias, "mailAlternateAddress");
    EXPECT_EQ(s->schema.user_login, "uid");
    EXPECT_EQ(s->schema.domain_class, "xproxyDomain");  // default kept
    EXPECT_FALSE(s->sasl_external);
    // The search asks for every mapped attribute once.
    const auto attrs = s->schema.attributes();
    EXPECT_EQ(std::count(attrs.begin(), attrs.end(), "uid"), 1);
    EXPECT_EQ(std::count(attrs.begin(), attrs.end(), "mailUserStatus"), 1);
    EXPECT_EQ(std::count(attrs.begin(), attrs.end(), "xproxyHome"), 1);
    EXPECT_EQ(s->schema.filter(), "(|(objectClass=xproxyDomain)(objectClass=xproxyUser)(objectClass=xproxyMta))");
}

TEST(LdapSettings, FileRefusals) {
    const struct {
        const char* file;
        const char* want_error;
    } rows[] = {
        {"bind_dn = cn=x\n", "bind_dn needs bind_pw_file"},
        {"bind_pw_file = /x\n", "bind_pw_file needs bind_dn"},
        {"bind_dn = cn=x\nbind_pw_file = /x\nsasl_mech = EXTERNAL\n", "bind_dn and sasl_mech exclude each other"},
        {"sasl_mech = PLAIN\n", "sasl_mech: only EXTERNAL is supported"},
        {"tls_cert_file = /c.pem\n", "tls_cert_file and tls_key_file go together"},
        {"\n\nbind_passwd = x\n", "line 3: unknown key bind_passwd"},
        {"timeout = 1\ntimeout = 2\n", "line 2: timeout given twice"},
        {"timeout =\n", "line 1: timeout has an empty value"},
        {"timeout = 0\n", "timeout: want 1 to 3600 seconds"},
        {"timeout = -1\n", "timeout: want 1 to 3600 seconds"},
        {"start_tls = maybe\n", "start_tls: want yes or no"},
        {"just words\n", "line 1: expected key = value"},
        {"user_class = x)(objectClass=*\n", "line 1: not an attribute or object class name"},
        {"user_status_attributes = a, b)\n", "line 1: not an attribute name"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.file);
        auto s = parse_ldap_settings("ldap://127.0.0.1/dc=x", r.file);
        ASSERT_FALSE(s);
        EXPECT_TRUE(s.error().starts_with(r.want_error)) << s.error();
    }
}

TEST(LdapSettings, SaslExternalAndFingerprint) {
    auto a = parse_ldap_settings("ldapi://%2Ftmp%2Fs/dc=x", "sasl_mech = external\n");
    ASSERT_TRUE(a) << a.error();
    EXPECT_TRUE(a->sasl_external);
    auto b = parse_ldap_settings("ldapi://%2Ftmp%2Fs/dc=x", "user_login_attribute = uid\n");
    ASSERT_TRUE(b);
    EXPECT_NE(a->schema.fingerprint(), b->schema.fingerprint());
    EXPECT_TRUE(is_ldap_url("ldaps://x/dc=y"));
    EXPECT_FALSE(is_ldap_url("/etc/xproxy/directory"));
}

}  // namespace
