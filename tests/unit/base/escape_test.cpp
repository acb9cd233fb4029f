// escape_test: log escaping of untrusted bytes: what is kept, what becomes \xHH, the cap,
// and that unescape() inverts every uncut escape().
#include <gtest/gtest.h>

#include <random>
#include <string>

#include <xproxy/base/escape.hpp>

using xproxy::escape;
using xproxy::unescape;

TEST(Escape, Table) {
    struct Row {
        std::string in;
        std::size_t max;
        std::string want;
    };
    const Row rows[] = {
        {"", 256, ""},
        {"hello world", 256, "hello world"},
        {"~!@#$%^&*()_+{}|:\"<>?", 256, "~!@#$%^&*()_+{}|:\"<>?"},
        {"a\\b", 256, "a\\\\b"},                          // backslash doubled
        {"line1\r\nline2", 256, "line1\\x0d\\x0aline2"},  // CR LF
        {std::string("nul\0x", 5), 256, "nul\\x00x"},     // NUL
        {"\x1b[31mred", 256, "\\x1b[31mred"},             // terminal escape
        {"\x7f", 256, "\\x7f"},                           // DEL
        {"caf\xc3\xa9", 256, "caf\\xc3\\xa9"},            // UTF-8 bytes
        {"\xff", 256, "\\xff"},
        {"abcdef", 6, "abcdef"},                              // exactly at the cap
        {"abcdefg", 6, "abcdef..."},                          // one past
        {"abcde\n", 8, "abcde..."},                           // \x0a (4) does not fit in 3
        {"abcd\n", 8, "abcd\\x0a"},                           // fits exactly
        {"a\\", 2, "a..."},                                   // "\\\\" (2) does not fit in 1
        {std::string(1000, 'x'), 0, std::string(1000, 'x')},  // 0: no cap
    };
    for (const auto& r : rows) EXPECT_EQ(escape(r.in, r.max), r.want) << r.want;
}

TEST(Escape, DefaultCapIs256) {
    const std::string out = escape(std::string(300, 'a'));
    EXPECT_EQ(out, std::string(256, 'a') + "...");
}

TEST(Escape, AppendReportsCut) {
    std::string out = "x=";
    EXPECT_TRUE(xproxy::escape_append(out, "ok", 10));
    EXPECT_FALSE(xproxy::escape_append(out, std::string(20, 'b'), 10));
    EXPECT_EQ(out, "x=ok" + std::string(10, 'b') + "...");
}

TEST(Escape, OutputIsOnePrintableLine) {
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    const std::string out = escape(all, 0);
    for (char c : out) {
        ASSERT_GE(static_cast<unsigned char>(c), 0x20);
        ASSERT_LT(static_cast<unsigned char>(c), 0x7F);
    }
    EXPECT_EQ(out.size(), 95u + 1u /* backslash doubled */ + 4u * (256 - 95));
}

TEST(Escape, UnescapeRoundTrip) {
    std::mt19937 rng(7);
    for (int n = 0; n < 500; ++n) {
        std::string in(static_cast<std::size_t>(rng() % 40), '\0');
        for (auto& c : in) c = static_cast<char>(rng() & 0xFF);
        auto back = unescape(escape(in, 0));
        ASSERT_TRUE(back);
        ASSERT_EQ(*back, in);
    }
}

TEST(Escape, UnescapeRejects) {
    for (const char* bad : {"\\", "\\x", "\\x4", "\\xg0", "\\n", "a\nb", "\x80"}) EXPECT_FALSE(unescape(bad)) << bad;
    EXPECT_EQ(unescape("\\x41\\x4a\\\\"), std::optional<std::string>("AJ\\"));
}

TEST(EscapeValue, QuoteAndSpaceCannotForgeAKey) {
    using xproxy::escape_value;
    // Quoted value: '"' would end it; a space is harmless inside quotes.
    EXPECT_EQ(escape_value("a\" action=\"OK"), "a\\x22 action=\\x22OK");
    // Unquoted value: a space would start a new key.
    EXPECT_EQ(escape_value("id action=OK", 256, false), "id\\x20action=OK");
    EXPECT_EQ(escape_value("line\r\nevent=x\\"), "line\\x0d\\x0aevent=x\\\\");
    // The cap counts escaped characters and never splits a sequence.
    EXPECT_EQ(escape_value("ab\"c", 5), "ab...");
    EXPECT_EQ(escape_value("ab\"c", 6), "ab\\x22...");
    EXPECT_EQ(xproxy::unescape(escape_value("x \"y\" \\ z", 0, false)), "x \"y\" \\ z");
}
