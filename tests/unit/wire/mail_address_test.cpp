// mail_address_test: canonical envelope addresses: quoting resolved and re-applied only
// where needed, source routes dropped, domain lower-cased, local-part case kept, and the
// form is stable (canonical of canonical is itself).
#include <gtest/gtest.h>

#include <random>
#include <string>

#include <xproxy/wire/mail_address.hpp>

using namespace xproxy;

TEST(MailAddress, Canonical) {
    struct Row {
        const char* in;
        const char* want;
    };
    const Row rows[] = {
        {"alice@example.com", "alice@example.com"},
        {"<alice@example.com>", "alice@example.com"},
        {" \t<  alice@example.com >\r\n", "alice@example.com"},
        {"Alice@Example.COM", "Alice@example.com"},      // local part keeps its case
        {"\"alice\"@Example.COM", "alice@example.com"},  // needless quotes go
        {"\"first.last\"@example.com", "first.last@example.com"},
        {"\"first\".\"last\"@example.com", "first.last@example.com"},  // obsolete word.word
        {"\"al\\ice\"@example.com", "alice@example.com"},              // quoted pair of a plain byte
        {"\"a b\"@example.com", "\"a b\"@example.com"},                // quotes needed: kept
        {"a b@example.com", "\"a b\"@example.com"},                    // Postfix's internal form
        {"\"a\\\"b\"@x", "\"a\\\"b\"@x"},                              // "a\"b" stays escaped
        {"a\"b@x", "\"a\\\"b\"@x"},                                    // open quote: literal
        {"\"a\\\\b\"@x", "\"a\\\\b\"@x"},                              // backslash
        {"\"a.\"@x", "\"a.\"@x"},                                      // not a Dot-string
        {"\".a\"@x", "\".a\"@x"},
        {"\"a..b\"@x", "\"a..b\"@x"},
        {"\"alice@relay\"@example.com", "\"alice@relay\"@example.com"},
        {"alice@relay@example.com", "\"alice@relay\"@example.com"},  // internal form
        {"\"a@b\"", "\"a@b\""},                                      // no domain: '@' is quoted
        {"@relay:alice@example.com", "alice@example.com"},           // source route
        {"<@a.example,@b.example:alice@Example.com>", "alice@example.com"},
        {"<@a.example:\"a b\"@example.com>", "\"a b\"@example.com"},
        {"@example.com", "\"\"@example.com"},  // empty local part
        {"\"\"@example.com", "\"\"@example.com"},
        {"postmaster", "postmaster"},  // no domain
        {"\"postmaster\"", "postmaster"},
        {"\"\"", "\"\""},  // empty quoted: not the null sender
        {"", ""},
        {"<>", ""},
        {" < > ", ""},
        {"alice@[IPv6:2001:DB8::1]", "alice@[ipv6:2001:db8::1]"},
        {"j\xc3\xb6rg@EXAMPLE.de", "j\xc3\xb6rg@example.de"},  // UTF-8 local part (RFC 6531)
        {"alice@", "alice@"},
        {"alice@Example.COM.", "alice@example.com"},     // Postfix drops the root dot
        {"alice@example.com..", "alice@example.com.."},  // not a FQDN: kept
        {"alice@.", "alice@."},
        {"alice@[192.0.2.1].", "alice@[192.0.2.1]."},
        {"alice@b .", "alice@b ."},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(canonical_address(r.in), r.want) << r.in;
        EXPECT_EQ(canonical_address(canonical_address(r.in)), r.want) << r.in;
    }
}

TEST(MailAddress, DifferentMailboxesStayDifferent) {
    const char* distinct[] = {"alice@example.com",
                              "Alice@example.com",
                              "alice@example.org",
                              "\"a lice\"@example.com",
                              "alice.@example.com",
                              "\"alice@example.com\"",
                              "alice",
                              "\"\"@example.com",
                              "",
                              "\"alice\\\"\"@example.com"};
    for (const char* a : distinct) {
        for (const char* b : distinct) {
            if (std::string_view(a) == b) continue;
            EXPECT_NE(canonical_address(a), canonical_address(b)) << a << " vs " << b;
        }
    }
}

// Random bytes drawn from the characters that matter: the form is a fixed point.
TEST(MailAddress, CanonicalOfCanonicalIsItself) {
    std::mt19937 rng(7);
    const std::string alphabet = "aA.@\"\\<> :,\t\x80.";
    for (int i = 0; i < 20000; ++i) {
        std::string s(rng() % 12, ' ');
        for (auto& c : s) c = alphabet[rng() % alphabet.size()];
        const std::string once = canonical_address(s);
        EXPECT_EQ(canonical_address(once), once) << "input [" << s << "]";
    }
}
