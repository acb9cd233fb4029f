// ldap_entry_test: LDAP attributes -> directory records (ldap_entry.hpp), and the model
// that builds a directory from them (ldap_model.hpp).
#include <gtest/gtest.h>

#include <xproxy/ldap/ldap_entry.hpp>
#include <xproxy/ldap/ldap_model.hpp>

using namespace xproxy;

namespace {

const LdapSchema kSchema;

LdapAttributes domain(const char* name, std::vector<std::pair<std::string, std::vector<std::string>>> more = {}) {
    LdapAttributes a{{"objectClass", {"organizationalUnit", "xproxyDomain"}}, {"xproxyDomainName", {name}}};
    for (auto& m : more) a.push_back(std::move(m));
    return a;
}
LdapAttributes user(const char* mail, std::vector<std::pair<std::string, std::vector<std::string>>> more = {}) {
    LdapAttributes a{{"objectclass", {"inetOrgPerson", "XPROXYUSER"}}, {"MAIL", {mail}}};
    for (auto& m : more) a.push_back(std::move(m));
    return a;
}

TEST(LdapEntry, Domain) {
    auto r = parse_ldap_entry(kSchema, domain("Example.COM", {{"xproxyServices", {"smtp,imap", "submission"}},
                                                              {"xproxyRequireTLS", {"TRUE"}},
                                                              {"xproxyAdmin", {"hostmaster@example.com"}},
                                                              {"xproxyHome", {"mta1"}}}));
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->kind, LdapKind::domain);
    EXPECT_EQ(r->name, "Example.COM");
    EXPECT_EQ(r->services, (ServiceSet{Service::smtp, Service::imap, Service::submission}));
    EXPECT_TRUE(r->require_tls);
    EXPECT_EQ(r->admin, "hostmaster@example.com");
    EXPECT_EQ(r->home, "mta1");
    EXPECT_EQ(r->state, EntryState::active);
    auto none = parse_ldap_entry(kSchema, domain("x.example", {{"xproxyServices", {"none"}}}));
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->services.empty());
    auto dflt = parse_ldap_entry(kSchema, domain("x.example"));
    ASSERT_TRUE(dflt);
    EXPECT_EQ(dflt->services, kDefaultServices);
}

TEST(LdapEntry, StatusFirstNonActiveWins) {
    LdapSchema m;
    m.user_status = {"inetUserStatus", "mailUserStatus"};
    const struct {
        std::vector<std::string> inet, mail;
        EntryState want;
    } rows[] = {
        {{}, {}, EntryState::active},
        {{"active"}, {"active"}, EntryState::active},
        {{"Active"}, {"disabled"}, EntryState::disabled},
        {{"hold"}, {"deleted"}, EntryState::hold},  // the first non-active value wins
        {{"removed"}, {"inactive"}, EntryState::deleted},
        {{}, {"OVERQUOTA"}, EntryState::overquota},
        {{"active"}, {"deleted"}, EntryState::deleted},
    };
    for (const auto& row : rows) {
        LdapAttributes a = user("a@example.com");
        if (!row.inet.empty()) a.push_back({"inetUserStatus", row.inet});
        if (!row.mail.empty()) a.push_back({"mailUserStatus", row.mail});
        auto r = parse_ldap_entry(m, a);
        ASSERT_TRUE(r) << r.error();
        EXPECT_EQ(r->state, row.want);
    }
    auto bad = parse_ldap_entry(m, user("a@example.com", {{"mailUserStatus", {"actve"}}}));
    ASSERT_FALSE(bad);
    EXPECT_EQ(
        bad.error(),
        "mailUserStatus: unknown state 'actve' (want active, inactive, disabled, hold, overquota, deleted or removed)");
}

TEST(LdapEntry, User) {
    auto r = parse_ldap_entry(kSchema, user("alice@example.com", {{"xproxyAlias", {"a.smith@EXAMPLE.com", "sales"}},
                                                                  {"xproxyLogin", {"alice", "ALICE2"}},
                                                                  {"xproxyHome", {"mta1"}}}));
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->kind, LdapKind::user);
    EXPECT_EQ(r->aliases, (std::vector<std::string>{"a.smith", "sales"}));
    EXPECT_EQ(r->logins, (std::vector<std::string>{"alice", "ALICE2"}));
    EXPECT_EQ(r->home, "mta1");
}

TEST(LdapEntry, Mta) {
    auto r = parse_ldap_entry(kSchema, {{"objectClass", {"xproxyMta"}},
                                        {"cn", {"mta1.example.net"}},
                                        {"xproxyDestination", {"192.0.2.10,[2001:db8::10]:2525"}},
                                        {"xproxyTLS", {"verify"}},
                                        {"xproxyTLSName", {"mx.example.net"}},
                                        {"xproxyEncoding", {"xclient"}}});
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->kind, LdapKind::mta);
    ASSERT_EQ(r->destinations.size(), 2u);
    EXPECT_EQ(r->destinations[1].port, 2525);
    EXPECT_EQ(r->tls, MtaTls::verify);
    EXPECT_EQ(r->encoding, MtaEncoding::xclient);
}

TEST(LdapEntry, Refusals) {
    const struct {
        LdapAttributes attrs;
        const char* want;
    } rows[] = {
        {user("alice"), "mail: 'alice' is not local@domain"},
        {user("alice@"), "mail: 'alice@' is not local@domain"},
        {{{"objectClass", {"xproxyUser"}}}, "no mail"},
        {{{"objectClass", {"xproxyUser"}}, {"mail", {"a@x", "b@x"}}}, "mail has 2 values (want one)"},
        {user("a@example.com", {{"xproxyAlias", {"b@other.example"}}}),
         "xproxyAlias: 'b@other.example' is not in the user's domain 'example.com'"},
        {domain("x.example", {{"xproxyServices", {"smtp,,imap"}}}), "xproxyServices: empty item in 'smtp,,imap'"},
        {domain("x.example", {{"xproxyServices", {"ftp"}}}), "xproxyServices: unknown service 'ftp'"},
        {domain("x.example", {{"xproxyRequireTLS", {"maybe"}}}), "xproxyRequireTLS: 'maybe' is not TRUE or FALSE"},
        {{{"objectClass", {"xproxyDomain", "xproxyUser"}}}, "the entry has more than one"},
        {{{"objectClass", {"xproxyMta"}}, {"cn", {"m"}}}, "no xproxyDestination"},
        {{{"objectClass", {"xproxyMta"}}, {"cn", {"m"}}, {"xproxyDestination", {"mx.example.net"}}},
         "xproxyDestination: destinations=: 'mx.example.net': want a numeric address"},
    };
    for (const auto& row : rows) {
        auto r = parse_ldap_entry(kSchema, row.attrs);
        ASSERT_FALSE(r) << row.want;
        EXPECT_TRUE(r.error().starts_with(row.want)) << r.error();
    }
    auto other = parse_ldap_entry(kSchema, {{"objectClass", {"organizationalUnit"}}, {"ou", {"people"}}});
    ASSERT_TRUE(other);
    EXPECT_EQ(other->kind, LdapKind::other);
}

std::string uuid(int n) {
    std::string u(16, '\0');
    u[15] = static_cast<char>(n);
    u[0] = 'U';
    return u;
}

TEST(LdapModel, BuildSkipsBadEntriesAndReportsOnce) {
    LdapModel m;
    ASSERT_TRUE(m.upsert(uuid(1), "ou=example.com,dc=x", kSchema, domain("example.com")));
    ASSERT_TRUE(m.upsert(uuid(2), "uid=alice,dc=x", kSchema, user("alice@example.com", {{"xproxyAlias", {"sales"}}})));
    ASSERT_TRUE(m.upsert(uuid(3), "uid=bob,dc=x", kSchema, user("bob@example.com", {{"xproxyAlias", {"sales"}}})));
    ASSERT_TRUE(m.upsert(uuid(4), "uid=carol,dc=x", kSchema, user("carol@nowhere.example")));
    ASSERT_TRUE(m.upsert(uuid(5), "uid=dave,dc=x", kSchema, user("dave@example.com", {{"xproxyStatus", {"bogus"}}})));
    ASSERT_TRUE(m.upsert(uuid(6), "uid=erin,dc=x", kSchema, user("erin@example.com", {{"xproxyStatus", {"hold"}}})));
    EXPECT_FALSE(m.upsert(uuid(7), "ou=people,dc=x", kSchema, {{"objectClass", {"organizationalUnit"}}}));
    std::vector<std::string> skipped;
    LdapModel::Counts c;
    Directory d = m.build(c,
                          [&](const std::string& dn, const std::string& why) { skipped.push_back(dn + ": " + why); });
    EXPECT_EQ(c.entries, 6u);
    EXPECT_EQ(c.domains, 1u);
    EXPECT_EQ(c.users, 2u);
    EXPECT_EQ(c.skipped, 3u);
    ASSERT_EQ(skipped.size(), 3u);
    std::sort(skipped.begin(), skipped.end());
    EXPECT_EQ(skipped[0], "uid=bob,dc=x: alias sales@example.com is already defined");  // alice sorts first
    EXPECT_TRUE(skipped[1].starts_with("uid=carol,dc=x: domain 'nowhere.example' of user")) << skipped[1];
    EXPECT_TRUE(skipped[2].starts_with("uid=dave,dc=x: xproxyStatus: unknown state 'bogus'")) << skipped[2];
    EXPECT_TRUE(d.find_address("sales@example.com"));
    EXPECT_EQ(d.find_address("sales@example.com")->local_part, "alice");
    EXPECT_EQ(d.find_address("erin@example.com")->state, EntryState::hold);
    // A second build reports nothing new; fixing bob's entry lets it in.
    skipped.clear();
    (void)m.build(c, [&](const std::string& dn, const std::string& why) { skipped.push_back(dn + why); });
    EXPECT_TRUE(skipped.empty());
    ASSERT_TRUE(m.upsert(uuid(3), "uid=bob,dc=x", kSchema, user("bob@example.com")));
    Directory d2 = m.build(c, nullptr);
    EXPECT_EQ(c.users, 3u);
    EXPECT_EQ(c.skipped, 2u);
    EXPECT_TRUE(d2.find_address("BOB@example.com"));
    // A delete removes it again; a rename (same UUID, new DN) changes nothing else.
    EXPECT_TRUE(m.erase(uuid(3)));
    ASSERT_TRUE(m.upsert(uuid(2), "uid=alice2,dc=x", kSchema, user("alice@example.com")));
    Directory d3 = m.build(c, nullptr);
    EXPECT_FALSE(d3.find_address("bob@example.com"));
    EXPECT_FALSE(d3.find_address("sales@example.com"));
    EXPECT_TRUE(d3.find_address("alice@example.com"));
}

TEST(LdapModel, StateRoundTrip) {
    LdapModel m;
    ASSERT_TRUE(
        m.upsert(uuid(1), "ou=example.com,dc=x", kSchema,
                 domain("example.com", {{"xproxyServices", {"smtp"}}, {"xproxyPostmaster", {"pm@example.com"}}})));
    ASSERT_TRUE(m.upsert(uuid(2), "uid=a b,dc=x", kSchema,
                         user("alice@example.com", {{"xproxyAlias", {"sales"}}, {"xproxyLogin", {"al\\ice"}}})));
    ASSERT_TRUE(
        m.upsert(uuid(3), "cn=m,dc=x", kSchema,
                 {{"objectClass", {"xproxyMta"}}, {"cn", {"m"}}, {"xproxyDestination", {"[::1]:25,127.0.0.1"}}}));
    ASSERT_TRUE(m.upsert(uuid(4), "uid=bad,dc=x", kSchema, user("bad")));
    const std::optional<std::string> cookie = std::string("rid=001,csn=20261206095204.515716Z#000000#001#000000");
    const std::string text = m.serialize("ldap://127.0.0.1/dc=x schema", cookie);
    LdapModel again;
    auto st = again.parse_state(text);
    ASSERT_TRUE(st) << st.error();
    EXPECT_EQ(st->source, "ldap://127.0.0.1/dc=x schema");
    EXPECT_EQ(st->cookie, cookie);
    EXPECT_EQ(again.size(), 4u);
    EXPECT_EQ(again.serialize("ldap://127.0.0.1/dc=x schema", cookie).size(), text.size());
    LdapModel::Counts c1, c2;
    const Directory d1 = m.build(c1, nullptr), d2 = again.build(c2, nullptr);
    EXPECT_EQ(c1.users, c2.users);
    EXPECT_EQ(c2.skipped, 1u);
    EXPECT_EQ(d2.find_address("sales@example.com")->local_part, "alice");
    EXPECT_TRUE(d2.login_may_send_as("AL\\ice", *d2.find_address("alice@example.com")));
    EXPECT_EQ(d2.find_mta("M")->destinations.size(), 2u);
    // Every strict prefix is refused as a whole, and the model is left as it was.
    for (std::size_t n = 0; n < text.size(); n += 7) {
        LdapModel cut;
        ASSERT_TRUE(cut.upsert(uuid(9), "x", kSchema, domain("keep.example")));
        EXPECT_FALSE(cut.parse_state(text.substr(0, n))) << n;
        EXPECT_EQ(cut.size(), 1u);
    }
}

TEST(LdapModel, StateFileKeepsEveryStateAndRefusesVersion1) {
    LdapModel m;
    ASSERT_TRUE(m.upsert(uuid(1), "ou=example.com,dc=x", kSchema, domain("example.com")));
    const EntryState all[] = {EntryState::active,  EntryState::inactive, EntryState::disabled,
                              EntryState::deleted, EntryState::hold,     EntryState::overquota};
    for (std::size_t i = 0; i < std::size(all); ++i) {
        const std::string address = "u" + std::to_string(i) + "@example.com";
        ASSERT_TRUE(m.upsert(uuid(10 + static_cast<int>(i)), "uid=u,dc=x", kSchema,
                             user(address.c_str(), {{"xproxyStatus", {std::string(to_string(all[i]))}}})));
    }
    const std::string text = m.serialize("src", std::nullopt);
    LdapModel again;
    ASSERT_TRUE(again.parse_state(text));
    LdapModel::Counts c;
    const Directory d = again.build(c, nullptr);
    for (std::size_t i = 0; i < std::size(all); ++i)
        EXPECT_EQ(d.find_address("u" + std::to_string(i) + "@example.com")->state, all[i]) << i;
    // A file of version 1 (states as numbers 0-2, where 2 meant deleted) is refused as a
    // whole, never read with this version's states: the sync then refreshes fully.
    const std::string v1 =
        "xproxy-ldap-state 1\nsource .src\ncookie -\nok 00000000000000000000000000000001 .dn 1 .example.com 2 "
        "smtp 0 . . . 0 0 0 0 0 0 .\nend 1\n";
    LdapModel old;
    ASSERT_TRUE(old.upsert(uuid(9), "x", kSchema, domain("keep.example")));
    auto st = old.parse_state(v1);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error(), "not a state file of this version");
    EXPECT_EQ(old.size(), 1u);
    // A state number where this version writes a name is a damaged line.
    std::string numbered = text;
    const std::size_t at = numbered.find(" active ");
    ASSERT_NE(at, std::string::npos);
    numbered.replace(at, 8, " 0 ");
    EXPECT_FALSE(LdapModel().parse_state(numbered));
}

}  // namespace
