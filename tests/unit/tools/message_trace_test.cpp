// tools_message_trace_test: `xproxy-wire trace` on message fixtures (tools/
// message_trace.hpp): a delivered message with several hops and a refolded trace field
// is verified and the vouching hop is the Received line below it; a forged field (wrong
// key), a copied one (other Message-ID), a valid field below a forged topmost one, an
// expired one and a message without one are not trusted, each with its reason; the
// envelope sender comes from Return-Path or --sender; untrusted bytes are escaped.
#include <gtest/gtest.h>

#include <string>

#include "message_trace.hpp"
#include <xproxy/wire/trace_header.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::tools;

constexpr std::int64_t kNow = 1790000100;

KeyRing ring(const char* text) {
    auto r = KeyRing::parse(text);
    if (!r) ADD_FAILURE() << r.error();
    return std::move(*r);
}

const KeyRing& keys() {
    static const KeyRing k = ring("k1 hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
    return k;
}

const KeyRing& other_keys() {
    static const KeyRing k = ring("k1 hex:ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
    return k;
}

// The folded "X-Original-Source: ..." field for client 127.0.0.66, signed at A.
std::string trace_field(const KeyRing& k, const std::string& mid, std::int64_t t = 1790000000) {
    SourceInfo s;
    s.client = Endpoint{*IpAddress::parse("127.0.0.66"), 40066};
    s.helo = "client.example";
    const MessageBinding b{TraceBinding::message_id, mid, "alice@example.org"};
    return format_field(sign_trace_header(s, "mta-a.example", t, b, k));
}

const char* kHopC =
    "Received: from mta-b.example (localhost [127.0.0.2])\r\n\tby mta-c.example (Postfix) with ESMTP id C1\r\n\tfor "
    "<bob@example.net>; Mon,  7 Dec 2026 07:00:02 +0000 (UTC)\r\n";
const char* kHopB =
    "Received: from mta-a.example (localhost [127.0.0.1])\r\n\tby mta-b.example (xproxyd) with ESMTP id B1; Mon,  7 "
    "Dec 2026 07:00:01 +0000\r\n";
const char* kHopA =
    "Received: from client.example (unknown [127.0.0.66])\r\n\tby mta-a.example (Postfix) with ESMTP id A1; Mon,  7 "
    "Dec 2026 07:00:00 +0000\r\n";

std::string message(const std::string& traces, const char* mid = "<1@client.example>") {
    return std::string("Return-Path: <alice@example.org>\r\n") + kHopC + kHopB + traces + kHopA + "Message-ID: " + mid +
           "\r\nSubject: test\r\n\r\nbody\r\n";
}

TraceReport run(const std::string& msg, const KeyRing& k = keys(), TraceOptions o = {kNow, 86400, 300, {}}) {
    auto r = trace_message(msg, k, o);
    EXPECT_TRUE(r) << r.error();
    return r ? std::move(*r) : TraceReport{};
}

TEST(MessageTrace, VerifiedThroughSeveralHopsWithTheVouchingHop) {
    const std::string field = trace_field(keys(), "<1@client.example>");
    ASSERT_NE(field.find("\r\n\t"), std::string::npos);  // folded, as a milter inserts it
    auto rep = run(message(field + "\r\n"));
    ASSERT_TRUE(rep.verified());
    ASSERT_EQ(rep.hops.size(), 3u);
    ASSERT_TRUE(rep.vouching_hop);
    EXPECT_EQ(*rep.vouching_hop, 2u);  // A's own Received, below the field
    EXPECT_EQ(rep.hops[2].received.from_ip, "127.0.0.66");
    EXPECT_EQ(rep.traces.front().result.source.client->to_string(), "127.0.0.66:40066");
    const std::string text = format_report(rep);
    EXPECT_NE(text.find("verified original client: 127.0.0.66:40066 helo=client.example, vouched for by "
                        "mta-a.example (kid=k1) at hop 3 (from client.example (unknown [127.0.0.66]) by mta-a.example"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("received chain (newest first): 3 hops"), std::string::npos) << text;
    EXPECT_NE(text.find("1: result=ok kid=k1"), std::string::npos) << text;
}

TEST(MessageTrace, RefoldedFieldStillVerifies) {
    std::string field = trace_field(keys(), "<1@client.example>");
    // A later hop rewraps the field: every fold moved, blanks added after ';'.
    std::string refolded;
    for (char c : field) {
        if (c == '\r' || c == '\n' || c == '\t') continue;
        refolded += c;
        if (c == ';') refolded += "\n   ";
    }
    auto rep = run(message(refolded + "\r\n"));
    EXPECT_TRUE(rep.verified()) << format_report(rep);
}

TEST(MessageTrace, UntrustedCases) {
    struct Row {
        const char* name;
        std::string msg;
        TraceOptions opts;
        const char* want_last_line;
    };
    const std::string good = trace_field(keys(), "<1@client.example>") + "\r\n";
    const std::string forged = trace_field(other_keys(), "<1@client.example>") + "\r\n";
    const std::string copied = trace_field(keys(), "<other@client.example>") + "\r\n";
    const std::string old = trace_field(keys(), "<1@client.example>", kNow - 2 * 86400) + "\r\n";
    const TraceOptions o{kNow, 86400, 300, {}};
    const Row rows[] = {
        {"forged", message(forged), o, "not trusted: the topmost X-Original-Source field is bad_signature"},
        {"copied from another message", message(copied), o,
         "not trusted: the topmost X-Original-Source field is wrong_binding"},
        {"valid one below a forged topmost one", message(forged + good), o,
         "not trusted: the topmost X-Original-Source field is bad_signature"},
        {"expired", message(old), o, "not trusted: the topmost X-Original-Source field is expired"},
        {"none", message(""), o, "not trusted: the message has no X-Original-Source field"},
        {"wrong --sender", message(good), TraceOptions{kNow, 86400, 300, std::string("mallory@example.org")},
         "not trusted: the topmost X-Original-Source field is wrong_binding"},
    };
    for (const auto& r : rows) {
        auto rep = run(r.msg, keys(), r.opts);
        EXPECT_FALSE(rep.verified()) << r.name;
        const std::string text = format_report(rep);
        EXPECT_NE(text.find(r.want_last_line), std::string::npos) << r.name << "\n" << text;
    }
    auto two = run(message(forged + good));
    ASSERT_EQ(two.traces.size(), 2u);
    EXPECT_TRUE(two.traces[1].result.ok());  // valid, but never trusted below the topmost
    EXPECT_NE(format_report(two).find("2: result=ok"), std::string::npos);
    EXPECT_NE(format_report(two).find("[not the topmost: never trusted]"), std::string::npos);
}

TEST(MessageTrace, SenderFromOptionWithoutReturnPath) {
    std::string msg = message(trace_field(keys(), "<1@client.example>") + "\r\n");
    msg.erase(0, msg.find("\r\n") + 2);  // no Return-Path
    EXPECT_FALSE(run(msg).verified());
    EXPECT_NE(format_report(run(msg)).find("give --sender"), std::string::npos);
    EXPECT_TRUE(run(msg, keys(), TraceOptions{kNow, 86400, 300, std::string("alice@example.org")}).verified());
}

TEST(MessageTrace, BrokenHeaderAndEscaping) {
    EXPECT_FALSE(trace_message("Received: x\r\nnot a field\r\n\r\n", keys(), {kNow, 86400, 300, {}}));
    auto rep = run("Received: from evil\x1b[31m (x [127.0.0.9]) by y; d\r\n\r\n");
    EXPECT_EQ(format_report(rep).find('\x1b'), std::string::npos);
}

}  // namespace
