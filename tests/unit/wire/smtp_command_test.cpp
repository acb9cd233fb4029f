// xproxyd_command_test: front-side command syntax (verb split, MAIL/RCPT paths and
// parameters) and the extension-mismatch refusals: what a client asked for that the
// downstream does not advertise is refused with the right code instead of proxied.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/smtp_command.hpp>

using namespace xproxy::smtp;

TEST(Command, SplitVerbAndArgument) {
    auto c = split_command("mail FROM:<a@b>  ");
    EXPECT_EQ(c.verb, "MAIL");
    EXPECT_EQ(c.arg, "FROM:<a@b>");
    EXPECT_EQ(split_command("").verb, "");
    EXPECT_EQ(split_command("QUIT").arg, "");
    EXPECT_EQ(split_command("EHLO   host.example").arg, "host.example");
}

TEST(Command, PathTable) {
    struct Row {
        const char* arg;
        const char* keyword;
        bool allow_null, allow_8bit;
        bool want_ok;
        const char* want_path;
        std::size_t want_params;
        const char* want_reply_prefix;
    } rows[] = {
        {"FROM:<a@b.example>", "FROM", true, false, true, "a@b.example", 0, ""},
        {"from:<a@b.example> SIZE=100 BODY=8BITMIME", "FROM", true, false, true, "a@b.example", 2, ""},
        {"FROM: <a@b>", "FROM", true, false, true, "a@b", 0, ""},
        {"FROM:<>", "FROM", true, false, true, "", 0, ""},
        {"TO:<>", "TO", false, false, false, "", 0, "501 5.5.4"},
        {"FROM:a@b", "FROM", true, false, false, "", 0, "501 5.5.4"},
        {"FROM:<a@b", "FROM", true, false, false, "", 0, "501 5.5.4"},
        {"FROM:<a@b>x", "FROM", true, false, false, "", 0, "501 5.5.4"},
        {"TO:<\"a>b\"@c>", "TO", false, false, true, "\"a>b\"@c", 0, ""},
        {"TO:<a@b> X=1 X=2", "TO", false, false, false, "", 0, "501 5.5.4"},
        {"TO:<a@b> =1", "TO", false, false, false, "", 0, "501 5.5.4"},
        {"TO:<j\xC3\xBCrg@b>", "TO", false, false, false, "", 0, "501 5.5.4"},
        {"TO:<j\xC3\xBCrg@b>", "TO", false, true, true, "j\xC3\xBCrg@b", 0, ""},
        {"TO:<a\x01@b>", "TO", false, true, false, "", 0, "501 5.5.4"},
        {"RCPT:<a@b>", "TO", false, false, false, "", 0, "501 5.5.4"},
    };
    for (const auto& r : rows) {
        std::string reply;
        auto p = parse_path(r.arg, r.keyword, r.allow_null, r.allow_8bit, &reply);
        EXPECT_EQ(p.has_value(), r.want_ok) << r.arg << " -> " << reply;
        if (p) {
            EXPECT_EQ(p->path, r.want_path) << r.arg;
            EXPECT_EQ(p->params.size(), r.want_params) << r.arg;
        } else {
            EXPECT_EQ(reply.rfind(r.want_reply_prefix, 0), 0u) << r.arg << " -> " << reply;
        }
    }
}

TEST(Command, MailParameters) {
    struct Row {
        const char* arg;
        bool tls;
        const char* want_reply_prefix;  // empty: accepted
    } rows[] = {
        {"FROM:<a@b> SIZE=1000", false, ""},
        {"FROM:<a@b> SIZE=999999999", false, "552 5.3.4"},
        {"FROM:<a@b> SIZE=x", false, "501 5.5.4"},
        {"FROM:<a@b> BODY=8BITMIME SMTPUTF8", false, ""},
        {"FROM:<a@b> BODY=BINARYMIME", false, "501 5.5.4"},
        {"FROM:<a@b> RET=FULL", false, "555 5.5.4"},
        {"FROM:<a@b> REQUIRETLS", false, "555 5.5.4"},
        {"FROM:<a@b> REQUIRETLS", true, ""},
        {"FROM:<a@b> SMTPUTF8=yes", false, "555 5.5.4"},
    };
    for (const auto& r : rows) {
        std::string reply;
        auto p = parse_path(r.arg, "FROM", true, true, &reply);
        ASSERT_TRUE(p) << r.arg;
        auto params = check_mail_params(*p, MailLimits{1000000, r.tls}, &reply);
        if (*r.want_reply_prefix == '\0') {
            EXPECT_TRUE(params) << r.arg << " -> " << reply;
        } else {
            EXPECT_FALSE(params) << r.arg;
            EXPECT_EQ(reply.rfind(r.want_reply_prefix, 0), 0u) << r.arg << " -> " << reply;
        }
    }
}

TEST(Command, ParseEhloSkipsTheGreetingLine) {
    auto k = parse_ehlo({"sink.example", "PIPELINING", "SIZE 10240000", "xclient NAME ADDR", "8BITMIME"});
    EXPECT_TRUE(k.has("PIPELINING"));
    EXPECT_TRUE(k.has("XCLIENT"));
    EXPECT_EQ(*k.get("SIZE"), "10240000");
    EXPECT_EQ(*k.get("XCLIENT"), "NAME ADDR");
    EXPECT_FALSE(k.has("SINK.EXAMPLE"));
    EXPECT_FALSE(k.has("SMTPUTF8"));
}

TEST(Command, RefusalsForWhatTheDownstreamLacks) {
    auto legacy = parse_ehlo({"legacy", "PIPELINING", "SIZE 5000"});
    auto modern = parse_ehlo({"modern", "PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "REQUIRETLS"});
    struct Row {
        MailParams p;
        const EhloKeywords* ds;
        bool tls;
        const char* want;  // reply prefix, empty: proxied
    } rows[] = {
        {MailParams{}, &legacy, false, ""},
        {MailParams{0, false, true, false}, &legacy, false, "553 5.6.7"},
        {MailParams{0, true, false, false}, &legacy, false, "554 5.6.3"},
        {MailParams{6000, false, false, false}, &legacy, false, "552 5.3.4"},
        {MailParams{5000, false, false, false}, &legacy, false, ""},
        {MailParams{0, false, false, true}, &legacy, true, "550 5.7.30"},
        {MailParams{0, false, false, true}, &modern, false, "550 5.7.30"},  // not encrypted downstream
        {MailParams{0, false, false, true}, &modern, true, ""},
        {MailParams{99999999, true, true, false}, &modern, false, ""},  // SIZE without a limit
    };
    for (std::size_t i = 0; i < std::size(rows); ++i) {
        const auto& r = rows[i];
        auto got = refuse_for_downstream(r.p, *r.ds, r.tls);
        if (*r.want == '\0') {
            EXPECT_FALSE(got) << "row " << i << ": " << *got;
        } else {
            ASSERT_TRUE(got) << "row " << i;
            EXPECT_EQ(got->rfind(r.want, 0), 0u) << "row " << i << ": " << *got;
        }
    }
}

TEST(Command, DownstreamMailLineKeepsOnlyWhatIsUnderstood) {
    std::string reply;
    auto p = parse_path("FROM:<a@b> SIZE=42 BODY=8BITMIME", "FROM", true, false, &reply);
    ASSERT_TRUE(p);
    auto params = check_mail_params(*p, {}, &reply);
    ASSERT_TRUE(params);
    EXPECT_EQ(downstream_mail_line(*p, *params, parse_ehlo({"x", "SIZE", "8BITMIME"})),
              "MAIL FROM:<a@b> SIZE=42 BODY=8BITMIME\r\n");
    EXPECT_EQ(downstream_mail_line(*p, *params, parse_ehlo({"x", "8BITMIME"})), "MAIL FROM:<a@b> BODY=8BITMIME\r\n");
}
