// wire_data_scan_test: a message is recognised as already in DATA's wire form exactly when
// BdatToData would give it back unchanged; the conversion of whole messages (as the
// deposit daemon's injection makes it) is read back by the DATA decoder as written.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include <xproxy/wire/bdat.hpp>
#include <xproxy/wire/data_decoder.hpp>
#include <xproxy/wire/data_scan.hpp>

using namespace xproxy::smtp;

namespace {

struct Row {
    const char* name;
    std::string in;
    std::string want;  // the wire form, without the final ".\r\n"
    bool want_canonical;
};

// A whole message in DATA's wire form, appended to out.
void encode_data_body(std::string_view in, std::string& out) {
    BdatToData conv;
    conv.feed(in, out);
    conv.finish(out);
}

// What the house's decoder reads from the encoder's output with the final dot.
void expect_round_trip(const std::string& wire, const char* name) {
    const std::string full = wire + ".\r\n";
    DataDecoder d;
    std::string out;
    const std::size_t used = d.feed(full.data(), full.size(), out);
    EXPECT_TRUE(d.done()) << name;
    EXPECT_EQ(used, full.size()) << name << ": the end of data must be exactly the final dot";
    EXPECT_EQ(out, wire) << name;
    EXPECT_EQ(d.bare_line_ends(), 0u) << name;
}

}  // namespace

TEST(DataScan, Table) {
    const Row rows[] = {
        {"empty", "", "", true},
        {"canonical", "a\r\nb\r\n", "a\r\nb\r\n", true},
        {"LF", "a\nb\n", "a\r\nb\r\n", false},
        {"no final line end", "a\r\nb", "a\r\nb\r\n", false},
        {"dot line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n", false},
        {"leading dot", ".a\n", "..a\r\n", false},
        {"dot after LF", "a\n.\n", "a\r\n..\r\n", false},
        {"dot at the very end", "a\n.", "a\r\n..\r\n", false},
        {"dot inside a line", "a.b\r\n", "a.b\r\n", true},
        {"bare CR ends a line", "a\rb\r\n", "a\r\nb\r\n", false},
        {"CR run before LF is one line end", "a\r\r\nb\r\n", "a\r\nb\r\n", false},
        {"CR run alone", "a\r\r\rb", "a\r\nb\r\n", false},
        {"CR then dot", "a\r.\r\n", "a\r\n..\r\n", false},
        {"LF CR", "a\n\rb", "a\r\n\r\nb\r\n", false},
        {"final CR", "a\r", "a\r\n", false},
        {"empty lines", "\n\n", "\r\n\r\n", false},
        {"8-bit kept", "caf\xc3\xa9\r\n", "caf\xc3\xa9\r\n", true},
        {"NUL kept", std::string("a\0b\r\n", 5), std::string("a\0b\r\n", 5), true},
    };
    for (const auto& row : rows) {
        std::string out = "PREFIX";
        encode_data_body(row.in, out);
        EXPECT_EQ(out, "PREFIX" + row.want) << row.name;
        EXPECT_EQ(scan_data_body(row.in).canonical, row.want_canonical) << row.name;
        if (row.want_canonical) {
            EXPECT_EQ(row.in, row.want) << row.name;
        }
        expect_round_trip(row.want, row.name);
    }
    EXPECT_TRUE(scan_data_body("caf\xc3\xa9\r\n").eight_bit);
    EXPECT_FALSE(scan_data_body("cafe\r\n").eight_bit);
    EXPECT_TRUE(scan_data_body(std::string(100, 'a') + "\x80").eight_bit);
}

TEST(DataScan, RandomMessagesRoundTrip) {
    std::mt19937 rng(20261207);
    const char alphabet[] = {'a', '.', '\r', '\n', '\x80', 'b'};
    for (int i = 0; i < 2000; ++i) {
        std::string in(rng() % 80, 'x');
        for (auto& c : in) c = alphabet[rng() % sizeof alphabet];
        std::string wire;
        encode_data_body(in, wire);
        expect_round_trip(wire, in.c_str());
        EXPECT_EQ(scan_data_body(in).canonical, wire == in) << in;
    }
}
