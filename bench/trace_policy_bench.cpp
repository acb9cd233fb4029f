// trace_policy_bench: trace-header signing and verification, and policy request
// parsing (the 29 attributes Postfix 3.7 sends, and Postfix's README example), per
// operation. DESIGN.md sets no target for these; the policy daemon's goal of 50,000
// requests/s on 2 cores puts a whole request's budget near 20 µs (counter budget_us).
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "xproxy/policy_protocol.hpp"
#include "xproxy/trace_header.hpp"

using namespace xproxy;

namespace {

const KeyRing& keys() {
    static const KeyRing k = [] {
        std::string err;
        return *KeyRing::parse("k1 base64:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", &err);
    }();
    return k;
}

SourceInfo sample() {
    SourceInfo si;
    si.client = Endpoint{*IpAddress::parse("192.0.2.66"), 40123};
    si.helo = "client.example.org";
    si.ptr_name = "mail.example.org";
    si.protocol = "ESMTPS";
    si.tls = {"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, "", "", ""};
    si.login = "alice@example.org";
    si.session_id = "4XyZ1";
    return si;
}

const trace::MessageBinding kMsg{"alice@example.org", "<1234@client.example>"};

void BM_TraceSign(benchmark::State& state) {
    for (auto _ : state)
        benchmark::DoNotOptimize(trace::sign(sample(), "gw1", 1790000000, trace::BindingKind::message_id, kMsg, keys()));
}
BENCHMARK(BM_TraceSign);

void BM_TraceVerify(benchmark::State& state) {
    std::string field = trace::format_field(
        trace::sign(sample(), "gw1", 1790000000, trace::BindingKind::message_id, kMsg, keys()));
    for (auto _ : state) {
        auto r = trace::verify(field, kMsg, keys(), 1790000010, 3600);
        if (r.verdict != trace::Verdict::ok) state.SkipWithError("verify failed");
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_TraceVerify);

std::string fixture(const char* name) {
    std::ifstream in(std::string(XPROXY_SOURCE_DIR) + "/tests/e2e/data/" + name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void parse_loop(benchmark::State& state, const std::string& req) {
    std::vector<policy::Request> out;
    for (auto _ : state) {
        policy::RequestParser p;
        out.clear();
        p.feed(req.data(), req.size(), out);
        if (out.size() != 1) state.SkipWithError("parse failed");
        benchmark::DoNotOptimize(out);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(req.size()));
    state.counters["budget_us"] = 20;
}

void BM_PolicyParsePostfix37(benchmark::State& state) { parse_loop(state, fixture("policy_postfix37_capture.txt")); }
BENCHMARK(BM_PolicyParsePostfix37);

void BM_PolicyParseReadmeExample(benchmark::State& state) { parse_loop(state, fixture("policy_example_readme.txt")); }
BENCHMARK(BM_PolicyParseReadmeExample);

}  // namespace
