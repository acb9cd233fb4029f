// base64_test: strict base64: RFC 4648 test vectors both ways, every refusal (alphabet,
// padding, length, whitespace), decoding into SecretBytes, every length round trip.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/base/base64.hpp>

using namespace xproxy;

namespace {

struct Vector {
    const char* data;
    const char* b64;
};

// RFC 4648 section 10
const Vector kVectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(Base64, EncodesAndDecodesTheRfcVectors) {
    for (const auto& v : kVectors) {
        SCOPED_TRACE(v.data);
        EXPECT_EQ(base64_encode(v.data), v.b64);
        EXPECT_EQ(base64_encoded_size(std::string_view(v.data).size()), std::string_view(v.b64).size());
        auto plain = base64_decode(v.b64);
        ASSERT_TRUE(plain.has_value());
        EXPECT_EQ(*plain, v.data);
        SecretBytes secret;
        ASSERT_TRUE(base64_decode(v.b64, secret));
        EXPECT_EQ(secret.view(), v.data);
    }
}

TEST(Base64, RefusesWhatIsNotStrict) {
    const char* const kBad[] = {
        "Zg",        // padding missing
        "Zg=",       // padding short
        "Z===",      // three '='
        "=Zg=",      // '=' not at the end
        "Zm=v",      // '=' in the middle
        "Zm9v ",     // trailing space
        " Zm9v",     // leading space
        "Zm 9v",     // space inside
        "Zm9v\r\n",  // line break
        "Zm9-",      // base64url alphabet
        "Zm9_",      // base64url alphabet
        "Zm9*",      // not base64 at all
        "Zm9v\xc3\xa9", "*", "=",
    };
    for (const char* b : kBad) {
        SCOPED_TRACE(b);
        EXPECT_FALSE(base64_valid(b));
        EXPECT_FALSE(base64_decode(b).has_value());
        SecretBytes secret;
        secret.assign("old", 3);
        EXPECT_FALSE(base64_decode(b, secret));
        EXPECT_TRUE(secret.empty());
    }
    EXPECT_FALSE(base64_decode(std::string_view("Zm9\0", 4)).has_value());
}

TEST(Base64, RoundTripsEveryByteAtEveryLength) {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (std::size_t n = 0; n <= all.size(); ++n) {
        const std::string data = all.substr(256 - n);
        const std::string b64 = base64_encode(data);
        ASSERT_TRUE(base64_valid(b64)) << n;
        auto back = base64_decode(b64);
        ASSERT_TRUE(back.has_value()) << n;
        EXPECT_EQ(*back, data) << n;
    }
}

TEST(Base64, EncodesIntoACallersBufferWithoutATerminator) {
    char buf[9] = "xxxxxxxx";
    EXPECT_EQ(base64_encode("foob", buf), 8u);
    EXPECT_EQ(std::string(buf, 8), "Zm9vYg==");
    EXPECT_EQ(buf[8], '\0');  // the array's own terminator, untouched
}

}  // namespace
