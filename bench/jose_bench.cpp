// jose_bench: what verifying a client's token costs the deposit daemon per request.
//
// BM_Verify/ALG is the signature check alone (PublicKey::verify on the fixture token's
// signing input: OpenSSL's EVP, the floor); BM_Validate/ALG is all the daemon does per
// request (size checks, base64url, header JSON, key choice by kid, signature, claims
// JSON, iss/aud/exp/nbf/email_verified) on the PyJWT fixture tokens of tests/unit/jose.
// Each BM_Validate measures the signature check alone in the same run first and reports
// verify_ns and ratio = validate / verify (the cost of everything but the signature),
// both in CPU time of the thread (the machine may be busy; report the CPU column).
// BM_ParseJwks is the JWK set of three keys (done once per refresh, not per request).
#include <benchmark/benchmark.h>

#include <time.h>

#include <fstream>
#include <iterator>
#include <string>

#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/jwt.hpp>

using namespace xproxy::jose;

namespace {

// CPU time of this thread, in ns: the ratio holds on a loaded machine too.
double cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

constexpr std::int64_t kNow = 1800000010;  // the fixtures' time (tests/unit/jose/jose_fixtures.hpp)

std::string fixture(const std::string& name) {
    std::ifstream in(std::string(XPROXY_SOURCE_DIR) + "/tests/unit/jose/fixtures/" + name, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

const Jwks& keys() {
    static const Jwks k = *Jwks::parse(fixture("jwks.json"));
    return k;
}

const char* kFiles[] = {"rs256.jwt", "es256.jwt", "eddsa.jwt"};
const char* kKids[] = {"rsa", "ec", "ed"};

struct Split {
    std::string input;
    std::string signature;
};
Split split(const std::string& token) {
    const auto d2 = token.rfind('.');
    return {token.substr(0, d2), *base64url_decode(token.substr(d2 + 1))};
}

void BM_Verify(benchmark::State& state) {
    const auto i = static_cast<std::size_t>(state.range(0));
    const auto s = split(fixture(kFiles[i]));
    const PublicKey& key = keys().find(kKids[i])->key;
    for (auto _ : state) benchmark::DoNotOptimize(key.verify(s.input, s.signature));
    state.SetLabel(std::string(alg_name(key.alg())));
}
BENCHMARK(BM_Verify)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

void BM_Validate(benchmark::State& state) {
    const auto i = static_cast<std::size_t>(state.range(0));
    const std::string token = fixture(kFiles[i]);
    const auto s = split(token);
    const PublicKey& key = keys().find(kKids[i])->key;
    JwtPolicy policy;
    policy.issuer = "https://idp.test";
    policy.audience = "xproxy";
    constexpr int kReference = 300;
    const double r0 = cpu_ns();
    for (int n = 0; n < kReference; ++n) benchmark::DoNotOptimize(key.verify(s.input, s.signature));
    const double verify_ns = (cpu_ns() - r0) / kReference;
    const double t0 = cpu_ns();
    bool ok = true;
    for (auto _ : state) {
        auto id = validate_jwt(token, keys(), policy, kNow);
        ok = ok && id.has_value();
        benchmark::DoNotOptimize(id);
    }
    const double ns = (cpu_ns() - t0) / static_cast<double>(state.iterations());
    if (!ok) state.SkipWithError("a fixture token was refused");
    state.counters["verify_ns"] = verify_ns;
    state.counters["ratio"] = ns / verify_ns;
    state.SetLabel(std::string(alg_name(key.alg())));
}
BENCHMARK(BM_Validate)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

void BM_ParseJwks(benchmark::State& state) {
    const std::string text = fixture("jwks.json");
    for (auto _ : state) benchmark::DoNotOptimize(Jwks::parse(text));
}
BENCHMARK(BM_ParseJwks)->Unit(benchmark::kMicrosecond);

}  // namespace
