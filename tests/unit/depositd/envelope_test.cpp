// envelope_test: From:, To:, Cc:, Bcc: and Message-ID of deposited messages, the address
// list forms of RFC 5322 3.4, and the messages that are refused rather than guessed at.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <xproxy/wire/bdat.hpp>
#include <xproxy/wire/message_header.hpp>

#include "envelope.hpp"

using namespace xproxy::depositd;

namespace {

struct ListRow {
    const char* value;
    std::vector<std::string> want;  // empty with want_ok false: refused
    bool want_ok = true;
};

TEST(AddressList, Forms) {
    const ListRow rows[] = {
        {"alice@example.org", {"alice@example.org"}},
        {"Alice <alice@Example.ORG>", {"alice@example.org"}},
        {"\"Smith, Alice\" <alice@example.org>, bob@example.net", {"alice@example.org", "bob@example.net"}},
        {"alice@example.org (Alice, the first)", {"alice@example.org"}},
        {"(a (nested) comment) <alice@example.org>", {"alice@example.org"}},
        {"\"a b\"@example.org", {"\"a b\"@example.org"}},
        {"<@relay.example:alice@example.org>", {"alice@example.org"}},
        {"undisclosed-recipients:;", {}},
        {"friends: alice@example.org, Bob <bob@example.net>;, carol@example.com",
         {"alice@example.org", "bob@example.net", "carol@example.com"}},
        {"alice@example.org, alice@example.org", {"alice@example.org"}},
        {"alice@example.org,,", {"alice@example.org"}},
        {"=?utf-8?q?Al=C3=AFce?= <alice@example.org>", {"alice@example.org"}},
        // refused
        {"Alice Smith", {}, false},
        {"Alice alice@example.org", {}, false},
        {"<alice@example.org> trailing", {}, false},
        {"<alice@example.org", {}, false},
        {"\"unterminated <alice@example.org>", {}, false},
        {"(unterminated <alice@example.org>", {}, false},
        {"<a@b> <c@d>", {}, false},
        {"<alice>", {}, false},
        {"<@example.org>", {}, false},
        {"alice@", {}, false},
        {"<ali\x01"
         "ce@example.org>",
         {},
         false},
        {"alice@example.org>", {}, false},
    };
    for (const auto& r : rows) {
        auto got = parse_address_list(r.value, 100);
        EXPECT_EQ(static_cast<bool>(got), r.want_ok) << r.value;
        if (got && r.want_ok) {
            EXPECT_EQ(*got, r.want) << r.value;
        }
    }
}

TEST(AddressList, Bounded) {
    std::string many;
    for (int i = 0; i < 11; ++i) many += "u" + std::to_string(i) + "@example.org,";
    EXPECT_TRUE(parse_address_list(many, 11));
    EXPECT_FALSE(parse_address_list(many, 10));
}

TEST(Envelope, FromRecipientsMessageId) {
    const std::string m =
        "Received: from x by y; Mon, 7 Dec 2026 10:00:00 +0000\r\n"
        "From: Alice <Alice@Example.org>\r\n"
        "To: bob@example.net,\r\n"
        "\tCarol <carol@example.com>\r\n"
        "Cc: dave@example.com\r\n"
        "Bcc: eve@example.com, bob@example.net\r\n"
        "Message-ID:  <1234@example.org> \r\n"
        "Subject: hello\r\n"
        "\r\n"
        "To: not-a-header@example.com\r\n";
    auto env = extract_envelope(m);
    ASSERT_TRUE(env) << env.error();
    EXPECT_EQ(env->from, "Alice@example.org");
    EXPECT_EQ(env->recipients, (std::vector<std::string>{"bob@example.net", "carol@example.com", "dave@example.com",
                                                         "eve@example.com"}));
    EXPECT_EQ(env->message_id, "<1234@example.org>");
}

TEST(Envelope, LfLineEndsAndNoBody) {
    auto env = extract_envelope("From: a@example.org\nTo: b@example.org\n");
    ASSERT_TRUE(env) << env.error();
    EXPECT_EQ(env->from, "a@example.org");
    EXPECT_EQ(env->recipients, std::vector<std::string>{"b@example.org"});
    EXPECT_EQ(env->message_id, "");
}

struct RefusedRow {
    const char* message;
    const char* want_error;
};

TEST(Envelope, Refused) {
    const RefusedRow rows[] = {
        {"To: b@example.org\r\n\r\nbody", "no From field"},
        {"From: a@example.org\r\nFrom: c@example.org\r\n\r\n", "more than one From field"},
        {"From: a@example.org, c@example.org\r\n\r\n", "exactly one mailbox"},
        {"From: undisclosed:;\r\n\r\n", "exactly one mailbox"},
        {"From: a@example.org\r\nMessage-ID: <1@x>\r\nMessage-ID: <2@x>\r\n\r\n", "more than one Message-ID"},
        {"From a@example.org Mon Dec  7 10:00:00 2026\r\nFrom: a@example.org\r\n\r\n", "mbox"},
        {"From: a@example.org\r\nnot a header line\r\n\r\n", "does not parse"},
        {" continued\r\nFrom: a@example.org\r\n\r\n", "does not parse"},
        {"From: a@example.org\r\nTo: <b@example.org\r\n\r\n", "To/Cc/Bcc field (line 2)"},
        {"From: a@example.org\r\nX-Original-Source: v=1; ip=10.9.9.9; login=x@example.org\r\n\r\n",
         "X-Original-Source field (line 2)"},
        {"From: a@example.org\r\nx-original-source-result: pass\r\n\r\n", "X-Original-Source-Result field"},
        {"From: a@example.org\r\nSender: Alice\r\n\r\n", "the Sender field (line 2)"},
        {"From: a@example.org\r\nResent-From: undisclosed:;\r\n\r\n", "the Resent-From field (line 2) is empty"},
    };
    for (const auto& r : rows) {
        auto env = extract_envelope(r.message);
        ASSERT_FALSE(env) << r.message;
        EXPECT_NE(env.error().find(r.want_error), std::string::npos) << env.error();
    }
}

TEST(Envelope, OtherSenderFields) {
    auto env = extract_envelope(
        "From: a@example.org\r\nSender: Sec <sec@Example.ORG>\r\nresent-from: r1@example.org, R2 <r2@example.org>\r\n"
        "Resent-Sender: rs@example.org\r\nTo: b@example.org\r\n\r\nbody\r\n");
    ASSERT_TRUE(env) << env.error();
    std::vector<std::string> got;
    for (const auto& s : env->senders) got.push_back(s.field + " " + s.address);
    EXPECT_EQ(got, (std::vector<std::string>{"Sender sec@example.org", "Resent-From r1@example.org",
                                             "Resent-From r2@example.org", "Resent-Sender rs@example.org"}));
    EXPECT_EQ(env->recipients, std::vector<std::string>{"b@example.org"});
}

TEST(Envelope, HeaderBlockBounded) {
    std::string m = "From: a@example.org\r\n";
    while (m.size() < 5000) m += "X-Filler: 0123456789012345678901234567890123456789\r\n";
    m += "\r\nbody";
    EnvelopeLimits small;
    small.max_header_bytes = 4096;
    EXPECT_FALSE(extract_envelope(m, small));
    EXPECT_TRUE(extract_envelope(m));
}

TEST(Envelope, RecipientsBounded) {
    std::string to = "To: ";
    for (int i = 0; i < 6; ++i) to += "u" + std::to_string(i) + "@example.org, ";
    EnvelopeLimits small;
    small.max_addresses = 5;
    EXPECT_FALSE(extract_envelope("From: a@example.org\r\n" + to + "\r\n\r\n", small));
    small.max_addresses = 6;
    EXPECT_TRUE(extract_envelope("From: a@example.org\r\n" + to + "\r\n\r\n", small));
}

// What the MTA reads: the injector's DATA form (BdatToData), dot-unstuffed as the
// receiving SMTP server does.
std::string as_mta_reads(std::string_view message) {
    xproxy::smtp::BdatToData conv;
    std::string data;
    conv.feed(message, data);
    conv.finish(data);
    std::string out;
    bool bol = true;
    for (char c : data) {
        if (!(bol && c == '.')) out.push_back(c);
        bol = c == '\n';
    }
    return out;
}

// The header fields as a comparable list; "" when the header block does not parse.
std::vector<std::string> fields_of(std::string_view message) {
    auto h = xproxy::parse_message_header(message);
    std::vector<std::string> out;
    if (!h) return out;
    for (const auto& f : h->fields) out.push_back(f.name + "\n" + f.value);
    return out;
}

TEST(Envelope, BareCrRefused) {
    // A second From: after a bare CR, which the MTA reads as a line end.
    const std::string smuggled =
        "From: <erin@example.com>\r\nTo: <bob@example.com>\r\nSubject: hi\rFrom: Alice <alice@example.com>\r\n"
        "Message-ID: <cr1@client.test>\r\n\r\nbody\r\n";
    ASSERT_NE(fields_of(smuggled), fields_of(as_mta_reads(smuggled)));  // what the check is for
    const char* rows[] = {
        smuggled.c_str(),
        "From: (\rFrom: alice@example.com\r)erin@example.com\r\nTo: <bob@example.com>\r\n\r\nbody\r\n",
        "From: a@example.org\r\n\r\nbody with a bare CR\r in it\r\n",
        "From: a@example.org\r\n\r\nbody ends with CR\r",
        "From: a@example.org\r\r\n\r\nbody\r\n",
    };
    for (const char* m : rows) {
        auto env = extract_envelope(m);
        ASSERT_FALSE(env) << m;
        EXPECT_NE(env.error().find("bare CR"), std::string::npos) << env.error();
    }
    EXPECT_EQ(find_bare_cr("a\r\nb\nc\r\n"), std::string_view::npos);
    EXPECT_EQ(find_bare_cr("a\r\nb\rc"), 4u);
    EXPECT_EQ(find_bare_cr("ab\r"), 2u);
}

// Every message the bare-CR check lets through has the same header fields here as at
// the MTA: the envelope checked is the envelope delivered.
TEST(Envelope, AcceptedMessagesParseAlikeAtTheMta) {
    const std::string alphabet = "From:a@ x\r\n\t.";
    std::mt19937 rng(20261207);
    std::uniform_int_distribution<std::size_t> len(0, 48), pick(0, alphabet.size() - 1);
    int accepted = 0;
    for (int n = 0; n < 200000; ++n) {
        std::string m;
        for (std::size_t k = len(rng); k > 0; --k) m.push_back(alphabet[pick(rng)]);
        if (find_bare_cr(m) != std::string_view::npos) continue;
        ++accepted;
        ASSERT_EQ(fields_of(m), fields_of(as_mta_reads(m))) << "message: " << m;
    }
    EXPECT_GT(accepted, 1000);
}

TEST(Envelope, EveryPrefixIsSafe) {
    const std::string m = "From: \"A (x)\" <a@example.org>\r\nTo: g: b@example.org;\r\nMessage-ID: <x@y>\r\n\r\nhi";
    for (std::size_t n = 0; n <= m.size(); ++n) (void)extract_envelope(std::string_view(m).substr(0, n));
}

}  // namespace
