// xproxyd_data_decoder_test: end-of-data detection and line-end normalisation, with every
// input also fed split at every possible chunk boundary (and byte by byte): the result
// must not depend on how TCP cut the stream.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <xproxy/wire/data_decoder.hpp>

using xproxy::smtp::DataDecoder;

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
        {"bare LF lines normalised", "a\nb\r\n.\r\n", true, "a\r\nb\r\n", 8, 6},
        // Only CRLF "." CRLF ends the data (RFC 5321 4.1.1.4); a "." line next to a bare
        // line end is dropped (Postfix 3.9, smtpd_forbid_bare_newline=normalize).
        {"LF dot LF is not an end", "a\n.\nMAIL\r\n.\r\n", true, "a\r\nMAIL\r\n", 13, 9},
        {"CRLF dot LF is not an end", "a\r\n.\nb\r\n.\r\n", true, "a\r\nb\r\n", 11, 6},
        {"LF dot CRLF is not an end", "a\n.\r\nb\r\n.\r\n", true, "a\r\nb\r\n", 11, 6},
        {"bare LF then a good end", "a\n.\r\n.\r\n", true, "a\r\n", 8, 3},
        {"bare LF only never ends", "a\n.\n", false, "a\r\n", 5, 3},
        // A bare CR ends a line too: it never reaches the downstream, whose reading of it
        // is unknown.
        {"bare CR becomes a line end", "a\rb\r\n.\r\n", true, "a\r\nb\r\n", 8, 6},
        {"CR dot CR is not an end", "a\r.\rMAIL\r\n.\r\n", true, "a\r\nMAIL\r\n", 13, 9},
        {"CRLF dot CR is not an end", "a\r\n.\rb\r\n.\r\n", true, "a\r\nb\r\n", 11, 6},
        {"CR run before LF is one line end", "a\r\r\nb\r\n.\r\r\n", true, "a\r\nb\r\n", 11, 6},
        {"CR run inside a line is one line end", "a\r\rb\r\n.\r\n", true, "a\r\nb\r\n", 9, 6},
        {"stuffed dot line after bare LF kept", "a\n..\r\n.\r\n", true, "a\r\n..\r\n", 9, 6},
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

// Whatever the client sends, the downstream gets CRLF line ends only.
TEST(DataDecoder, NoBareCrOrLfGoesDownstream) {
    const std::string alphabet = "\r\n.a";
    for (std::size_t len = 1; len <= 7; ++len) {
        std::size_t combos = 1;
        for (std::size_t k = 0; k < len; ++k) combos *= alphabet.size();
        for (std::size_t v = 0; v < combos; ++v) {
            std::string in;
            for (std::size_t k = 0, x = v; k < len; ++k, x /= alphabet.size()) in += alphabet[x % alphabet.size()];
            DataDecoder d;
            std::string out;
            d.feed(in.data(), in.size(), out);
            for (std::size_t k = 0; k < out.size(); ++k) {
                if (out[k] == '\r') {
                    ASSERT_TRUE(k + 1 < out.size() && out[k + 1] == '\n') << "input " << testing::PrintToString(in);
                }
                if (out[k] == '\n') {
                    ASSERT_TRUE(k > 0 && out[k - 1] == '\r') << "input " << testing::PrintToString(in);
                }
            }
            if (d.done()) {  // ended only at CRLF "." CRLF
                DataDecoder again;
                std::string ignored;
                const std::size_t used = again.feed(in.data(), in.size(), ignored);
                // "." then one or more CRs and an LF, at the start or after CRLF.
                std::size_t k = used - 1;
                ASSERT_EQ(in[k], '\n');
                ASSERT_TRUE(k > 0 && in[k - 1] == '\r') << testing::PrintToString(in);
                while (k > 0 && in[k - 1] == '\r') --k;
                ASSERT_TRUE(k > 0 && in[k - 1] == '.') << testing::PrintToString(in);
                --k;
                EXPECT_TRUE(k == 0 || (k >= 2 && in.substr(k - 2, 2) == "\r\n")) << testing::PrintToString(in);
            }
        }
    }
}

TEST(DataDecoder, LargeBodyInOddChunks) {
    std::string body;
    for (int i = 0; i < 5000; ++i)
        body += (i % 7 == 0 ? ".." : "") + std::string(static_cast<std::size_t>(i % 90), 'x') + "\r\n";
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

namespace {

// The decoder as it was written first, one byte at a time: the reference the faster
// scan and the joined copies must match byte for byte.
struct Reference {
    enum class S { bol, dot, dot_cr, mid, cr, done } s = S::bol;
    bool prev_crlf = true;
    std::uint64_t size = 0;
    std::uint64_t bare = 0;
    void end(bool crlf) {
        prev_crlf = crlf;
        if (!crlf) ++bare;
        s = S::bol;
    }
    std::size_t feed(const std::string& in, std::string& out) {
        std::size_t i = 0;
        while (i < in.size() && s != S::done) {
            const char c = in[i];
            switch (s) {
                case S::bol:
                    if (c == '.') ++i, s = S::dot;
                    else s = S::mid;
                    break;
                case S::dot:
                    if (c == '\r') ++i, s = S::dot_cr;
                    else if (c == '\n') ++i, end(false);
                    else out += '.', s = S::mid;
                    break;
                case S::dot_cr:
                    if (c == '\r') ++i;
                    else if (c == '\n') ++i, prev_crlf ? void(s = S::done) : end(true);
                    else end(false);
                    break;
                case S::cr:
                    if (c == '\r') ++i;
                    else out += "\r\n", size += 2, c == '\n' ? (++i, end(true)) : end(false);
                    break;
                case S::mid:
                    if (c == '\r') s = S::cr;
                    else if (c == '\n') out += "\r\n", size += 2, end(false);
                    else out += c, ++size;
                    ++i;
                    break;
                case S::done: break;
            }
        }
        return i;
    }
};

// Inputs of mostly long canonical lines with the odd dot, CR and LF: the faster path and
// every way out of it.
std::string random_body(std::mt19937& rng) {
    static const char* pieces[] = {"\r\n", "\n", "\r", "\r\r\n", ".", "..", "\r\n.\r\n", "\r\n.", ".\r"};
    std::string s;
    const std::size_t parts = rng() % 12;
    for (std::size_t k = 0; k < parts; ++k) {
        if (rng() % 2) s.append(rng() % 70, static_cast<char>('a' + rng() % 26));
        else s += pieces[rng() % (sizeof pieces / sizeof pieces[0])];
    }
    return s;
}

}  // namespace

TEST(DataDecoder, SameAsTheByteByByteDecoder) {
    std::mt19937 rng(20261206);
    for (int round = 0; round < 20000; ++round) {
        const std::string in = random_body(rng);
        Reference ref;
        std::string want;
        const std::size_t want_used = ref.feed(in, want);

        // Into a string, cut once at random.
        const std::size_t cut = in.empty() ? 0 : rng() % (in.size() + 1);
        DataDecoder d;
        std::string out;
        std::size_t used = 0;
        const std::string out_split = feed_split(in, cut, d, used);
        ASSERT_EQ(out_split, want) << testing::PrintToString(in) << " cut " << cut;
        ASSERT_EQ(used, want_used) << testing::PrintToString(in);
        ASSERT_EQ(d.done(), ref.s == Reference::S::done) << testing::PrintToString(in);
        ASSERT_EQ(d.size(), ref.size) << testing::PrintToString(in);
        ASSERT_EQ(d.bare_line_ends(), ref.bare) << testing::PrintToString(in);

        // Into fixed buffers of a random small size, in random pieces.
        const std::size_t room = DataDecoder::kMaxExpansion + rng() % 8;
        DataDecoder b;
        std::string got;
        std::size_t pos = 0;
        while (!b.done() && pos < in.size()) {
            std::vector<char> buf(room, '#');
            const std::size_t piece = 1 + rng() % 9;
            std::size_t produced = 0;
            const std::size_t n = b.feed(in.data() + pos, std::min(piece, in.size() - pos), buf.data(), room, produced);
            ASSERT_LE(produced, room);
            ASSERT_GT(n, 0u) << "no progress with room " << room;
            got.append(buf.data(), produced);
            pos += n;
        }
        ASSERT_EQ(got, want) << testing::PrintToString(in) << " room " << room;
        ASSERT_EQ(pos, want_used) << testing::PrintToString(in);
        ASSERT_EQ(b.size(), ref.size);
    }
}

// Long lines cross the 16-byte scan at every offset; the last bytes before a piece's end
// are scanned one by one.
TEST(DataDecoder, LineEndsAtEveryOffsetOfTheScan) {
    for (std::size_t len = 0; len < 70; ++len) {
        for (const char* end : {"\r\n", "\n", "\r", "\r\r\n"}) {
            const std::string in = std::string(len, 'x') + end + std::string(len, 'y') + "\r\n.\r\n";
            Reference ref;
            std::string want;
            ref.feed(in, want);
            for (std::size_t cut = 0; cut <= in.size(); ++cut) {
                DataDecoder d;
                std::size_t used = 0;
                ASSERT_EQ(feed_split(in, cut, d, used), want) << len << " cut " << cut;
                ASSERT_TRUE(d.done());
                ASSERT_EQ(used, in.size());
            }
        }
    }
}

// A buffer too small for one more byte's output takes nothing; the decoder keeps its
// state for the next call.
TEST(DataDecoder, FixedBufferTooSmallTakesNothing) {
    DataDecoder d;
    char buf[8];
    std::size_t produced = 99;
    EXPECT_EQ(d.feed("ab\r\n", 4, buf, 2, produced), 0u);
    EXPECT_EQ(produced, 0u);
    EXPECT_EQ(d.feed("ab\n", 3, buf, sizeof buf, produced), 3u);
    EXPECT_EQ(std::string(buf, produced), "ab\r\n");
    EXPECT_EQ(d.bare_line_ends(), 1u);
}
