// fuzz_jwks: the JSON documents of an identity provider (a JWK set, a discovery document):
// parsing never crashes nor throws; a set that parses has 1 to kMaxJwksKeys usable keys,
// no kid twice, and skipped() accounts for every other entry.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <xproxy/jose/discovery.hpp>
#include <xproxy/jose/jwks.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace xproxy::jose;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    if (auto set = Jwks::parse(in)) {
        const auto& keys = set->keys();
        if (keys.empty() || keys.size() + set->skipped().size() > kMaxJwksKeys) __builtin_trap();
        std::set<std::string> kids;
        for (const auto& k : keys)
            if (!k.kid.empty() && !kids.insert(k.kid).second) __builtin_trap();
        for (const auto& k : keys)
            if (!k.kid.empty() && set->find(k.kid) != &k) __builtin_trap();
    }
    if (auto d = parse_discovery(in, "https://idp.test")) {
        if (d->issuer != "https://idp.test" || d->jwks_uri.rfind("https://", 0) != 0) __builtin_trap();
    }
    return 0;
}
