// xproxyd_data_decoder_test: end-of-data detection and line-end normalisation, with every
// input also fed split at every possible chunk boundary (and byte by byte): the result
// must not depend on how TCP cut the stream.
#include <gtest/gtest.h>

#include <string>

#include "data_decoder.hpp"

using xproxy::proxyd::DataDecoder;

namespace {

struct Row {
    const char* name;
    std::string in;
    bool want_done;
    std::string want_out;       // wire form relayed downstream
    std::size_t want_consumed;  // bytes of `in` that belong to the body
    std::uint64_t want_size;    // unstuffed, CRLF
};

std::string feed_split(const std::string& in, std::size_t cut, DataDecoder& d, std::size_t& consumed) {
    std::string out;
    consumed = d.feed(in.data(), cut, out);
    if (!d.done()) consumed += d.feed(in.data() + cut, in.size() - cut, out);
    return out;
}

}  // namespace

TEST(DataDecoder, Table) {
    const std::string tail = "QUIT\r\n";
    const Row rows[] = {
        {"plain", "a\r\nb\r\n.\r\n", true, "a\r\nb\r\n", 9, 6},
        {"empty body", ".\r\n", true, "", 3, 0},
        {"stuffed dot kept for the downstream", "..x\r\n.\r\n", true, "..x\r\n", 8, 4},
        {"double dot line", "..\r\n.\r\n", true, "..\r\n", 7, 3},
        {"dot not alone", ".x\r\n.\r\n", true, ".x\r\n", 7, 3},
        {"bare LF lines normalised", "a\nb\n.\r\n", true, "a\r\nb\r\n", 7, 6},
        {"bare LF end of data", "a\r\n.\n", true, "a\r\n", 5, 3},
        {"bare CR kept as a byte", "a\rb\r\n.\r\n", true, "a\rb\r\n", 8, 5},
        {"CR dot CR is not an end", "a\r.\r\nb\r\n.\r\n", true, "a\r.\r\nb\r\n", 11, 8},
        {"dot CR x", ".\rx\r\n.\r\n", true, ".\rx\r\n", 8, 4},
        {"no end yet", "a\r\n.", false, "a\r\n", 4, 3},
        {"dot space is not an end", ". \r\n.\r\n", true, ". \r\n", 7, 3},
        {"end mid-chunk, next command follows", "x\r\n.\r\n" + tail, true, "x\r\n", 6, 3},
    };
    for (const auto& r : rows) {
        for (std::size_t cut = 0; cut <= r.in.size(); ++cut) {
            DataDecoder d;
            std::size_t consumed = 0;
            std::string out = feed_split(r.in, cut, d, consumed);
            EXPECT_EQ(d.done(), r.want_done) << r.name << " cut " << cut;
            EXPECT_EQ(out, r.want_out) << r.name << " cut " << cut;
            if (r.want_done) {
                EXPECT_EQ(consumed, r.want_consumed) << r.name << " cut " << cut;
            }
            EXPECT_EQ(d.size(), r.want_size) << r.name << " cut " << cut;
        }
        // Byte by byte.
        DataDecoder d;
        std::string out;
        std::size_t consumed = 0;
        for (std::size_t i = 0; i < r.in.size() && !d.done(); ++i) consumed += d.feed(r.in.data() + i, 1, out);
        EXPECT_EQ(out, r.want_out) << r.name << " byte by byte";
        if (r.want_done) {
            EXPECT_EQ(consumed, r.want_consumed) << r.name;
        }
    }
}

TEST(DataDecoder, LargeBodyInOddChunks) {
    std::string body;
    for (int i = 0; i < 5000; ++i) body += (i % 7 == 0 ? ".." : "") + std::string(static_cast<std::size_t>(i % 90), 'x') + "\r\n";
    std::string in = body + ".\r\n";
    DataDecoder d;
    std::string out;
    std::size_t pos = 0, step = 1;
    while (!d.done() && pos < in.size()) {
        std::size_t n = std::min(step, in.size() - pos);
        pos += d.feed(in.data() + pos, n, out);
        step = step * 3 % 1021 + 1;
    }
    EXPECT_TRUE(d.done());
    EXPECT_EQ(pos, in.size());
    EXPECT_EQ(out, body);
}

TEST(DataDecoder, ResetStartsOver) {
    DataDecoder d;
    std::string out;
    d.feed("a\r\n.\r\n", 6, out);
    ASSERT_TRUE(d.done());
    d.reset();
    EXPECT_FALSE(d.done());
    EXPECT_EQ(d.size(), 0u);
}
