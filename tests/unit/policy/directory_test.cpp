// directory_test: the virtual-domain directory model, its file format and the
// fingerprint, case and alias rules of lookups.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include <xproxy/base/file_loader.hpp>
#include <xproxy/policy/directory.hpp>
#include <xproxy/policy/directory_file.hpp>

#include "expected_value.hpp"

using namespace xproxy;

namespace {

constexpr const char* kAliceFp =
    "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
constexpr const char* kAliceFpHex = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

std::string fixture() {
    return std::string(
               "# hosted domains\n"
               "domain example.com state=active services=smtp,submission require_tls=no admin=hostmaster@example.com "
               "postmaster=pm@example.com\n"
               "user alice@example.com home=mta1.example.net alias=a.smith,Sales login=alice,ALICE.S cert=") +
           kAliceFp +
           "\n"
           "user Bob@Example.COM    state=inactive   # trailing comment\n"
           "\tuser carol@example.com state=deleted home=mta2.example.net\r\n"
           "\n"
           "domain Paused.Example state=inactive services=smtp home=mta2.example.net\n"
           "user dave@paused.example home=mta1.example.net\n"
           "user erin@paused.example\n"
           "domain gone.example state=deleted services=none require_tls=yes\n"
           "mta MTA1.Example.NET destinations=192.0.2.10,[2001:DB8::10]:2525 tls=verify tls-name=mx1.example.net\n"
           "mta mta3.example.net destinations=127.0.0.1:10025 encoding=xclient\n";
}

Directory load(const std::string& text) {
    std::string error;
    auto d = xproxy::test::value_or_error(parse_directory(text), error);
    EXPECT_TRUE(d) << error;
    return d ? std::move(*d) : Directory();
}

}  // namespace

TEST(Directory, FixtureCounts) {
    const Directory d = load(fixture());
    EXPECT_EQ(d.domain_count(), 3u);
    EXPECT_EQ(d.user_count(), 5u);
    EXPECT_EQ(d.alias_count(), 2u);
    EXPECT_EQ(d.mta_count(), 2u);
}

TEST(Directory, DomainLookupTable) {
    const Directory d = load(fixture());
    struct Row {
        const char* name;
        bool want_found;
        const char* want_name;
        EntryState want_state;
        const char* want_services;
        bool want_tls;
    };
    const Row rows[] = {
        {"example.com", true, "example.com", EntryState::active, "smtp,submission", false},
        {"EXAMPLE.com", true, "example.com", EntryState::active, "smtp,submission", false},
        {"paused.example", true, "paused.example", EntryState::inactive, "smtp", false},
        {"PAUSED.EXAMPLE", true, "paused.example", EntryState::inactive, "smtp", false},
        {"gone.example", true, "gone.example", EntryState::deleted, "none", true},
        {"example.org", false, "", EntryState::active, "", false},
        {"com", false, "", EntryState::active, "", false},
        {"sub.example.com", false, "", EntryState::active, "", false},  // no parent matching
        {"example.com.", false, "", EntryState::active, "", false},
        {"", false, "", EntryState::active, "", false},
    };
    for (const auto& r : rows) {
        const auto dom = d.find_domain(r.name);
        ASSERT_EQ(dom.has_value(), r.want_found) << r.name;
        if (!dom) continue;
        EXPECT_EQ(dom->name, r.want_name) << r.name;
        EXPECT_EQ(dom->state, r.want_state) << r.name;
        EXPECT_EQ(dom->services.to_string(), r.want_services) << r.name;
        EXPECT_EQ(dom->require_tls, r.want_tls) << r.name;
    }
    const auto ex = d.find_domain("example.com");
    EXPECT_EQ(ex->admin, "hostmaster@example.com");
    EXPECT_EQ(ex->postmaster, "pm@example.com");
    EXPECT_EQ(ex->user_count, 3u);
    EXPECT_EQ(d.find_domain(std::string(300, 'a')), std::nullopt);
}

TEST(Directory, AddressLookupTable) {
    const Directory d = load(fixture());
    struct Row {
        const char* address;
        bool want_found;
        const char* want_local;  // primary name
        EntryState want_state;
        const char* want_home;
    };
    const Row rows[] = {
        {"alice@example.com", true, "alice", EntryState::active, "mta1.example.net"},
        {"ALICE@EXAMPLE.COM", true, "alice", EntryState::active, "mta1.example.net"},
        {"a.smith@example.com", true, "alice", EntryState::active, "mta1.example.net"},  // alias
        {"sales@Example.Com", true, "alice", EntryState::active, "mta1.example.net"},    // alias, any case
        {"bob@example.com", true, "bob", EntryState::inactive, ""},
        {"carol@example.com", true, "carol", EntryState::deleted, "mta2.example.net"},
        {"dave@paused.example", true, "dave", EntryState::active, "mta1.example.net"},
        {"dave@example.com", false, "", EntryState::active, ""},  // other domain
        {"nobody@example.com", false, "", EntryState::active, ""},
        {"alice@example.org", false, "", EntryState::active, ""},
        {"alice", false, "", EntryState::active, ""},
        {"@example.com", false, "", EntryState::active, ""},
        {"alice@", false, "", EntryState::active, ""},
        {"alice+tag@example.com", false, "", EntryState::active, ""},  // delimiters are the engine's job
        {"x@y@example.com", false, "", EntryState::active, ""},        // split at the last '@'
    };
    for (const auto& r : rows) {
        const auto u = d.find_address(r.address);
        ASSERT_EQ(u.has_value(), r.want_found) << r.address;
        if (!u) continue;
        EXPECT_EQ(u->local_part, r.want_local) << r.address;
        EXPECT_EQ(u->state, r.want_state) << r.address;
        EXPECT_EQ(u->home, r.want_home) << r.address;
    }
    const auto dom = d.find_domain("example.com");
    EXPECT_EQ(d.find_user(*dom, "A.SMITH")->local_part, "alice");
    EXPECT_FALSE(d.find_user(*dom, std::string(65, 'a')));
    EXPECT_FALSE(d.find_user(*dom, ""));
    const auto paused = d.find_domain("paused.example");
    EXPECT_FALSE(d.find_user(*paused, "alice"));  // users are per domain
}

TEST(Directory, FingerprintNormalisation) {
    struct Row {
        const char* in;
        const char* want;  // "" = rejected
    };
    const std::string hex64(kAliceFpHex);
    const Row rows[] = {
        {kAliceFp, kAliceFpHex},
        {kAliceFpHex, kAliceFpHex},
        {"ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789", kAliceFpHex},
        {"00112233445566778899aabbccddeeff", "00112233445566778899aabbccddeeff"},   // MD5 length
        {"00112233445566778899aabbccddee", ""},                                     // too short
        {"AB:CDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789", ""},  // mixed separators
        {":AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89", ""},
        {"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:", ""},
        {"AB::CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89", ""},
        {"gg112233445566778899aabbccddeeff", ""},
        {"00112233445566778899aabbccddeeff0", ""},  // odd
        {"", ""},
    };
    for (const auto& r : rows) {
        const auto n = normalize_fingerprint(r.in);
        if (*r.want == 0) {
            EXPECT_FALSE(n) << r.in;
        } else {
            ASSERT_TRUE(n) << r.in;
            EXPECT_EQ(*n, r.want) << r.in;
        }
    }
    EXPECT_FALSE(normalize_fingerprint(std::string(130, 'a')));
    EXPECT_TRUE(normalize_fingerprint(std::string(128, 'a')));
}

TEST(Directory, FingerprintAndLoginLookups) {
    const Directory d = load(fixture());
    ASSERT_TRUE(d.find_by_fingerprint(kAliceFp));
    EXPECT_EQ(d.find_by_fingerprint(kAliceFp)->local_part, "alice");
    EXPECT_EQ(d.find_by_fingerprint(kAliceFpHex)->local_part, "alice");
    EXPECT_FALSE(d.find_by_fingerprint("00112233445566778899aabbccddeeff"));
    EXPECT_FALSE(d.find_by_fingerprint("not a fingerprint"));

    const auto alice = *d.find_address("alice@example.com");
    const auto bob = *d.find_address("bob@example.com");
    struct Row {
        const char* login;
        bool want_alice;
        bool want_bob;
    };
    const Row rows[] = {
        {"alice@example.com", true, false},
        {"Alice@Example.Com", true, false},
        {"sales@example.com", true, false},  // an alias address names the same mailbox
        {"alice", true, false},              // login=
        {"ALICE", true, false},
        {"alice.s", true, false},
        {"bob@example.com", false, true},
        {"bob", false, false},  // bob has no login= entries
        {"", false, false},
        {"alice@example.org", false, false},
        {"dave@paused.example", false, false},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(d.login_may_send_as(r.login, alice), r.want_alice) << r.login;
        EXPECT_EQ(d.login_may_send_as(r.login, bob), r.want_bob) << r.login;
    }
}

TEST(DirectoryFile, ParseErrorTable) {
    struct Row {
        std::string text;
        const char* want_error;  // substring; "" = parses
    };
    const std::string dom = "domain example.com\n";
    const Row rows[] = {
        {"", ""},
        {"# only a comment\n\n   \t\n", ""},
        {dom + "user a#b@example.com\n", ""},  // '#' inside a word is not a comment
        {dom + "user alice@example.com #state=deleted", ""},
        {"domain example.com", ""},  // no final LF
        {"domain example.com\r\n", ""},
        {"domain example.com state=paused\n",
         "line 1: unknown state 'paused' (want active, inactive, disabled, deleted, hold or overquota)"},
        {"domain example.com services=smtp,ftp\n", "line 1: unknown service 'ftp'"},
        {"domain example.com services=smtp,,imap\n", "line 1: empty item in services="},
        {"domain example.com require_tls=maybe\n", "line 1: require_tls='maybe' is not yes or no"},
        {"domain example.com colour=blue\n", "line 1: unknown domain attribute 'colour'"},
        {"domain example.com state\n", "line 1: expected name=value, got 'state'"},
        {"domain example.com state=active state=inactive\n", "line 1: attribute state given twice"},
        {"domain example.com admin=\n", "line 1: attribute admin has an empty value"},
        {"domain\n", "line 1: domain line without a domain name"},
        {"domain exa mple.com\n", "line 1: expected name=value, got 'mple.com'"},
        {"domain exa$mple.com\n", "line 1: domain name 'exa$mple.com' contains a character"},
        {"domain example..com\n", "line 1: domain name 'example..com' has an empty label"},
        {"domain .example.com\n", "has an empty label"},
        {"domain example.com.\n", "ends with a dot"},
        {"domain " + std::string(254, 'a') + "\n", "line 1: domain name is longer than 253 bytes"},
        {dom + "domain EXAMPLE.COM\n", "line 2: domain EXAMPLE.COM is already defined"},
        {"mailbox a@b\n", "line 1: unknown keyword 'mailbox' (want domain, user or mta)"},
        {"user alice@example.com\n", "line 1: domain 'example.com' of user alice@example.com is not defined"},
        {dom + "user\n", "line 2: user line without an address"},
        {dom + "user alice\n", "line 2: user 'alice' is not of the form local@domain"},
        {dom + "user @example.com\n", "line 2: local part is empty"},
        {dom + "user " + std::string(65, 'a') + "@example.com\n", "line 2: local part is longer than 64 bytes"},
        {dom + "user al(ice@example.com\n", "line 2: local part 'al(ice' contains a character"},
        {dom + "user alice@example.com\nuser ALICE@example.com\n", "line 3: user ALICE@example.com is already defined"},
        {dom + "user alice@example.com alias=bob\nuser bob@example.com\n", "line 3: user bob@example.com is already"},
        {dom + "user alice@example.com alias=alice\n", "line 2: alias alice@example.com is already defined"},
        {dom + "user alice@example.com alias=x,X\n", "line 2: alias X@example.com is already defined"},
        {dom + "user alice@example.com alias=x,\n", "line 2: empty item in alias="},
        {dom + "user alice@example.com state=gone\n", "line 2: unknown state 'gone'"},
        {dom + "user alice@example.com home=a home=b\n", "line 2: attribute home given twice"},
        {dom + "user alice@example.com cert=1234\n", "line 2: cert '1234' is not a fingerprint"},
        {dom + "user alice@example.com cert=00112233445566778899aabbccddeeff\n"
               "user bob@example.com cert=00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\n",
         "line 3: cert 00112233445566778899aabbccddeeff is already mapped to a user"},
        {dom + "user alice@example.com quota=1G\n", "line 2: unknown user attribute 'quota'"},
        {dom + "user alice@example.com home=\n", "line 2: attribute home has an empty value"},
        {"domain example.com\n\n# x\nuser bob@example.com state=x\n", "line 4: unknown state 'x'"},
        {"domain ex\x01mple.com\n", "domain name 'ex\\x01mple.com' contains"},  // escaped in the message
        {"domain example.com " + std::string(kMaxDirectoryLine, 'x') + "\n", "line 1: line longer than 4096 bytes"},
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

TEST(DirectoryFile, LineLimitIsExact) {
    std::string line = "domain example.com admin=";
    line += std::string(kMaxDirectoryLine - line.size(), 'a');
    ASSERT_EQ(line.size(), kMaxDirectoryLine);
    std::string error;
    // The line is within the limit; admin is then refused by its own 255-byte bound.
    EXPECT_FALSE(xproxy::test::value_or_error(parse_directory(line + "\n"), error));
    EXPECT_NE(error.find("admin is longer than 255 bytes"), std::string::npos) << error;
    EXPECT_FALSE(xproxy::test::value_or_error(parse_directory(line + "a\n"), error));
    EXPECT_NE(error.find("line longer than"), std::string::npos) << error;
    std::string ok = "domain example.com" + std::string(kMaxDirectoryLine - 18, ' ') + "\n";
    EXPECT_TRUE(xproxy::test::value_or_error(parse_directory(ok), error)) << error;
}

TEST(DirectoryFile, DefaultsOfAnUnadornedLine) {
    const Directory d = load("domain example.com\nuser alice@example.com\n");
    const auto dom = d.find_domain("example.com");
    EXPECT_EQ(dom->state, EntryState::active);
    EXPECT_EQ(dom->services, kDefaultServices);
    EXPECT_FALSE(dom->require_tls);
    EXPECT_EQ(dom->admin, "");
    const auto u = d.find_address("alice@example.com");
    EXPECT_EQ(u->state, EntryState::active);
    EXPECT_EQ(u->home, "");
}

TEST(DirectoryFile, RoundTrip) {
    const Directory d = load(fixture());
    const std::string text = format_directory(d);
    const Directory again = load(text);
    EXPECT_EQ(format_directory(again), text);
    EXPECT_EQ(again.domain_count(), d.domain_count());
    EXPECT_EQ(again.user_count(), d.user_count());
    EXPECT_EQ(again.alias_count(), d.alias_count());
    // Spot checks of what the text must carry.
    EXPECT_NE(text.find("domain gone.example state=deleted services=none require_tls=yes\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("user alice@example.com state=active home=mta1.example.net alias=a.smith,sales "
                        "login=alice,alice.s cert=" +
                        std::string(kAliceFpHex) + "\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(again.find_by_fingerprint(kAliceFp)->local_part, "alice");
    EXPECT_TRUE(again.login_may_send_as("ALICE.S", *again.find_address("alice@example.com")));
    // mta lines first, in the order given, ports written out; a domain's home=.
    EXPECT_TRUE(
        text.starts_with("mta mta1.example.net destinations=192.0.2.10:25,[2001:db8::10]:2525 encoding=auto "
                         "tls=verify tls-name=mx1.example.net\n"
                         "mta mta3.example.net destinations=127.0.0.1:10025 encoding=xclient\n"))
        << text;
    EXPECT_NE(text.find("domain paused.example state=inactive services=smtp require_tls=no home=mta2.example.net\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(again.mta_count(), d.mta_count());
    const auto mta = again.find_mta("mta1.example.net");
    ASSERT_TRUE(mta);
    EXPECT_EQ(mta->destinations.size(), 2u);
    EXPECT_EQ(mta->tls, MtaTls::verify);
    EXPECT_EQ(mta->tls_name, "mx1.example.net");
    EXPECT_EQ(again.home_of(*again.find_address("erin@paused.example")), "mta2.example.net");
    EXPECT_EQ(again.home_of(*again.find_address("dave@paused.example")), "mta1.example.net");
    EXPECT_EQ(again.find_by_login("alice")->local_part, "alice");
}

TEST(DirectoryFile, RoundTripGroupsInterleavedUsers) {
    const Directory d = load(
        "domain a.example\ndomain b.example\nuser x@a.example\nuser y@b.example\nuser z@a.example\n");
    EXPECT_EQ(format_directory(d),
              "domain a.example state=active services=smtp,submission require_tls=no\n"
              "user x@a.example state=active\n"
              "user z@a.example state=active\n"
              "domain b.example state=active services=smtp,submission require_tls=no\n"
              "user y@b.example state=active\n");
}

TEST(DirectoryBuilder, FailedAddChangesNothing) {
    DirectoryBuilder b;
    std::string error;
    DomainInfo dom;
    dom.name = "example.com";
    ASSERT_TRUE(b.add_domain(dom, &error)) << error;
    UserExtras x;
    x.aliases = {"info", "sales"};
    ASSERT_TRUE(b.add_user("alice@example.com", EntryState::active, "", x, &error)) << error;
    // bob's second alias collides: neither bob nor his first alias may appear.
    x.aliases = {"bobby", "SALES"};
    EXPECT_FALSE(b.add_user("bob@example.com", EntryState::active, "", x, &error));
    EXPECT_NE(error.find("alias SALES@example.com is already defined"), std::string::npos) << error;
    x.clear();
    x.fingerprints = {"zz"};
    EXPECT_FALSE(b.add_user("carol@example.com", EntryState::active, "", x, &error));
    x.clear();
    x.logins = {"a,b"};
    EXPECT_FALSE(b.add_user("carol@example.com", EntryState::active, "", x, &error));
    EXPECT_NE(error.find("contains a comma"), std::string::npos) << error;
    EXPECT_EQ(b.user_count(), 1u);
    const Directory d = b.build();
    EXPECT_FALSE(d.find_address("bob@example.com"));
    EXPECT_FALSE(d.find_address("bobby@example.com"));
    EXPECT_FALSE(d.find_address("carol@example.com"));
    EXPECT_EQ(d.find_address("sales@example.com")->local_part, "alice");
    EXPECT_EQ(b.user_count(), 0u);  // emptied by build()
}

TEST(DirectoryBuilder, GrowsWithoutReserve) {
    DirectoryBuilder b;
    std::string error;
    std::vector<std::string> names;
    names.reserve(300);
    for (int i = 0; i < 300; ++i) names.push_back("d" + std::to_string(i) + ".example");
    for (const auto& n : names) {
        DomainInfo dom;
        dom.name = n;
        ASSERT_TRUE(b.add_domain(dom, &error)) << error;
        for (int u = 0; u < 20; ++u)
            ASSERT_TRUE(b.add_user("u" + std::to_string(u) + "@" + n, EntryState::active, "h", {}, &error)) << error;
    }
    const Directory d = b.build();
    EXPECT_EQ(d.user_count(), 6000u);
    for (int i = 0; i < 300; i += 7)
        for (int u = 0; u < 20; u += 3)
            EXPECT_TRUE(d.find_address("U" + std::to_string(u) + "@D" + std::to_string(i) + ".EXAMPLE"));
    EXPECT_FALSE(d.find_address("u20@d0.example"));
    EXPECT_GT(d.memory_bytes(), 6000u * 16);
}

TEST(DirectoryFile, LoadFileReportsPathAndLine) {
    char path[] = "/tmp/xproxy-directory-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        std::ofstream out(path);
        out << "domain example.com\nuser bob@example.com state=sleeping\n";
    }
    std::string error;
    EXPECT_FALSE(xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, parse_directory), error));
    EXPECT_EQ(error, std::string(path) +
                         ":2: unknown state 'sleeping' (want active, inactive, disabled, deleted, hold or overquota)");
    {
        std::ofstream out(path);
        out << fixture();
    }
    const auto d = xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, parse_directory), error);
    ASSERT_TRUE(d) << error;
    EXPECT_EQ(d->user_count(), 5u);
    std::remove(path);
    EXPECT_FALSE(xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, parse_directory), error));
    EXPECT_EQ(error, std::string(path) + ": cannot read: No such file or directory");
}

TEST(DirectoryCache, ReplaceKeepsOldSnapshotAlive) {
    DirectoryCache cache;
    EXPECT_EQ(cache.get()->domain_count(), 0u);
    auto first = std::make_shared<const Directory>(load(fixture()));
    cache.replace(first);
    auto held = cache.get();
    cache.replace(std::make_shared<const Directory>(load("domain other.example\n")));
    first.reset();
    EXPECT_EQ(held->domain_count(), 3u);  // still usable
    EXPECT_TRUE(held->find_address("alice@example.com"));
    EXPECT_EQ(cache.get()->domain_count(), 1u);
}

TEST(Directory, StateAndServiceNames) {
    struct Row {
        const char* text;
        std::optional<EntryState> want;
    };
    const Row rows[] = {
        {"active", EntryState::active},
        {"ACTIVE", EntryState::active},
        {"inactive", EntryState::inactive},
        {"InActive", EntryState::inactive},
        {"disabled", EntryState::disabled},
        {"DISABLED", EntryState::disabled},
        {"deleted", EntryState::deleted},
        {"removed", EntryState::deleted},  // purged, awaiting removal
        {"Removed", EntryState::deleted},
        {"hold", EntryState::hold},
        {"HOLD", EntryState::hold},
        {"overquota", EntryState::overquota},
        {"OverQuota", EntryState::overquota},
        {"activ", std::nullopt},
        {"over-quota", std::nullopt},
        {"held", std::nullopt},
        {"", std::nullopt},
        {"active ", std::nullopt},
        {"overquotaoverquota", std::nullopt},
    };
    for (const auto& r : rows) EXPECT_EQ(parse_entry_state(r.text), r.want) << r.text;
    for (std::size_t i = 0; i < kEntryStateCount; ++i) {
        const auto s = static_cast<EntryState>(i);
        EXPECT_EQ(parse_entry_state(to_string(s)), s) << to_string(s);
    }
    for (std::size_t i = 0; i < kServiceCount; ++i) {
        const auto s = static_cast<Service>(i);
        EXPECT_EQ(parse_service(to_string(s)), s);
    }
    EXPECT_EQ(parse_service("SMTP"), Service::smtp);
    EXPECT_FALSE(parse_service("ftp"));
    EXPECT_EQ((ServiceSet{Service::imap, Service::smtp}).to_string(), "smtp,imap");
}

TEST(Directory, CombineStatesFirstNotActiveWins) {
    using S = EntryState;
    struct Row {
        std::initializer_list<S> in;
        S want;
    };
    const Row rows[] = {
        {{}, S::active},
        {{S::active}, S::active},
        {{S::active, S::active, S::active, S::active}, S::active},
        {{S::hold, S::deleted}, S::hold},  // domain before user
        {{S::active, S::overquota, S::disabled}, S::overquota},
        {{S::active, S::active, S::inactive, S::deleted}, S::inactive},  // inetUserStatus before mailUserStatus
        {{S::active, S::active, S::active, S::disabled}, S::disabled},
        {{S::deleted, S::active}, S::deleted},
    };
    for (const auto& r : rows) EXPECT_EQ(combine_states(r.in), r.want) << to_string(r.want);
    static_assert(combine_states({S::active, S::hold, S::inactive}) == S::hold);
}

TEST(Directory, LoadedOnlyWhenBuilt) {
    const Directory never;  // what a DirectoryCache holds before the first load
    EXPECT_FALSE(never.loaded());
    EXPECT_FALSE(DirectoryCache().get()->loaded());
    DirectoryBuilder b;
    Directory empty = b.build();
    EXPECT_TRUE(empty.loaded());
    EXPECT_EQ(empty.domain_count(), 0u);
    EXPECT_TRUE(load("").loaded());
    EXPECT_TRUE(load(fixture()).loaded());
    Directory moved = std::move(empty);
    EXPECT_TRUE(moved.loaded());
    Directory again = b.build();  // the builder starts over: a second, empty, loaded directory
    EXPECT_TRUE(again.loaded());
}

TEST(DirectoryFile, EveryStateRoundTrips) {
    std::string text;
    for (std::size_t i = 0; i < kEntryStateCount; ++i) {
        const std::string st(to_string(static_cast<EntryState>(i)));
        text += "domain " + st + ".example state=" + st + "\n";
        for (std::size_t k = 0; k < kEntryStateCount; ++k) {
            const std::string us(to_string(static_cast<EntryState>(k)));
            text += "user " + us + "@" + st + ".example state=" + us + "\n";
        }
    }
    text += "user gone@active.example state=REMOVED\n";
    const Directory d = load(text);
    ASSERT_EQ(d.domain_count(), kEntryStateCount);
    for (std::size_t i = 0; i < kEntryStateCount; ++i) {
        const auto st = static_cast<EntryState>(i);
        const std::string dom = std::string(to_string(st)) + ".example";
        ASSERT_TRUE(d.find_domain(dom)) << dom;
        EXPECT_EQ(d.find_domain(dom)->state, st) << dom;
        for (std::size_t k = 0; k < kEntryStateCount; ++k) {
            const auto us = static_cast<EntryState>(k);
            const auto u = d.find_address(std::string(to_string(us)) + "@" + dom);
            ASSERT_TRUE(u);
            EXPECT_EQ(u->state, us);
        }
    }
    EXPECT_EQ(d.find_address("gone@active.example")->state, EntryState::deleted);
    const std::string out = format_directory(d);
    EXPECT_NE(out.find("domain hold.example state=hold "), std::string::npos) << out;
    EXPECT_NE(out.find("user overquota@disabled.example state=overquota\n"), std::string::npos) << out;
    EXPECT_NE(out.find("user gone@active.example state=deleted\n"), std::string::npos) << out;  // written as deleted
    EXPECT_EQ(out.find("removed"), std::string::npos);
    EXPECT_EQ(format_directory(load(out)), out);
}

TEST(Directory, LookupBothHalves) {
    const Directory d = load(fixture());
    struct Row {
        const char* local;
        const char* domain;
        bool want_domain;
        bool want_user;
        const char* want_local;
    };
    const Row rows[] = {
        {"alice", "example.com", true, true, "alice"},
        {"SALES", "EXAMPLE.COM", true, true, "alice"},
        {"nobody", "example.com", true, false, ""},
        {"", "example.com", true, false, ""},
        {"alice", "paused.example", true, false, ""},
        {"alice", "example.org", false, false, ""},
        {"alice", "", false, false, ""},
    };
    for (const auto& r : rows) {
        const auto got = d.lookup(r.local, r.domain);
        EXPECT_EQ(got.domain.has_value(), r.want_domain) << r.local << "@" << r.domain;
        ASSERT_EQ(got.user.has_value(), r.want_user) << r.local << "@" << r.domain;
        if (!got.user) continue;
        EXPECT_EQ(got.user->local_part, r.want_local);
        EXPECT_EQ(got.user->domain_id, got.domain->id);
    }
}

TEST(DirectoryFile, ShippedExampleLoads) {
    const std::string path = std::string(XPROXY_SOURCE_DIR) + "/packaging/examples/directory.example";
    std::string error;
    const auto d = xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, parse_directory), error);
    ASSERT_TRUE(d) << error;
    EXPECT_EQ(d->domain_count(), 5u);
    EXPECT_EQ(d->find_address("sales@example.com")->local_part, "alice");
    EXPECT_EQ(d->find_address("carol@example.com")->state, EntryState::inactive);
    EXPECT_EQ(d->find_address("frank@example.com")->state, EntryState::hold);
    EXPECT_EQ(d->find_address("hank@example.com")->state, EntryState::overquota);
    EXPECT_TRUE(d->find_domain("secure.example.org")->require_tls);
    EXPECT_EQ(d->find_domain("gone.example")->state, EntryState::deleted);
    EXPECT_TRUE(d->find_by_fingerprint("5c1e0b9a7344d28f61aa037e92c415b8e02d6f934871bc0a5e36f12784dd904b"));
    EXPECT_EQ(d->mta_count(), 2u);
    const auto alice = d->find_by_login("alice");
    ASSERT_TRUE(alice);
    EXPECT_EQ(d->home_of(*alice), "mta1.example.net");  // the domain's
    EXPECT_EQ(d->find_mta(d->home_of(*alice))->destinations.size(), 2u);
    EXPECT_EQ(d->home_of(*d->find_address("bob@example.com")), "mta2.example.net");
}
