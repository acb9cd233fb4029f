// wire_smtp_reply_test: the client side's reply decoder (every strict prefix of a valid
// reply is need_more; limits), enhanced status codes, printable text and queue ids.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <xproxy/wire/smtp_reply.hpp>

using namespace xproxy;
using namespace xproxy::smtp;

namespace {

struct Row {
    const char* name;
    std::string in;
    DecodeStatus want_status;
    std::size_t want_consumed;
    int want_code;
    std::vector<std::string> want_lines;
};

}  // namespace

TEST(SmtpReply, Decode) {
    const std::string long_text(kMaxReplyLineBytes - 6, 'a');  // "250 " + text + CRLF: exactly the limit
    std::string many;
    for (std::size_t i = 0; i + 1 < kMaxReplyLinesCount; ++i) many += "250-x\r\n";
    const Row rows[] = {
        {"one line", "250 Ok\r\n", DecodeStatus::complete, 8, 250, {"Ok"}},
        {"multi-line", "250-a\r\n250-b c\r\n250 d\r\nNEXT", DecodeStatus::complete, 23, 250, {"a", "b c", "d"}},
        {"code alone", "221\r\n", DecodeStatus::complete, 5, 221, {""}},
        {"bare LF tolerated", "354 go\n", DecodeStatus::complete, 7, 354, {"go"}},
        {"text kept as it came",
         std::string("550 a\0b\tc\r\n", 11),
         DecodeStatus::complete,
         11,
         550,
         {std::string("a\0b\tc", 5)}},
        {"line at the limit",
         "250 " + long_text + "\r\n",
         DecodeStatus::complete,
         kMaxReplyLineBytes,
         250,
         {long_text}},
        {"100 lines", many + "250 end\r\n", DecodeStatus::complete, many.size() + 9, 250, {}},
        {"partial", "250-a\r\n250", DecodeStatus::need_more, 0, 0, {}},
        {"line over the limit", "250 " + long_text + "a\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"unterminated line over the limit", "250 " + long_text + "aa", DecodeStatus::invalid, 0, 0, {}},
        {"101 lines", many + "250-x\r\n250 end\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"codes differ", "250-a\r\n251 b\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"codes differ, seen early", "250-a\r\n26", DecodeStatus::invalid, 0, 0, {}},
        {"class 1", "150 x\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"class 6", "650 x\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"not a digit", "2x0 x\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"bad separator", "250_x\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"short line", "25\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"empty line", "\r\n", DecodeStatus::invalid, 0, 0, {}},
        {"HTTP answer", "HTTP/1.1 400\r\n", DecodeStatus::invalid, 0, 0, {}},
    };
    for (const auto& row : rows) {
        SmtpReply r;
        const DecodeResult d = decode_reply(row.in, r);
        EXPECT_EQ(d.status, row.want_status) << row.name << ": " << d.reason;
        if (row.want_status != DecodeStatus::complete) continue;
        EXPECT_EQ(d.consumed, row.want_consumed) << row.name;
        EXPECT_EQ(r.code, row.want_code) << row.name;
        if (!row.want_lines.empty()) {
            EXPECT_EQ(r.lines, row.want_lines) << row.name;
        }
        // Every strict prefix of the reply may still become it.
        for (std::size_t n = 0; n < d.consumed; ++n) {
            SmtpReply p;
            EXPECT_TRUE(decode_reply(std::string_view(row.in).substr(0, n), p).need_more()) << row.name << " " << n;
        }
    }
}

TEST(SmtpReply, EnhancedStatusAndText) {
    struct T {
        std::string in;
        std::string want_status;
        std::string want_text;
    };
    const T rows[] = {
        {"250 2.0.0 Ok: queued as ABC\r\n", "2.0.0", "Ok: queued as ABC"},
        {"550-5.1.1 no such user\r\n550 5.1.1 here\r\n", "5.1.1", "no such user here"},
        {"451 4.7.30 x\r\n", "4.7.30", "x"},
        {"550 4.1.1 class differs\r\n", "", "4.1.1 class differs"},
        {"550 5.1 too short\r\n", "", "5.1 too short"},
        {"550 5.1.1234 too long\r\n", "", "5.1.1234 too long"},
        {"550 5.1.1x glued\r\n", "", "5.1.1x glued"},
        {"550 5.1.1\r\n", "5.1.1", ""},
        {"250 \xc3\xa9t\x01\x7f\r\n", "", "??t??"},
        {"220\r\n", "", ""},
    };
    for (const auto& row : rows) {
        SmtpReply r;
        ASSERT_TRUE(decode_reply(row.in, r).complete()) << row.in;
        EXPECT_EQ(enhanced_status(r), row.want_status) << row.in;
        EXPECT_EQ(printable_text(r), row.want_text) << row.in;
    }
    SmtpReply r;
    ASSERT_TRUE(decode_reply("250 " + std::string(1000, 'x') + "\r\n", r).complete());
    EXPECT_EQ(printable_text(r, 100).size(), 100u);
}

TEST(SmtpReply, QueuedAs) {
    struct T {
        std::string in;
        std::string want;
    };
    const T rows[] = {
        {"250 2.0.0 Ok: queued as 4Yq2Lh0Kx3z5\r\n", "4Yq2Lh0Kx3z5"},  // Postfix, long queue ids
        {"250 2.0.0 Ok: queued as 3F1A2B4C5D\r\n", "3F1A2B4C5D"},      // Postfix, short ones
        {"250-first\r\n250 Ok: QUEUED AS abc-1_2.3 more\r\n", "abc-1_2.3"},
        {"250 2.0.0 (queued as XYZ)\r\n", "XYZ"},
        {"250 2.0.0 Ok\r\n", ""},
        {"250 queued as \r\n", ""},
        {"250 queued as ab<c\r\n", ""},  // not a plain id: none rather than a part of it
        {"250 queued as " + std::string(kMaxQueueId, 'A') + "\r\n", std::string(kMaxQueueId, 'A')},
        {"250 queued as " + std::string(kMaxQueueId + 1, 'A') + "\r\n", ""},
    };
    for (const auto& row : rows) {
        SmtpReply r;
        ASSERT_TRUE(decode_reply(row.in, r).complete()) << row.in;
        EXPECT_EQ(queued_as(r), row.want) << row.in;
    }
}
