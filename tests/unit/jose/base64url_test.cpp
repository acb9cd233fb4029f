// base64url_test: JOSE's base64url is strict: one spelling per byte string, round trips
// for every length, and each kind of non-canonical input refused.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/jose/base64url.hpp>

using xproxy::jose::base64url_decode;
using xproxy::jose::base64url_encode;

TEST(Base64Url, KnownVectors) {
    // RFC 4648 section 10, without padding, in the URL-safe alphabet
    EXPECT_EQ(base64url_encode(""), "");
    EXPECT_EQ(base64url_encode("f"), "Zg");
    EXPECT_EQ(base64url_encode("fo"), "Zm8");
    EXPECT_EQ(base64url_encode("foo"), "Zm9v");
    EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");  // '+' and '/' of base64 become '-' and '_'
    EXPECT_EQ(base64url_decode("-_8"), std::string("\xfb\xff"));
}

TEST(Base64Url, RoundTripsEveryLength) {
    std::string data;
    for (int i = 0; i < 70; ++i) {
        auto back = base64url_decode(base64url_encode(data));
        ASSERT_TRUE(back.has_value()) << i;
        EXPECT_EQ(*back, data);
        data.push_back(static_cast<char>(i * 37 + 11));
    }
}

TEST(Base64Url, RefusesNonCanonical) {
    struct Row {
        const char* in;
        const char* why;
    } rows[] = {
        {"Zg==", "padding"},
        {"Zm8=", "padding"},
        {"Z", "length 1 modulo 4"},
        {"Zm9vY", "length 1 modulo 4"},
        {"Zh", "trailing bits set (Zg is canonical)"},
        {"Zm9", "trailing bits set (Zm8 is canonical)"},
        {"Zm+v", "'+' of standard base64"},
        {"Zm/v", "'/' of standard base64"},
        {"Zm 9v", "space"},
        {"Zm9v\n", "line break"},
    };
    for (const auto& r : rows) EXPECT_FALSE(base64url_decode(r.in).has_value()) << r.in << ": " << r.why;
    EXPECT_FALSE(base64url_decode(std::string("Zm9\0", 4)).has_value());
}
