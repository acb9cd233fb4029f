// wire_bdat_test: the BDAT argument (RFC 3030) and the DATA form of a chunked body, whose
// result must not depend on how the body was cut into chunks, and which the DATA
// decoder reads back as itself.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/bdat.hpp>
#include <xproxy/wire/data_decoder.hpp>

using xproxy::smtp::BdatToData;
using xproxy::smtp::DataDecoder;
using xproxy::smtp::parse_bdat;

TEST(ParseBdat, Valid) {
    auto a = parse_bdat("10");
    EXPECT_TRUE(a.valid);
    EXPECT_EQ(a.size, 10u);
    EXPECT_FALSE(a.last);
    a = parse_bdat("0 LAST");
    EXPECT_TRUE(a.valid);
    EXPECT_EQ(a.size, 0u);
    EXPECT_TRUE(a.last);
    a = parse_bdat("123  last");
    EXPECT_TRUE(a.valid);
    EXPECT_EQ(a.size, 123u);
    EXPECT_TRUE(a.last);
    a = parse_bdat("18446744073709551615");
    EXPECT_TRUE(a.valid);
    EXPECT_EQ(a.size, 18446744073709551615u);
    a = parse_bdat("007 LAST");
    EXPECT_TRUE(a.valid);
    EXPECT_EQ(a.size, 7u);
}

TEST(ParseBdat, SizeKnownButInvalid) {
    for (const char* arg : {"10 LASTX", "10 LAST extra", "10 FIRST", "5 LAST LAST"}) {
        const auto a = parse_bdat(arg);
        EXPECT_FALSE(a.valid) << arg;
        EXPECT_TRUE(a.size.has_value()) << arg;
    }
}

TEST(ParseBdat, NoSize) {
    for (const char* arg : {"", "LAST", "-1", "+5", "0x10", "1e3", "10LAST", "18446744073709551616",
                            "000000000000000000001", "1\t LAST", " 5"}) {
        const auto a = parse_bdat(arg);
        EXPECT_FALSE(a.valid) << arg;
        EXPECT_FALSE(a.size.has_value()) << arg;
    }
}

namespace {

std::string convert(const std::string& raw, std::size_t cut) {
    BdatToData e;
    std::string out;
    e.feed(std::string_view(raw).substr(0, cut), out);
    e.feed(std::string_view(raw).substr(cut), out);
    e.finish(out);
    return out;
}

}  // namespace

TEST(BdatToData, Table) {
    struct Row {
        const char* name;
        std::string in;
        std::string want;
    };
    const Row rows[] = {
        {"empty body", "", ""},
        {"canonical", "a\r\nb\r\n", "a\r\nb\r\n"},
        {"no final line end", "a\r\nb", "a\r\nb\r\n"},
        {"dot lines stuffed", ".\r\n..x\r\n.y", "..\r\n...x\r\n..y\r\n"},
        {"dot not at line start", "a.b\r\n", "a.b\r\n"},
        {"bare LF", "a\nb\n", "a\r\nb\r\n"},
        {"bare LF then dot", "a\n.\n", "a\r\n..\r\n"},
        {"bare CR", "a\rb\r", "a\r\nb\r\n"},
        {"CR run before LF", "a\r\r\nb", "a\r\nb\r\n"},
        {"CR run alone", "a\r\r.b", "a\r\n..b\r\n"},
        {"empty lines", "\n\r\n\n", "\r\n\r\n\r\n"},
        {"lone dot", ".", "..\r\n"},
        {"NUL and 8bit pass", std::string("a\0\xff\r\n", 5), std::string("a\0\xff\r\n", 5)},
    };
    for (const Row& r : rows) {
        for (std::size_t cut = 0; cut <= r.in.size(); ++cut)
            EXPECT_EQ(convert(r.in, cut), r.want) << r.name << " cut at " << cut;
        // byte by byte
        BdatToData e;
        std::string out;
        for (char c : r.in) e.feed(std::string_view(&c, 1), out);
        e.finish(out);
        EXPECT_EQ(out, r.want) << r.name << " byte by byte";
    }
}

// What goes downstream with DATA is what the DATA path itself would send: the decoder
// finds the end exactly after the final dot and passes every byte before it unchanged.
TEST(BdatToData, DecodesToItself) {
    const std::string inputs[] = {"a\r\n.\r\nb", "\n.\n", "\r.\r", ".\r\r\n.", "x\r\n\r\n.\r\n", "..", "\r\n.\r\n"};
    for (const std::string& in : inputs) {
        const std::string wire = convert(in, 0);
        const std::string body = wire + ".\r\n";
        DataDecoder d;
        std::string out;
        const std::size_t used = d.feed(body.data(), body.size(), out);
        EXPECT_TRUE(d.done()) << in;
        EXPECT_EQ(used, body.size()) << in;
        EXPECT_EQ(out, wire) << in;
    }
}

TEST(BdatToData, ResetStartsANewBody) {
    BdatToData e;
    std::string out;
    e.feed("abc", out);
    e.reset();
    out.clear();
    e.feed(".x", out);
    e.finish(out);
    EXPECT_EQ(out, "..x\r\n");
}
