// trace_policy_bench: trace header signing and verification, and policy request parsing,
// per operation. doc/design.md sets no target for these codecs; the policy daemon's goal of
// 50,000 requests/s on 2 cores leaves one request (parse + decide + maybe sign + reply)
// about 40 us of CPU, and these figures are what the codecs take of it. One HMAC-SHA256
// over bytes of the canonical form's size is measured in the same run as the reference:
// signing and verifying cannot go below it (ratio = op / reference).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <iterator>
#include <string>

#include <xproxy/base/escape.hpp>
#include <xproxy/wire/policy_protocol.hpp>
#include <xproxy/wire/trace_header.hpp>

using namespace xproxy;

namespace {

const KeyRing& keys() {
    static const KeyRing k = [] {
        auto r = KeyRing::parse("k2026 base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
        return r ? std::move(*r) : KeyRing{};
    }();
    return k;
}

SourceInfo sample() {
    SourceInfo si;
    si.client = Endpoint{*IpAddress::parse("192.0.2.66"), 40123};
    si.helo = "client.example.org";
    si.ptr_name = "mail.example.org";
    si.protocol = "ESMTPSA";
    si.tls = {"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, "", "", ""};
    si.login = "alice@example.org";
    si.session_id = "4XyZ1AB2C3";
    return si;
}

const MessageBinding& message() {
    static const MessageBinding m{TraceBinding::message_id, "<20260101.1234@client.example>", "alice@example.org"};
    return m;
}

void BM_TraceSign(benchmark::State& state) {
    const SourceInfo si = sample();
    for (auto _ : state)
        benchmark::DoNotOptimize(sign_trace_header(si, "gw1.example.net", 1790000000, message(), keys()));
}
BENCHMARK(BM_TraceSign);

void BM_TraceVerifyFolded(benchmark::State& state) {
    const std::string field = format_field(
        sign_trace_header(sample(), "gw1.example.net", 1790000000, message(), keys()));
    for (auto _ : state) {
        auto r = verify_trace_header(field, message(), keys(), 1790000010, 86400);
        if (!r.ok()) state.SkipWithError("verify failed");
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_TraceVerifyFolded);

void BM_TraceVerifyBadSignature(benchmark::State& state) {
    std::string v = sign_trace_header(sample(), "gw1.example.net", 1790000000, message(), keys());
    v.back() = v.back() == 'A' ? 'B' : 'A';
    for (auto _ : state) {
        auto r = verify_trace_header(v, message(), keys(), 1790000010, 86400);
        if (r.verdict != TraceVerdict::bad_signature) state.SkipWithError("expected bad_signature");
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_TraceVerifyBadSignature);

// Reference: one HMAC-SHA256 over 330 bytes (about the canonical form's size).
void BM_HmacSha256Reference(benchmark::State& state) {
    const std::string data(330, 'x');
    const Key* key = keys().signing_key();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    for (auto _ : state) {
        HMAC(EVP_sha256(), key->secret.data(), static_cast<int>(key->secret.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
        benchmark::DoNotOptimize(mac);
    }
}
BENCHMARK(BM_HmacSha256Reference);

std::string fixture(const char* name) {
    std::ifstream in(std::string(XPROXY_SOURCE_DIR) + "/tests/e2e/data/" + name, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// One request per iteration on a long-lived parser, as on a persistent Postfix connection.
void parse_loop(benchmark::State& state, const std::string& req) {
    PolicyRequestParser p;
    for (auto _ : state) {
        p.feed(req.data(), req.size());
        auto r = p.next();
        if (!r) {
            state.SkipWithError("parse failed");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(req.size()));
}

void BM_PolicyParsePostfix37(benchmark::State& state) { parse_loop(state, fixture("policy_postfix37_capture.txt")); }
BENCHMARK(BM_PolicyParsePostfix37);

void BM_PolicyParseReadmeExample(benchmark::State& state) { parse_loop(state, fixture("policy_example_readme.txt")); }
BENCHMARK(BM_PolicyParseReadmeExample);

// The same request arriving in 64-byte pieces (lines cut across reads).
void BM_PolicyParsePostfix37Split64(benchmark::State& state) {
    const std::string req = fixture("policy_postfix37_capture.txt");
    PolicyRequestParser p;
    for (auto _ : state) {
        for (std::size_t i = 0; i < req.size(); i += 64)
            p.feed(req.data() + i, std::min<std::size_t>(64, req.size() - i));
        auto r = p.next();
        if (!r) {
            state.SkipWithError("parse failed");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_PolicyParsePostfix37Split64);

void BM_PolicyReplyAndSourceInfo(benchmark::State& state) {
    PolicyRequestParser p;
    const std::string req = fixture("policy_postfix37_capture.txt");
    p.feed(req.data(), req.size());
    const PolicyRequest r = *p.next();
    for (auto _ : state) {
        benchmark::DoNotOptimize(policy_source_info(r));
        benchmark::DoNotOptimize(encode_policy_reply("DUNNO"));
    }
}
BENCHMARK(BM_PolicyReplyAndSourceInfo);

void BM_EscapeLogValue(benchmark::State& state) {
    const std::string v = "client\r\n.example\x01\xff with some text";
    for (auto _ : state) benchmark::DoNotOptimize(escape(v));
}
BENCHMARK(BM_EscapeLogValue);

}  // namespace
