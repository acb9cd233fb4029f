// xtext_test: RFC 3461 xtext: encoding table, strict decoding table with the reason of
// each rejection, every byte value 0..255 alone and all together, canonical output.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/xtext.hpp>

using namespace xproxy;

namespace {

struct EncodeRow {
    std::string raw;
    const char* want;
};

const EncodeRow kEncode[] = {
    {"mail.example.com", "mail.example.com"},
    {"", ""},
    {"a+b=c", "a+2Bb+3Dc"},        // '+' and '=' are never themselves
    {"two words", "two+20words"},  // SP (32) is outside 33..126
    {"!~", "!~"},                  // 33 and 126, the ends of xchar
    {"\x7f\x01", "+7F+01"},
    {std::string("\0", 1), "+00"},
    {"caf\xc3\xa9", "caf+C3+A9"},  // UTF-8 bytes, upper-case hex
    {"[UNAVAILABLE]", "[UNAVAILABLE]"},
    {"IPV6:2001:db8::1", "IPV6:2001:db8::1"},
    {"\r\n", "+0D+0A"},
};

struct DecodeRow {
    const char* text;
    bool want_ok;
    const char* want;      // decoded, when ok
    const char* want_why;  // reason, when not
};

const DecodeRow kDecode[] = {
    {"plain", true, "plain", ""},
    {"a+2Bb+3Dc", true, "a+b=c", ""},
    {"+41", true, "A", ""},  // a needless escape is still valid xtext
    {"", true, "", ""},
    {"+", false, "", "truncated +HH escape"},
    {"+4", false, "", "truncated +HH escape"},
    {"ab+2", false, "", "truncated +HH escape"},
    {"+2b", false, "", "lower-case hex digit in +HH"},  // decided: lower case is rejected
    {"+e9", false, "", "lower-case hex digit in +HH"},
    {"+4G", false, "", "non-hex digit in +HH"},
    {"+ 1", false, "", "non-hex digit in +HH"},
    {"a=b", false, "", "raw '=' (must be +3D)"},
    {"a b", false, "", "byte outside 33..126 (must be +HH)"},
    {"a\tb", false, "", "byte outside 33..126 (must be +HH)"},
    {"\x7f", false, "", "byte outside 33..126 (must be +HH)"},
    {"\xc3\xa9", false, "", "byte outside 33..126 (must be +HH)"},
    {"+00", false, "", "NUL, CR or LF in value"},
    {"x+0D", false, "", "NUL, CR or LF in value"},
    {"+0Ax", false, "", "NUL, CR or LF in value"},
};

}  // namespace

TEST(Xtext, EncodeTable) {
    for (const auto& r : kEncode) {
        EXPECT_EQ(xtext_encode(r.raw), r.want) << r.want;
        auto back = xtext_decode(r.want, true);
        ASSERT_TRUE(back) << r.want;
        EXPECT_EQ(*back, r.raw) << r.want;
    }
}

TEST(Xtext, DecodeTable) {
    for (const auto& r : kDecode) {
        std::string_view why;
        auto d = xtext_decode(r.text, false, &why);
        EXPECT_EQ(d.has_value(), r.want_ok) << r.text;
        if (r.want_ok && d) {
            EXPECT_EQ(*d, r.want) << r.text;
        }
        if (!r.want_ok) {
            EXPECT_EQ(why, r.want_why) << r.text;
        }
        EXPECT_EQ(xtext_decode(r.text).has_value(), r.want_ok) << r.text;  // the short form agrees
    }
}

TEST(Xtext, ControlsOnlyWhenAllowed) {
    EXPECT_FALSE(xtext_decode("+0D+0A"));
    EXPECT_EQ(xtext_decode("+0D+0A", true), "\r\n");
    EXPECT_EQ(xtext_decode("+00", true), std::string("\0", 1));
    EXPECT_EQ(xtext_decode("+09"), "\t");  // other controls are the caller's business
}

TEST(Xtext, EveryByteRoundTrips) {
    std::string all;
    for (int b = 0; b < 256; ++b) {
        auto c = static_cast<unsigned char>(b);
        std::string raw(1, static_cast<char>(c));
        all += raw;
        auto enc = xtext_encode(raw);
        bool xchar = c >= 33 && c <= 126 && c != '+' && c != '=';
        EXPECT_EQ(enc.size(), xchar ? 1u : 3u) << b;
        for (char e : enc) {
            auto u = static_cast<unsigned char>(e);
            EXPECT_TRUE(u >= 33 && u <= 126 && u != '=') << b;
            EXPECT_FALSE(e >= 'a' && e <= 'f' && !xchar) << b;  // escapes are upper case
        }
        auto dec = xtext_decode(enc, true);
        ASSERT_TRUE(dec) << b;
        EXPECT_EQ(*dec, raw) << b;
        bool control = c == 0 || c == '\r' || c == '\n';
        EXPECT_EQ(xtext_decode(enc).has_value(), !control) << b;
    }
    auto enc = xtext_encode(all);
    EXPECT_EQ(enc.size(), 94u - 2u + 3u * (256u - 92u));
    EXPECT_EQ(xtext_decode(enc, true), all);
}

TEST(Xtext, EncoderOutputIsCanonical) {
    // Decoding then encoding any valid xtext gives the encoder's one spelling, which
    // decodes to the same bytes.
    for (const char* t : {"+41+42C", "a+2Bb", "+5BUNAVAILABLE+5D", "x"}) {
        auto d = xtext_decode(t);
        ASSERT_TRUE(d) << t;
        auto canon = xtext_encode(*d);
        EXPECT_EQ(xtext_decode(canon), d) << t;
        EXPECT_EQ(xtext_encode(*xtext_decode(canon)), canon) << t;
    }
    EXPECT_EQ(xtext_encode(*xtext_decode("+41+42C")), "ABC");
}
