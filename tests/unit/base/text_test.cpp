// base_text_test: the ASCII helpers of xproxy/base/text.hpp: case-insensitive comparison
// that ignores the locale, trimming, and strict unsigned decimal numbers.
#include <gtest/gtest.h>

#include <cstdint>

#include <xproxy/base/text.hpp>

using namespace xproxy;

TEST(Text, IequalsFoldsAsciiOnly) {
    EXPECT_TRUE(iequals("MAIL", "mail"));
    EXPECT_TRUE(iequals("XClient", "XCLIENT"));
    EXPECT_FALSE(iequals("MAIL", "MAILX"));
    EXPECT_FALSE(iequals("\xc3\xa9", "\xc3\x89"));  // é / É: not ASCII, compared exactly
    EXPECT_FALSE(iequals("[", "{"));                // 0x5B and 0x7B differ by 0x20 too
    EXPECT_TRUE(istarts_with("Received: from", "received:"));
    EXPECT_FALSE(istarts_with("Rec", "received:"));
}

TEST(Text, TrimRemovesOnlyTheGivenBytes) {
    EXPECT_EQ(trim("  a b \t\r\n"), "a b");
    EXPECT_EQ(trim(" \r\n", kWhitespace), "");
    EXPECT_EQ(trim(" a\r", kBlanks), "a\r");
    EXPECT_EQ(trim(""), "");
}

TEST(Text, ParseDecimalIsStrict) {
    struct Row {
        const char* in;
        std::uint16_t max;
        LeadingZeros zeros;
        std::optional<std::uint16_t> want;
    };
    const Row rows[] = {
        {"25", 65535, LeadingZeros::allowed, 25},
        {"65535", 65535, LeadingZeros::allowed, 65535},
        {"65536", 65535, LeadingZeros::allowed, std::nullopt},  // overflow of the type
        {"1000", 999, LeadingZeros::allowed, std::nullopt},     // above max
        {"0025", 65535, LeadingZeros::allowed, 25},
        {"0025", 65535, LeadingZeros::forbidden, std::nullopt},  // not canonical
        {"0", 65535, LeadingZeros::forbidden, 0},
        {"", 65535, LeadingZeros::allowed, std::nullopt},
        {"+1", 65535, LeadingZeros::allowed, std::nullopt},
        {"-1", 65535, LeadingZeros::allowed, std::nullopt},
        {" 1", 65535, LeadingZeros::allowed, std::nullopt},
        {"1 ", 65535, LeadingZeros::allowed, std::nullopt},
        {"0x10", 65535, LeadingZeros::allowed, std::nullopt},
    };
    for (const auto& r : rows)
        EXPECT_EQ(parse_decimal<std::uint16_t>(r.in, r.max, r.zeros), r.want) << "input '" << r.in << "'";
    EXPECT_EQ(parse_decimal<std::uint64_t>("18446744073709551615"), UINT64_MAX);
    EXPECT_EQ(parse_decimal<std::uint64_t>("18446744073709551616"), std::nullopt);
}

TEST(Text, CaseCopiesAreAscii) {
    EXPECT_EQ(to_upper("Mail From:<a@b.Example>"), "MAIL FROM:<A@B.EXAMPLE>");
    EXPECT_EQ(to_lower("EHLO Client.EXAMPLE"), "ehlo client.example");
    EXPECT_EQ(to_upper("\xc3\xa9t\xc3\xa9"), "\xc3\xa9T\xc3\xa9");  // bytes >= 0x80 unchanged
    EXPECT_EQ(to_lower(""), "");
}
