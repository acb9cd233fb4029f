// proxy_bench: speed of the PROXY protocol codec against the targets of doc/design.md
// ("PROXY v2 decode <= 15 ns, v1 <= 60 ns per header"). Benchmarks with a target report
// counters target_ns and ratio = measured ns per header / target (<= 1 meets it), TLVs and
// CRC32C included; the others (HMAC, encode, CRC32C throughput on both implementations)
// are figures for reference. Inputs are decoded from the same buffer in a loop, as a server decodes each
// connection's first bytes.
#include <benchmark/benchmark.h>

#include <time.h>

#include <cstring>
#include <string>
#include <vector>

#include <xproxy/wire/proxy_protocol.hpp>

using namespace xproxy;
using namespace xproxy::pp;

namespace {

const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

Endpoint ep(const char* ip, std::uint16_t port) { return Endpoint{*IpAddress::parse(ip), port}; }

// This thread's CPU time in ns: on a shared machine, time spent preempted is not ours.
double thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Decodes `in` in a loop; when target_ns > 0, reports the ratio of our own measurement of
// the loop (thread CPU time per iteration) to the target.
void decode_loop(benchmark::State& state, const std::string& in, double target_ns,
                 DecodeResult (*fn)(const std::uint8_t*, std::size_t, Header&) = &decode) {
    Header h;
    if (!fn(u8(in), in.size(), h).complete()) {
        state.SkipWithError("fixture does not decode");
        return;
    }
    const double t0 = thread_cpu_ns();
    for (auto _ : state) {
        benchmark::DoNotOptimize(in.data());
        DecodeResult r = fn(u8(in), in.size(), h);
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(h);
    }
    const double t1 = thread_cpu_ns();
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(in.size()));
    if (target_ns <= 0) return;
    const double ns = (t1 - t0) / static_cast<double>(state.iterations());
    state.counters["target_ns"] = target_ns;
    state.counters["ratio"] = ns / target_ns;
}

std::string v2_inet() {
    SourceInfo info;
    info.client = ep("203.0.113.7", 51234);
    info.server = ep("198.51.100.25", 25);
    return encode_v2(info);
}

SourceInfo tls_info() {
    SourceInfo info;
    info.client = ep("2001:db8::7", 51234);
    info.server = ep("2001:db8::25", 465);
    info.tls.version = "TLSv1.3";
    info.tls.cipher = "TLS_AES_256_GCM_SHA384";
    info.tls.peer_subject = "CN=client.example.net";
    info.helo = "mail.example.net";
    info.login = "alice@example.net";
    info.session_id = "4Q9ZbX1mK2z";
    return info;
}

// ALPN + AUTHORITY + UNIQUE_ID + SSL (version, cipher, CN) + CRC32C.
std::string v2_tlvs() {
    EncodeOptions opt;
    opt.alpn = "smtp";
    opt.authority = "mx.example.net";
    opt.unique_id = "0123456789abcdef0123456789abcdef";
    opt.ssl = true;
    opt.crc32c = true;
    return encode_v2(tls_info(), opt);
}

EncodeOptions hmac_options() {
    EncodeOptions opt;
    opt.ssl = true;
    opt.xproxy_tlvs = true;
    opt.crc32c = true;
    opt.hmac_key = "0123456789abcdef0123456789abcdef";
    opt.hmac_key_id = 1;
    opt.hmac_time = 1790000000;
    return opt;
}

void BM_V2DecodeInet(benchmark::State& state) { decode_loop(state, v2_inet(), 15); }
void BM_V2DecodeInetDirect(benchmark::State& state) { decode_loop(state, v2_inet(), 15, &decode_v2); }
void BM_V2DecodeInet6(benchmark::State& state) {
    SourceInfo info;
    info.client = ep("2001:db8::7", 51234);
    info.server = ep("2001:db8::25", 25);
    decode_loop(state, encode_v2(info), 15);
}
// What HAProxy sends with `send-proxy-v2-ssl-cn` and `proxy-v2-options crc32c`:
// addresses, SSL and the other TLVs above, CRC32C.
void BM_V2DecodeTlvsCrc32c(benchmark::State& state) { decode_loop(state, v2_tlvs(), 15); }
// The floor of the header above: what any decoder must do with its bytes, the CRC32C over
// all 182 of them and one pass over the TLVs, without any check. Reference, no target.
void BM_V2TlvsFloor(benchmark::State& state) {
    const std::string in = v2_tlvs();
    const std::size_t tlv_off = 16 + 36;  // fixed part + INET6 addresses
    const auto* p = u8(in);
    for (auto _ : state) {
        benchmark::DoNotOptimize(p);
        std::uint32_t crc = crc32c_hardware_available() ? crc32c_hardware(p, in.size(), 0)
                                                        : crc32c_portable(p, in.size(), 0);
        unsigned n = 0;
        for_each_tlv(std::span<const std::uint8_t>(p + tlv_off, in.size() - tlv_off), [&](const TlvView&) { ++n; });
        benchmark::DoNotOptimize(crc);
        benchmark::DoNotOptimize(n);
    }
}
// Addresses and CRC32C only.
void BM_V2DecodeInetCrc32c(benchmark::State& state) {
    EncodeOptions opt;
    opt.crc32c = true;
    SourceInfo info;
    info.client = ep("203.0.113.7", 51234);
    info.server = ep("198.51.100.25", 25);
    decode_loop(state, encode_v2(info, opt), 15);
}
void BM_V1DecodeTcp4(benchmark::State& state) {
    decode_loop(state, "PROXY TCP4 203.0.113.7 198.51.100.25 51234 25\r\n", 60);
}
void BM_V1DecodeTcp4Longest(benchmark::State& state) {
    decode_loop(state, "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 60);
}
void BM_V1DecodeTcp6(benchmark::State& state) {
    decode_loop(state, "PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::25 51234 25\r\n", 60);
}
// The longest TCP6 line of eight 4-digit groups (104 bytes with the CRLF), and a line of
// the maximal 107 bytes, with an IPv4 tail.
void BM_V1DecodeTcp6Longest(benchmark::State& state) {
    decode_loop(state,
                "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                "65535 65535\r\n",
                60);
}
void BM_V1DecodeTcp6Max107(benchmark::State& state) {
    decode_loop(state,
                "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ffff:ffff:ffff:ffff:ffff:ffff:ffff:f "
                "65535 65535\r\n",
                60);
}

void BM_V2VerifyHmac(benchmark::State& state) {
    const std::string in = encode_v2(tls_info(), hmac_options());
    Header h;
    const DecodeResult r = decode(u8(in), in.size(), h);
    const HmacCheck check{"0123456789abcdef0123456789abcdef", 1790000000};
    for (auto _ : state) benchmark::DoNotOptimize(verify_hmac(u8(in), r.consumed, h, check));
}

void BM_V2EncodeHmacCrc(benchmark::State& state) {
    const SourceInfo info = tls_info();
    const EncodeOptions opt = hmac_options();
    for (auto _ : state) benchmark::DoNotOptimize(encode_v2(info, opt));
}

void BM_V1Encode(benchmark::State& state) {
    const auto src = ep("203.0.113.7", 51234), dst = ep("198.51.100.25", 25);
    for (auto _ : state) benchmark::DoNotOptimize(encode_v1(src, dst));
}

template <std::uint32_t (*Fn)(const std::uint8_t*, std::size_t, std::uint32_t)>
void BM_Crc32c(benchmark::State& state) {
    if (Fn == &crc32c_hardware && !crc32c_hardware_available()) {
        state.SkipWithError("no SSE4.2");
        return;
    }
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(state.range(0)));
    for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::uint8_t>(i * 131);
    for (auto _ : state) {
        benchmark::DoNotOptimize(buf.data());
        benchmark::DoNotOptimize(Fn(buf.data(), buf.size(), 0));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

}  // namespace

BENCHMARK(BM_V2DecodeInet);
BENCHMARK(BM_V2DecodeInetDirect);
BENCHMARK(BM_V2DecodeInet6);
BENCHMARK(BM_V2DecodeTlvsCrc32c);
BENCHMARK(BM_V2TlvsFloor);
BENCHMARK(BM_V2DecodeInetCrc32c);
BENCHMARK(BM_V1DecodeTcp4);
BENCHMARK(BM_V1DecodeTcp4Longest);
BENCHMARK(BM_V1DecodeTcp6);
BENCHMARK(BM_V1DecodeTcp6Longest);
BENCHMARK(BM_V1DecodeTcp6Max107);
BENCHMARK(BM_V2VerifyHmac);
BENCHMARK(BM_V2EncodeHmacCrc);
BENCHMARK(BM_V1Encode);
BENCHMARK(BM_Crc32c<crc32c_hardware>)->Arg(64)->Arg(1500)->Arg(65536);
BENCHMARK(BM_Crc32c<crc32c_portable>)->Arg(64)->Arg(1500)->Arg(65536);
