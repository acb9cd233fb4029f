// wire_message_header_test: the header section of a message (xproxy/wire/
// message_header.hpp): fields split and unfolded with LF and CRLF, the end at the empty
// line, an mbox From line skipped, broken input refused with the line named, limits; the
// clauses of Received fields as Postfix and others write them.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/message_header.hpp>

namespace {

using namespace xproxy;

TEST(MessageHeader, SplitsAndUnfoldsFields) {
    struct Row {
        const char* name;
        std::string in;
        std::size_t want_fields;
        std::size_t want_index;  // the field checked
        const char* want_name;
        const char* want_value;
        std::size_t want_line;
    };
    const Row rows[] = {
        {"crlf", "A: 1\r\nB: two\r\n\r\nbody: not a field\r\n", 2, 1, "B", "two", 2},
        {"lf", "A: 1\nB:two  \n\nbody\n", 2, 1, "B", "two", 2},
        {"folded tab", "Subject: a\r\n\tb\r\n c\r\n\r\n", 1, 0, "Subject", "a\tb c", 1},
        {"no body", "A: 1\nB: 2", 2, 1, "B", "2", 2},
        {"mbox line", "From a@b Mon Dec  7 07:00:00 2026\nX: y\n\n", 1, 0, "X", "y", 2},
        {"empty value", "X:\nY: 1\n\n", 2, 0, "X", "", 1},
        {"colon in value", "Date: Mon, 7 Dec 2026 07:00:00 +0000\n\n", 1, 0, "Date", "Mon, 7 Dec 2026 07:00:00 +0000",
         1},
        {"empty input", "", 0, 0, "", "", 0},
    };
    for (const auto& r : rows) {
        auto h = parse_message_header(r.in);
        ASSERT_TRUE(h) << r.name << ": " << h.error();
        ASSERT_EQ(h->fields.size(), r.want_fields) << r.name;
        if (!r.want_fields) continue;
        EXPECT_EQ(h->fields[r.want_index].name, r.want_name) << r.name;
        EXPECT_EQ(h->fields[r.want_index].value, r.want_value) << r.name;
        EXPECT_EQ(h->fields[r.want_index].line, r.want_line) << r.name;
    }
}

TEST(MessageHeader, RefusesWhatIsNotAHeader) {
    struct Row {
        const char* name;
        std::string in;
        const char* want_error;
    };
    const Row rows[] = {
        {"continuation first", " x\nA: 1\n\n", "line 1 continues no field"},
        {"no colon", "A: 1\nnot a field\n\n", "line 2 is not a header field"},
        {"empty name", ": x\n\n", "line 1 is not a header field"},
        {"space in name", "A B: x\n\n", "line 1 is not a header field"},
        {"control in name", "A\x01: x\n\n", "line 1 is not a header field"},
    };
    for (const auto& r : rows) {
        auto h = parse_message_header(r.in);
        ASSERT_FALSE(h) << r.name;
        EXPECT_EQ(h.error(), r.want_error) << r.name;
    }
}

TEST(MessageHeader, Limits) {
    MessageLimits lim;
    lim.max_fields = 2;
    EXPECT_FALSE(parse_message_header("A: 1\nB: 2\nC: 3\n\n", lim));
    EXPECT_TRUE(parse_message_header("A: 1\nB: 2\n\nC: 3\n", lim));
    lim = MessageLimits{};
    lim.max_field_bytes = 10;
    EXPECT_FALSE(parse_message_header("A: 12345\n 67890\n\n", lim));
    EXPECT_FALSE(parse_message_header("A: 1234567890\n\n", lim));
    lim = MessageLimits{};
    lim.max_header_bytes = 8;
    EXPECT_FALSE(parse_message_header("A: 1\nB: 2\n\n", lim));
}

TEST(MessageHeader, FindIsCaseInsensitive) {
    auto h = parse_message_header("Received: 1\nmessage-id: <a@b>\nRECEIVED: 2\n\n");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->find("Message-ID"), 1u);
    EXPECT_EQ(h->find("Received", 1), 2u);
    EXPECT_EQ(h->find("Subject"), 3u);
}

TEST(Received, ClausesOfCommonForms) {
    struct Row {
        const char* name;
        const char* in;
        const char* want_from;
        const char* want_by;
        const char* want_with;
        const char* want_id;
        const char* want_for;
        const char* want_date;
        const char* want_ip;
    };
    const Row rows[] = {
        {"postfix",
         "from client.example (unknown [127.0.0.66])\tby mta-a.example (Postfix) with ESMTP id 4AbC12\tfor "
         "<bob@example.net>; Mon,  7 Dec 2026 07:00:00 +0000 (UTC)",
         "client.example (unknown [127.0.0.66])", "mta-a.example (Postfix)", "ESMTP", "4AbC12", "<bob@example.net>",
         "Mon,  7 Dec 2026 07:00:00 +0000 (UTC)", "127.0.0.66"},
        {"ipv6", "from x (y [IPv6:2001:db8::1]) by z with ESMTPS; date", "x (y [IPv6:2001:db8::1])", "z", "ESMTPS", "",
         "", "date", "2001:db8::1"},
        {"local", "by mta.example (Postfix, from userid 1000) id 1; date", "",
         "mta.example (Postfix, from userid 1000)", "", "1", "", "date", ""},
        {"semicolon in comment", "from a (b; c [10.0.0.1]) by d; date", "a (b; c [10.0.0.1])", "d", "", "", "", "date",
         "10.0.0.1"},
        {"no date", "from a by b", "a", "b", "", "", "", "", ""},
        {"unterminated comment", "from a (b [1.2.3.4] by c", "a (b [1.2.3.4] by c", "", "", "", "", "", "1.2.3.4"},
    };
    for (const auto& r : rows) {
        auto f = parse_received(r.in);
        EXPECT_EQ(f.from, r.want_from) << r.name;
        EXPECT_EQ(f.by, r.want_by) << r.name;
        EXPECT_EQ(f.with, r.want_with) << r.name;
        EXPECT_EQ(f.id, r.want_id) << r.name;
        EXPECT_EQ(f.for_, r.want_for) << r.name;
        EXPECT_EQ(f.date, r.want_date) << r.name;
        EXPECT_EQ(f.from_ip, r.want_ip) << r.name;
    }
}

}  // namespace
