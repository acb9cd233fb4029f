// dovecot_auth_test: the Dovecot auth client codec: tab-escaping both ways, the handshake
// and AUTH lines byte by byte, the server line decoder (table of lines, the handshake's
// order, every strict prefix need_more, the 8 KiB bound) against a transcript of
// Dovecot 2.3's auth-client socket.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <xproxy/base/base64.hpp>
#include <xproxy/wire/dovecot_auth.hpp>

using namespace xproxy;
using namespace xproxy::dovecot;
using namespace std::string_literals;

namespace {

// What Dovecot 2.3.19 sends on connect (auth_mechanisms = plain login).
const std::string kGreeting =
    "VERSION\t1\t2\n"
    "MECH\tPLAIN\tplaintext\n"
    "MECH\tLOGIN\tplaintext\n"
    "SPID\t4242\n"
    "CUID\t7\n"
    "COOKIE\t0123456789abcdef0123456789abcdef\n"
    "DONE\n";

// Decodes every whole line of `bytes`; the last result (complete when all decoded).
DecodeResult decode_all(ServerDecoder& d, std::string_view bytes, std::vector<ServerLine>* lines = nullptr) {
    DecodeResult r = DecodeResult::more();
    while (!bytes.empty()) {
        ServerLine line;
        r = d.decode(bytes, line);
        if (!r.complete()) return r;
        bytes.remove_prefix(r.consumed);
        if (lines) lines->push_back(std::move(line));
    }
    return r;
}

TEST(DovecotTabEscape, BothWays) {
    struct Row {
        std::string raw, escaped;
    };
    const Row rows[] = {
        {"plain", "plain"},
        {"a\tb", "a\001tb"},
        {"\r\n", "\001r\001n"},
        {"\001", "\0011"},
        {"\0"s, "\0010"},
        {"x\001t", "x\0011t"},  // an escape byte followed by 't' stays two bytes
        {"", ""},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(tab_escape(r.raw), r.escaped);
        std::string back;
        ASSERT_TRUE(tab_unescape(r.escaped, back));
        EXPECT_EQ(back, r.raw);
    }
    std::string out;
    ASSERT_TRUE(tab_unescape("a\001xb", out));  // any other byte stands for itself
    EXPECT_EQ(out, "axb");
    EXPECT_FALSE(tab_unescape("ab\001", out));  // a dangling escape
}

TEST(DovecotEncode, Handshake) { EXPECT_EQ(encode_handshake(1234), "VERSION\t1\t2\nCPID\t1234\n"); }

TEST(DovecotEncode, AuthPlainByteByByte) {
    AuthRequest r;
    r.id = 7;
    r.tls = true;
    r.local = Endpoint{*IpAddress::parse("192.0.2.1"), 587};
    r.remote = Endpoint{*IpAddress::parse("2001:db8::5"), 50123};
    r.authcid = "alice";
    r.password = "s\tcret";
    SecretBytes line;
    ASSERT_TRUE(encode_auth_plain(r, line));
    EXPECT_EQ(line.view(),
              "AUTH\t7\tPLAIN"         // command, id, mechanism
              "\tservice=smtp"         // the service Dovecot's passdb sees (%s)
              "\tnologin\tno-penalty"  // a check only; xproxyd throttles on its own
              "\tsecured=tls"          // the client's connection is TLS
              "\tlip=192.0.2.1\trip=2001:db8::5\tlport=587\trport=50123"
              "\tresp=" +
                  base64_encode("\0alice\0s\tcret"s) + "\n");
    // The TAB of the password travels inside the base64: nothing to escape.
    EXPECT_EQ(line.view().find("s\tcret"), std::string_view::npos);
}

TEST(DovecotEncode, AuthPlainMinimalAndRefusals) {
    AuthRequest r;
    r.authcid = "bob";
    r.password = "pw";
    SecretBytes line;
    ASSERT_TRUE(encode_auth_plain(r, line));
    EXPECT_EQ(line.view(), "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tno-penalty\tresp=AGJvYgBwdw==\n");

    r.local = Endpoint{*IpAddress::parse("127.0.0.1"), 0};  // no port: no lport
    ASSERT_TRUE(encode_auth_plain(r, line));
    EXPECT_NE(line.view().find("\tlip=127.0.0.1\tresp="), std::string_view::npos);

    struct Bad {
        std::uint32_t id;
        std::string user, pass;
    };
    const Bad bad[] = {{0, "a", "b"}, {1, "", "b"}, {1, "a", ""}, {1, "a\0b"s, "p"}, {1, "a", "p\0q"s}};
    for (const auto& b : bad) {
        AuthRequest x;
        x.id = b.id;
        x.authcid = b.user;
        x.password = b.pass;
        line.assign("old", 3);
        EXPECT_FALSE(encode_auth_plain(x, line));
        EXPECT_TRUE(line.empty());
    }
}

TEST(DovecotDecode, Dovecot23Transcript) {
    ServerDecoder d;
    std::vector<ServerLine> lines;
    const std::string replies =
        "OK\t1\tuser=alice@example.com\n"
        "FAIL\t2\tuser=bob\n"
        "FAIL\t3\ttemp\treason=Internal\001tfailure\n"
        "CONT\t4\t\n"
        "CONT\t5\tVXNlcm5hbWU6\n"
        "FAIL\t6\tauthz\tcode=authz_fail\n"
        "NOTICE\tsomething\n";
    ASSERT_TRUE(decode_all(d, kGreeting, &lines).complete());
    EXPECT_TRUE(d.handshake_done());
    ASSERT_TRUE(decode_all(d, replies, &lines).complete());
    ASSERT_EQ(lines.size(), 14u);
    using K = ServerLine::Kind;
    EXPECT_EQ(lines[0].kind, K::version);
    EXPECT_EQ(lines[0].major, 1u);
    EXPECT_EQ(lines[0].minor, 2u);
    EXPECT_EQ(lines[1].kind, K::mech);
    EXPECT_EQ(lines[1].word, "PLAIN");
    EXPECT_TRUE(lines[1].has("plaintext"));
    EXPECT_EQ(lines[3].kind, K::spid);
    EXPECT_EQ(lines[3].word, "4242");
    EXPECT_EQ(lines[4].kind, K::cuid);
    EXPECT_EQ(lines[5].kind, K::cookie);
    EXPECT_EQ(lines[6].kind, K::done);
    EXPECT_EQ(lines[7].kind, K::ok);
    EXPECT_EQ(lines[7].id, 1u);
    ASSERT_NE(lines[7].param("user"), nullptr);
    EXPECT_EQ(*lines[7].param("user"), "alice@example.com");
    EXPECT_EQ(lines[8].kind, K::fail);
    EXPECT_FALSE(lines[8].has("temp"));
    EXPECT_EQ(lines[9].kind, K::fail);
    EXPECT_TRUE(lines[9].has("temp"));
    EXPECT_EQ(*lines[9].param("reason"), "Internal\tfailure");
    EXPECT_EQ(lines[10].kind, K::cont);
    EXPECT_EQ(lines[10].id, 4u);
    EXPECT_EQ(lines[10].word, "");
    EXPECT_EQ(lines[11].word, "VXNlcm5hbWU6");
    EXPECT_TRUE(lines[12].has("authz"));
    EXPECT_EQ(*lines[12].param("code"), "authz_fail");
    EXPECT_EQ(lines[13].kind, K::other);
    EXPECT_EQ(lines[13].word, "NOTICE");
}

TEST(DovecotDecode, EveryStrictPrefixNeedsMore) {
    const std::string all = kGreeting + "OK\t1\tuser=a\n";
    std::size_t start = 0;
    ServerDecoder d;
    while (start < all.size()) {
        const std::size_t lf = all.find('\n', start);
        for (std::size_t n = start; n <= lf; ++n) {
            ServerDecoder copy = d;
            ServerLine line;
            EXPECT_TRUE(copy.decode(std::string_view(all).substr(start, n - start), line).need_more()) << n;
        }
        ServerLine line;
        const DecodeResult r = d.decode(std::string_view(all).substr(start), line);
        ASSERT_TRUE(r.complete());
        EXPECT_EQ(r.consumed, lf + 1 - start);
        start = lf + 1;
    }
}

TEST(DovecotDecode, Refusals) {
    struct Row {
        const char* what;
        std::string bytes;
        const char* want_reason;
    };
    const std::string pre = "VERSION\t1\t2\nMECH\tPLAIN\nSPID\t1\n";
    const std::vector<Row> rows = {
        {"major 2", "VERSION\t2\t0\n", "major version"},
        {"not VERSION first", "MECH\tPLAIN\n", "did not start with VERSION"},
        {"VERSION without minor", "VERSION\t1\n", "malformed"},
        {"VERSION with sign", "VERSION\t+1\t2\n", "malformed"},
        {"auth-master socket", "VERSION\t1\t2\nSPID\t99\n", "auth-master"},
        {"no PLAIN", "VERSION\t1\t2\nMECH\tLOGIN\nSPID\t1\nDONE\n", "does not offer PLAIN"},
        {"MECH without name", "VERSION\t1\t2\nMECH\n", "malformed"},
        {"MECH with empty name", "VERSION\t1\t2\nMECH\t\n", "malformed"},
        {"reply before DONE", pre + "OK\t1\n", "unexpected line"},
        {"VERSION twice", pre + "VERSION\t1\t2\n", "unexpected line"},
        {"MECH after DONE", pre + "DONE\nMECH\tPLAIN\n", "after DONE"},
        {"OK without id", pre + "DONE\nOK\n", "malformed"},
        {"OK id 0", pre + "DONE\nOK\t0\n", "malformed"},
        {"OK id leading zero", pre + "DONE\nOK\t01\n", "malformed"},
        {"OK id too big", pre + "DONE\nOK\t4294967296\n", "malformed"},
        {"OK id not a number", pre + "DONE\nOK\tx\n", "malformed"},
        {"CONT without data", pre + "DONE\nCONT\t1\n", "malformed"},
        {"dangling escape", pre + "DONE\nOK\t1\tuser=a\001\n", "bad escape"},
        {"NUL", pre + "DONE\nOK\t1\tuser=a\0b\n"s, "NUL"},
        {"long line with LF", pre + "DONE\nOK\t1\treason=" + std::string(8200, 'x') + "\n", "longer than 8192"},
        {"long line without LF", pre + "DONE\nOK\t1\treason=" + std::string(8200, 'x'), "longer than 8192"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        ServerDecoder d;
        const DecodeResult res = decode_all(d, r.bytes);
        ASSERT_TRUE(res.invalid());
        EXPECT_NE(res.reason.find(r.want_reason), std::string_view::npos) << res.reason;
        ServerLine line;  // broken for good
        EXPECT_TRUE(d.decode("DONE\n", line).invalid());
    }
}

TEST(DovecotDecode, LineOfExactly8192BytesIsAccepted) {
    ServerDecoder d;
    ASSERT_TRUE(decode_all(d, kGreeting).complete());
    std::string line = "FAIL\t1\treason=";
    line += std::string(kMaxLine - line.size(), 'x');
    ASSERT_EQ(line.size(), kMaxLine);
    ServerLine out;
    EXPECT_TRUE(d.decode(line, out).need_more());
    const DecodeResult r = d.decode(line + "\n", out);
    ASSERT_TRUE(r.complete());
    EXPECT_EQ(r.consumed, kMaxLine + 1);
    EXPECT_EQ(out.param("reason")->size(), kMaxLine - 14);
}

}  // namespace
