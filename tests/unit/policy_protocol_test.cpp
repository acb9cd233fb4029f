// policy_protocol_test: the Postfix policy delegation protocol parser and reply encoder.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "xproxy/policy_protocol.hpp"

using namespace xproxy;
using namespace xproxy::policy;

namespace {
std::string slurp(const std::string& rel) {
    std::ifstream in(std::string(XPROXY_SOURCE_DIR) + "/" + rel, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<Request> parse_all(const std::string& bytes, RequestParser& p, bool* ok = nullptr) {
    std::vector<Request> out;
    bool r = p.feed(bytes.data(), bytes.size(), out);
    if (ok) *ok = r;
    return out;
}
}  // namespace

TEST(PolicyProtocol, PostfixReadmeExample) {
    std::string bytes = slurp("tests/e2e/data/policy_example_readme.txt");
    ASSERT_FALSE(bytes.empty());
    RequestParser p;
    auto reqs = parse_all(bytes, p);
    ASSERT_EQ(reqs.size(), 1u) << p.error();
    const Request& r = reqs[0];
    EXPECT_EQ(r.attrs.size(), 31u);
    EXPECT_EQ(r.get("request"), "smtpd_access_policy");
    EXPECT_EQ(r.get("protocol_state"), "RCPT");
    EXPECT_EQ(r.get("client_address"), "1.2.3.4");
    EXPECT_EQ(r.get("sasl_sender"), "");
    EXPECT_TRUE(r.has("sasl_sender"));
    EXPECT_EQ(r.get("mail_version"), "3.8.0");  // unknown to us: kept, ignored
    EXPECT_EQ(r.get("no_such"), "");
    SourceInfo si = to_source_info(r);
    EXPECT_EQ(si.client->to_string(), "1.2.3.4:1234");
    EXPECT_EQ(si.server->to_string(), "10.3.2.1:54321");
    EXPECT_EQ(si.helo, "some.domain.tld");
    EXPECT_EQ(si.ptr_name, "another.domain.tld");
    EXPECT_EQ(si.login, "you");
    EXPECT_EQ(si.session_id, "123.456.7");
    EXPECT_EQ(si.tls.version, "TLSv1/SSLv3");
    EXPECT_EQ(si.tls.bits, 256u);
}

TEST(PolicyProtocol, CapturedFromPostfix37) {
    std::string bytes = slurp("tests/e2e/data/policy_postfix37_capture.txt");
    ASSERT_FALSE(bytes.empty());
    RequestParser p;
    auto reqs = parse_all(bytes, p);
    ASSERT_EQ(reqs.size(), 1u) << p.error();
    EXPECT_EQ(reqs[0].attrs.size(), 29u);  // what Postfix 3.7.11 sends
    EXPECT_EQ(reqs[0].get("client_address"), "127.0.0.66");
    EXPECT_EQ(reqs[0].get("protocol_state"), "RCPT");
    EXPECT_EQ(reqs[0].get("policy_context"), "");
}

TEST(PolicyProtocol, EverySplitGivesTheSameResult) {
    std::string bytes = slurp("tests/e2e/data/policy_example_readme.txt") + "request=smtpd_access_policy\r\nsender=a\r\n\r\n";
    for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
        RequestParser p;
        std::vector<Request> out;
        ASSERT_TRUE(p.feed(bytes.data(), cut, out));
        ASSERT_TRUE(p.feed(bytes.data() + cut, bytes.size() - cut, out));
        ASSERT_EQ(out.size(), 2u) << cut;
        EXPECT_EQ(out[0].attrs.size(), 31u);
        EXPECT_EQ(out[1].get("sender"), "a");  // CRLF tolerated
        EXPECT_EQ(p.pending_bytes(), 0u);
    }
    RequestParser p;  // byte by byte
    std::vector<Request> out;
    for (char c : bytes) ASSERT_TRUE(p.feed(&c, 1, out));
    EXPECT_EQ(out.size(), 2u);
}

TEST(PolicyProtocol, BoundsAndErrors) {
    struct Row {
        std::string bytes;
        bool want_ok;
        const char* want_error;
    };
    Limits lim;
    lim.max_line = 20;
    lim.max_request = 50;
    lim.max_attributes = 3;
    const Row rows[] = {
        {"a=" + std::string(18, 'x') + "\n\n", true, ""},                                 // exactly 20
        {"a=" + std::string(18, 'x') + "\r\n\n", true, ""},                               // 20 + CR
        {"a=" + std::string(19, 'x') + "\n", false, "request line longer than 20 bytes"}, // 21
        {"a=" + std::string(40, 'x'), false, "request line longer than 20 bytes"},        // no LF yet
        {"a=1\nb=2\nc=3\n\n", true, ""},
        {"a=1\nb=2\nc=3\nd=4\n", false, "request has more than 3 attributes"},
        {"a=" + std::string(17, 'x') + "\nb=" + std::string(17, 'x') + "\nc=" + std::string(17, 'x') + "\n", false,
         "request larger than 50 bytes"},
        {"novalue\n", false, "request line without '='"},
        {"=x\n", false, "request line with an empty attribute name"},
        {"Sender=x\n", false, "invalid character in attribute name"},
        {"a=1\na=2\n", false, "attribute 'a' repeated in one request"},
        {std::string("a=\0\n", 4), false, "NUL byte in request"},
        {"\n\n\na=1\n\n", true, ""},  // stray empty lines
    };
    for (const auto& r : rows) {
        RequestParser p(lim);
        bool ok = false;
        parse_all(r.bytes, p, &ok);
        EXPECT_EQ(ok, r.want_ok) << r.bytes;
        EXPECT_EQ(p.error(), r.want_error) << r.bytes;
        if (!ok) {  // stays failed
            std::vector<Request> out;
            EXPECT_FALSE(p.feed("b=1\n\n", 5, out));
            EXPECT_TRUE(out.empty());
        }
    }
    // Bounds are per request: many requests in a row are fine.
    RequestParser p(lim);
    std::string many;
    for (int i = 0; i < 100; ++i) many += "a=1\nb=2\nc=3\n\n";
    bool ok = false;
    EXPECT_EQ(parse_all(many, p, &ok).size(), 100u);
    EXPECT_TRUE(ok);
}

TEST(PolicyProtocol, PendingBytesOfHalfSentRequest) {
    RequestParser p;
    std::vector<Request> out;
    ASSERT_TRUE(p.feed("request=smtpd_access_policy\nsend", 32, out));
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(p.pending_bytes(), 32u);
}

TEST(PolicyProtocol, ReplyEncoding) {
    EXPECT_EQ(encode_reply("DUNNO"), "action=DUNNO\n\n");
    EXPECT_EQ(encode_reply("550 5.1.1 bad\r\nx"), "action=550 5.1.1 bad  x\n\n");
    EXPECT_EQ(encode_reply("PREPEND X-Original-Source: v=1"), "action=PREPEND X-Original-Source: v=1\n\n");
}
