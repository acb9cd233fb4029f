// directory_mta_test: home MTAs in the directory (mta lines, a domain's home=, home_of)
// and find_by_login, the reverse index from a SASL login to its user.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <xproxy/policy/directory.hpp>
#include <xproxy/policy/directory_file.hpp>

#include "expected_value.hpp"

using namespace xproxy;

namespace {

Directory load(const std::string& text) {
    std::string error;
    auto d = xproxy::test::value_or_error(parse_directory(text), error);
    EXPECT_TRUE(d) << error;
    return d ? std::move(*d) : Directory();
}

// "a:p,b:p" from the destinations of an MTA.
std::string destinations(const MtaInfo& m) {
    std::string out;
    for (const MtaEndpoint& e : m.destinations) {
        if (!out.empty()) out += ',';
        out += Endpoint{e.address, e.port}.to_string();
    }
    return out;
}

}  // namespace

TEST(DirectoryMta, ParseAttributeTable) {
    struct Row {
        const char* line;
        const char* want_name;
        const char* want_destinations;
        MtaEncoding want_encoding;
        MtaTls want_tls;
        const char* want_tls_name;
    };
    const Row rows[] = {
        {"mta mta1 destinations=192.0.2.1", "mta1", "192.0.2.1:25", MtaEncoding::automatic, MtaTls::unset, ""},
        {"mta MTA1.Example.NET destinations=192.0.2.1:2525", "mta1.example.net", "192.0.2.1:2525",
         MtaEncoding::automatic, MtaTls::unset, ""},
        {"mta m destinations=[2001:DB8::1]", "m", "[2001:db8::1]:25", MtaEncoding::automatic, MtaTls::unset, ""},
        {"mta m destinations=[2001:db8::1]:587,192.0.2.1,[::1]:10025", "m",
         "[2001:db8::1]:587,192.0.2.1:25,[::1]:10025", MtaEncoding::automatic, MtaTls::unset, ""},
        {"mta m destinations=[::ffff:192.0.2.7]:26", "m", "192.0.2.7:26", MtaEncoding::automatic, MtaTls::unset, ""},
        {"mta m destinations=192.0.2.1:65535 encoding=auto", "m", "192.0.2.1:65535", MtaEncoding::automatic,
         MtaTls::unset, ""},
        {"mta m destinations=192.0.2.1 encoding=xproxy", "m", "192.0.2.1:25", MtaEncoding::xproxy, MtaTls::unset, ""},
        {"mta m destinations=192.0.2.1 encoding=XCLIENT", "m", "192.0.2.1:25", MtaEncoding::xclient, MtaTls::unset, ""},
        {"mta m destinations=192.0.2.1 encoding=proxy-v2", "m", "192.0.2.1:25", MtaEncoding::proxy_v2, MtaTls::unset,
         ""},
        {"mta m destinations=192.0.2.1 tls=none", "m", "192.0.2.1:25", MtaEncoding::automatic, MtaTls::none, ""},
        {"mta m destinations=192.0.2.1 tls=may tls-name=a.example", "m", "192.0.2.1:25", MtaEncoding::automatic,
         MtaTls::may, "a.example"},
        {"mta m destinations=192.0.2.1 tls=Encrypt", "m", "192.0.2.1:25", MtaEncoding::automatic, MtaTls::encrypt, ""},
        {"mta m tls-name=Mx.Example tls=verify destinations=192.0.2.1", "m", "192.0.2.1:25", MtaEncoding::automatic,
         MtaTls::verify, "Mx.Example"},
        {"  mta\tm destinations=192.0.2.1,192.0.2.1 # same twice: kept, in order", "m", "192.0.2.1:25,192.0.2.1:25",
         MtaEncoding::automatic, MtaTls::unset, ""},
    };
    for (const auto& r : rows) {
        const Directory d = load(std::string(r.line) + "\n");
        ASSERT_EQ(d.mta_count(), 1u) << r.line;
        const MtaInfo m = d.mta_at(0);
        EXPECT_EQ(m.name, r.want_name) << r.line;
        EXPECT_EQ(destinations(m), r.want_destinations) << r.line;
        EXPECT_EQ(m.encoding, r.want_encoding) << r.line;
        EXPECT_EQ(m.tls, r.want_tls) << r.line;
        EXPECT_EQ(m.tls_name, r.want_tls_name) << r.line;
    }
}

TEST(DirectoryMta, ParseErrorTable) {
    const std::string ok = "mta m destinations=192.0.2.1\n";
    const std::string sixteen =
        "192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5,192.0.2.6,192.0.2.7,192.0.2.8,"
        "192.0.2.9,192.0.2.10,192.0.2.11,192.0.2.12,192.0.2.13,192.0.2.14,192.0.2.15,192.0.2.16";
    struct Row {
        std::string text;
        const char* want_error;  // "" = parses
    };
    const Row rows[] = {
        {"mta m destinations=" + sixteen + "\n", ""},
        {"mta m destinations=" + sixteen + ",192.0.2.17\n", "line 1: destinations= lists more than 16 addresses"},
        {"mta\n", "line 1: mta line without a name"},
        {"mta m\n", "line 1: mta m without destinations="},
        {"mta m encoding=xproxy\n", "line 1: mta m without destinations="},
        {"mta m destinations=\n", "line 1: attribute destinations has an empty value"},
        {"mta m destinations=192.0.2.1,,192.0.2.2\n", "line 1: empty item in destinations='192.0.2.1,,192.0.2.2'"},
        {"mta m destinations=192.0.2.1,\n", "line 1: empty item in destinations="},
        {"mta m destinations=mx.example\n",
         "line 1: destinations=: 'mx.example': want a numeric address (IPv4 or [IPv6]) with an optional :PORT"},
        {"mta m destinations=mx.example:25\n", "line 1: destinations=: 'mx.example:25': want a numeric address"},
        {"mta m destinations=2001:db8::1\n", "line 1: destinations=: '2001:db8::1': want a numeric address"},
        {"mta m destinations=[192.0.2.1]\n", "line 1: destinations=: '[192.0.2.1]': want a numeric address"},
        {"mta m destinations=[2001:db8::1\n", "line 1: destinations=: '[2001:db8::1': want a numeric address"},
        {"mta m destinations=[2001:db8::1]25\n", "line 1: destinations=: '[2001:db8::1]25': want a numeric address"},
        {"mta m destinations=[mx.example]:25\n", "line 1: destinations=: '[mx.example]:25': want a numeric address"},
        {"mta m destinations=192.0.2.01\n", "line 1: destinations=: '192.0.2.01': want a numeric address"},
        {"mta m destinations=192.0.2.1:0\n", "line 1: destinations=: '192.0.2.1:0': the port must be 1 to 65535"},
        {"mta m destinations=192.0.2.1:65536\n", "line 1: destinations=: '192.0.2.1:65536': the port must be 1 to"},
        {"mta m destinations=192.0.2.1:\n", "line 1: destinations=: '192.0.2.1:': the port must be 1 to 65535"},
        {"mta m destinations=192.0.2.1:+25\n", "line 1: destinations=: '192.0.2.1:+25': the port must be 1 to"},
        {"mta m destinations=[::1]:\n", "line 1: destinations=: '[::1]:': the port must be 1 to 65535"},
        {"mta m destinations=192.0.2.1 destinations=192.0.2.2\n", "line 1: attribute destinations given twice"},
        {ok + "mta m destinations=192.0.2.1 encoding=smtp\n",
         "line 2: unknown encoding 'smtp' (want auto, xproxy, xclient or proxy-v2)"},
        {"mta m destinations=192.0.2.1 encoding=auto encoding=xproxy\n", "line 1: attribute encoding given twice"},
        {"mta m destinations=192.0.2.1 tls=yes\n", "line 1: unknown tls 'yes' (want none, may, encrypt or verify)"},
        {"mta m destinations=192.0.2.1 tls=none tls=may\n", "line 1: attribute tls given twice"},
        {"mta m destinations=192.0.2.1 tls-name=mx.example\n",
         "line 1: mta m: tls-name needs tls=may, encrypt or verify"},
        {"mta m destinations=192.0.2.1 tls=none tls-name=mx.example\n",
         "line 1: mta m: tls-name needs tls=may, encrypt or verify"},
        {"mta m destinations=192.0.2.1 tls=may tls-name=a tls-name=b\n", "line 1: attribute tls-name given twice"},
        {"mta m destinations=192.0.2.1 tls=may tls-name=\x01x\n", "line 1: tls-name contains white space or a control"},
        {"mta m destinations=192.0.2.1 port=25\n",
         "line 1: unknown mta attribute 'port' (want destinations, encoding, tls or tls-name)"},
        {"mta m destinations=192.0.2.1 tls\n", "line 1: expected name=value, got 'tls'"},
        {"mta " + std::string(256, 'm') + " destinations=192.0.2.1\n", "line 1: mta name is longer than 255 bytes"},
        {"mta m\x7f destinations=192.0.2.1\n", "line 1: mta name contains white space or a control character"},
        {ok + "\n# again\nmta M destinations=192.0.2.2\n", "line 4: mta M is already defined"},
        {"domain example.com home=mta1 home=mta2\n", "line 1: attribute home given twice"},
        {"domain example.com home=\n", "line 1: attribute home has an empty value"},
        {"domain example.com home=a\x01\n", "line 1: home contains white space or a control character"},
        {"domain example.com colour=blue\n",
         "line 1: unknown domain attribute 'colour' (want state, services, require_tls, admin, postmaster or home)"},
        {"mtas m destinations=192.0.2.1\n", "line 1: unknown keyword 'mtas' (want domain, user or mta)"},
    };
    for (const auto& r : rows) {
        std::string error;
        const auto d = xproxy::test::value_or_error(parse_directory(r.text), error);
        if (*r.want_error == 0) {
            EXPECT_TRUE(d) << r.text.substr(0, 80) << " -> " << error;
        } else {
            EXPECT_FALSE(d) << r.text.substr(0, 80);
            EXPECT_NE(error.find(r.want_error), std::string::npos) << "got: " << error << "\nwant: " << r.want_error;
        }
    }
}

TEST(DirectoryMta, FindMtaInAnyCase) {
    const Directory d = load(
        "mta Mta1.Example.Net destinations=192.0.2.1\n"
        "mta mta2.example.net destinations=192.0.2.2,192.0.2.3 encoding=xclient\n");
    struct Row {
        const char* name;
        const char* want_name;  // "" = not found
        const char* want_destinations;
    };
    const Row rows[] = {
        {"mta1.example.net", "mta1.example.net", "192.0.2.1:25"},
        {"MTA1.EXAMPLE.NET", "mta1.example.net", "192.0.2.1:25"},
        {"Mta2.Example.Net", "mta2.example.net", "192.0.2.2:25,192.0.2.3:25"},
        {"mta3.example.net", "", ""},
        {"mta1.example", "", ""},
        {"", "", ""},
    };
    for (const auto& r : rows) {
        const auto m = d.find_mta(r.name);
        ASSERT_EQ(m.has_value(), *r.want_name != 0) << r.name;
        if (!m) continue;
        EXPECT_EQ(m->name, r.want_name) << r.name;
        EXPECT_EQ(destinations(*m), r.want_destinations) << r.name;
    }
    EXPECT_FALSE(d.find_mta(std::string(300, 'm')));
    EXPECT_EQ(d.mta_at(1).encoding, MtaEncoding::xclient);
}

TEST(DirectoryMta, HomeOfUserDomainOrNone) {
    // mta lines before and after the lines that name them; one home names no mta line.
    const Directory d = load(
        "mta mta1 destinations=192.0.2.1\n"
        "domain a.example home=MTA2\n"
        "user own@a.example home=Mta1\n"
        "user inherits@a.example\n"
        "user label@a.example home=old-mta\n"
        "domain b.example\n"
        "user nothing@b.example\n"
        "mta mta2 destinations=192.0.2.2\n");
    struct Row {
        const char* address;
        const char* want_home;
        const char* want_mta;  // "" = no route
    };
    const Row rows[] = {
        {"own@a.example", "Mta1", "mta1"},       // its own home=, as written
        {"inherits@a.example", "MTA2", "mta2"},  // the domain's default
        {"label@a.example", "old-mta", ""},      // a label without an mta line
        {"nothing@b.example", "", ""},           // no home at all
    };
    for (const auto& r : rows) {
        const auto u = d.find_address(r.address);
        ASSERT_TRUE(u) << r.address;
        const std::string_view home = d.home_of(*u);
        EXPECT_EQ(home, r.want_home) << r.address;
        const auto m = d.find_mta(home);
        EXPECT_EQ(m ? m->name : "", r.want_mta) << r.address;
    }
    EXPECT_EQ(d.find_domain("a.example")->home, "MTA2");
    EXPECT_EQ(d.find_domain("b.example")->home, "");
    EXPECT_EQ(d.find_address("inherits@a.example")->home, "");  // UserInfo::home is the user's own
}

TEST(DirectoryMta, DefaultsOfAnMtaLine) {
    const Directory d = load("mta m destinations=192.0.2.1\ndomain example.com\nuser a@example.com\n");
    const MtaInfo m = *d.find_mta("m");
    EXPECT_EQ(m.encoding, MtaEncoding::automatic);
    EXPECT_EQ(m.tls, MtaTls::unset);
    EXPECT_EQ(m.tls_name, "");
    ASSERT_EQ(m.destinations.size(), 1u);
    EXPECT_EQ(m.destinations[0].port, 25);
    EXPECT_EQ(d.find_domain("example.com")->home, "");
    EXPECT_EQ(d.home_of(*d.find_address("a@example.com")), "");
}

TEST(DirectoryMta, NamesOfEncodingsAndTls) {
    for (auto e : {MtaEncoding::automatic, MtaEncoding::xproxy, MtaEncoding::xclient, MtaEncoding::proxy_v2})
        EXPECT_EQ(parse_mta_encoding(to_string(e)), e);
    EXPECT_EQ(to_string(MtaEncoding::automatic), "auto");
    EXPECT_EQ(to_string(MtaEncoding::proxy_v2), "proxy-v2");
    EXPECT_FALSE(parse_mta_encoding("automatic"));
    EXPECT_FALSE(parse_mta_encoding(""));
    for (auto t : {MtaTls::none, MtaTls::may, MtaTls::encrypt, MtaTls::verify})
        EXPECT_EQ(parse_mta_tls(to_string(t)), t);
    EXPECT_EQ(to_string(MtaTls::unset), "");
    EXPECT_FALSE(parse_mta_tls(""));
    EXPECT_FALSE(parse_mta_tls("unset"));
}

TEST(DirectoryLogin, FindByLoginTable) {
    const Directory d = load(
        "domain example.com\n"
        "user alice@example.com alias=a.smith login=alice,Shared,alice\n"
        "user bob@example.com login=bob,SHARED,carol@example.com\n"
        "user carol@example.com login=carol.x\n"
        "user sales@example.com login=alice@example.com,dup@example.com\n"
        "user ops@example.com login=dup@example.com\n");
    struct Row {
        const char* login;
        const char* want_local;  // "" = nullopt
    };
    const Row rows[] = {
        {"alice@example.com", "alice"},  // the address wins over sales's login=
        {"ALICE@Example.COM", "alice"},
        {"a.smith@example.com", "alice"},  // an alias address
        {"alice", "alice"},                // login=, listed twice by the same user
        {"ALICE", "alice"},
        {"bob", "bob"},
        {"carol@example.com", "carol"},  // an address, though bob lists it
        {"carol.x", "carol"},
        {"shared", ""},  // listed by alice and bob: ambiguous
        {"Shared", ""},
        {"dup@example.com", ""},  // listed by two users and not an address
        {"nobody", ""},
        {"nobody@example.com", ""},
        {"alice@example.org", ""},
        {"", ""},
        {"@", ""},
    };
    for (const auto& r : rows) {
        const auto u = d.find_by_login(r.login);
        ASSERT_EQ(u.has_value(), *r.want_local != 0) << r.login;
        if (!u) continue;
        EXPECT_EQ(u->local_part, r.want_local) << r.login;
        EXPECT_TRUE(d.login_may_send_as(r.login, *u)) << r.login;
    }
    EXPECT_FALSE(d.find_by_login(std::string(256, 'a')));
}

TEST(DirectoryLogin, LoginsKeepTheirOwnersAcrossRoundTrip) {
    const Directory d = load(
        "domain example.com\n"
        "user a@example.com login=x,y\n"
        "user b@example.com login=y,z\n");
    const Directory again = load(format_directory(d));
    EXPECT_EQ(again.find_by_login("x")->local_part, "a");
    EXPECT_EQ(again.find_by_login("z")->local_part, "b");
    EXPECT_FALSE(again.find_by_login("y"));
    EXPECT_TRUE(again.login_may_send_as("y", *again.find_address("a@example.com")));
    EXPECT_TRUE(again.login_may_send_as("y", *again.find_address("b@example.com")));
}

TEST(DirectoryMta, MemoryBytesCountsMtasAndLoginOwners) {
    const std::string base = "domain example.com\nuser a@example.com\n";
    const Directory plain = load(base);
    std::string with_mtas = base;
    for (int i = 0; i < 50; ++i)
        with_mtas += "mta m" + std::to_string(i) + " destinations=192.0.2.1,[2001:db8::1],192.0.2.2 tls=may\n";
    EXPECT_GE(load(with_mtas).memory_bytes(), plain.memory_bytes() + 50 * 3 * sizeof(MtaEndpoint));
    std::string with_logins = "domain example.com\nuser a@example.com login=";
    for (int i = 0; i < 50; ++i) with_logins += (i ? ",l" : "l") + std::to_string(i);
    const Directory logins = load(with_logins + "\n");
    // Each login has a slot in the per-user table and one in the owners' table.
    EXPECT_GE(logins.memory_bytes(), plain.memory_bytes() + 2 * 50 * 16);
}

TEST(DirectoryBuilderMta, RefusalsChangeNothing) {
    DirectoryBuilder b;
    std::string error;
    std::vector<MtaEndpoint> one(1), many(kMaxMtaDestinations + 1);
    one[0].address = *IpAddress::parse("192.0.2.1");
    MtaInfo m;
    m.name = "Good";
    m.destinations = one;
    ASSERT_TRUE(b.add_mta(m, &error)) << error;
    struct Row {
        MtaInfo mta;
        const char* want_error;
    };
    std::vector<MtaEndpoint> port0 = one;
    port0[0].port = 0;
    const Row rows[] = {
        {MtaInfo{"", one, MtaEncoding::automatic, MtaTls::unset, ""}, "mta name is empty"},
        {MtaInfo{"m", {}, MtaEncoding::automatic, MtaTls::unset, ""}, "mta m has no destinations"},
        {MtaInfo{"m", many, MtaEncoding::automatic, MtaTls::unset, ""}, "mta m has more than 16 destinations"},
        {MtaInfo{"m", port0, MtaEncoding::automatic, MtaTls::unset, ""}, "mta m: destination 192.0.2.1:0 has port 0"},
        {MtaInfo{"m", one, MtaEncoding::automatic, MtaTls::unset, "x"}, "mta m: tls-name needs tls=may, encrypt or"},
        {MtaInfo{"m", one, MtaEncoding::automatic, MtaTls::verify, "a b"}, "tls-name contains white space"},
        {MtaInfo{"GOOD", one, MtaEncoding::automatic, MtaTls::unset, ""}, "mta GOOD is already defined"},
    };
    for (const auto& r : rows) {
        EXPECT_FALSE(b.add_mta(r.mta, &error)) << r.want_error;
        EXPECT_NE(error.find(r.want_error), std::string::npos) << "got: " << error << "\nwant: " << r.want_error;
    }
    EXPECT_FALSE(b.add_mta(MtaInfo{"m", {}, MtaEncoding::automatic, MtaTls::unset, ""}, nullptr));
    std::vector<MtaEndpoint> mapped(1);
    mapped[0].address = IpAddress::parse("::ffff:192.0.2.9")->to_v4_mapped();
    ASSERT_TRUE(mapped[0].address.is_v6());
    ASSERT_TRUE(b.add_mta(MtaInfo{"mapped", mapped, MtaEncoding::automatic, MtaTls::unset, ""}, &error)) << error;
    const Directory d = b.build();
    EXPECT_EQ(d.mta_count(), 2u);
    EXPECT_EQ(d.find_mta("good")->name, "good");
    EXPECT_FALSE(d.find_mta("m"));
    // Stored as IPv4, as the file parser would read it back.
    EXPECT_EQ(destinations(*d.find_mta("mapped")), "192.0.2.9:25");
}

TEST(DirectoryBuilderMta, MtaNamesAndHomesShareTheLimit) {
    DirectoryBuilder b;
    std::string error;
    DomainInfo dom;
    dom.name = "example.com";
    dom.home = "h0";
    ASSERT_TRUE(b.add_domain(dom, &error)) << error;
    for (std::size_t i = 1; i + 1 < 65535; ++i) {  // h0 .. h65533: 65534 names
        const std::string n = std::to_string(i);
        ASSERT_TRUE(b.add_user("u" + n + "@example.com", EntryState::active, "h" + n, {}, &error)) << error;
    }
    std::vector<MtaEndpoint> one(1);
    MtaInfo m;
    m.destinations = one;
    m.name = "H7";  // interned as "h7", like the home= value: no new name
    ASSERT_TRUE(b.add_mta(m, &error)) << error;
    m.name = "new-1";  // the 65535th name
    ASSERT_TRUE(b.add_mta(m, &error)) << error;
    m.name = "new-2";
    EXPECT_FALSE(b.add_mta(m, &error));
    EXPECT_EQ(error, "more than 65535 different home MTAs");
    EXPECT_FALSE(b.add_user("x@example.com", EntryState::active, "h65534", {}, &error));
    dom.name = "other.example";
    dom.home = "h65534";
    EXPECT_FALSE(b.add_domain(dom, &error));
    EXPECT_EQ(error, "more than 65535 different home MTAs");
    dom.home = "new-1";
    EXPECT_TRUE(b.add_domain(dom, &error)) << error;
    const Directory d = b.build();
    EXPECT_EQ(d.mta_count(), 2u);
    EXPECT_EQ(d.home_of(*d.find_address("u7@example.com")), "h7");
    EXPECT_EQ(d.find_mta(d.home_of(*d.find_address("u7@example.com")))->name, "h7");
    EXPECT_FALSE(d.find_domain("other.example")->home.empty());
}
