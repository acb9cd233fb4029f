// fuzz_jwt: a token (or a deposit receipt) against a fixed JWK set and public key: never
// crashes, every refusal carries its reason, and nothing is accepted unless a key of the
// set verified it (the fixed "now" is the unit tests' fixture time).
#include <cstdint>
#include <string>
#include <string_view>

#include <xproxy/jose/jws.hpp>
#include <xproxy/jose/jwt.hpp>
#include <xproxy/jose/receipt.hpp>

namespace {

// tests/unit/jose/fixtures/jwks.json and ed.pub (public test keys)
constexpr std::string_view kJwks =
    R"json({"keys":[{"kty":"RSA","key_ops":["verify"],"n":"prCVIscRpW2OPlVec_rsz5P_4VJy0d0rs4VrbMQ6QAS6MXwBi7dW-ZrKzBRjETpfRN07_eJXTDc-7HYL4-Aog_er2yZVG2yr4pxLpFj8JZJYgJcVXeMRQ0iMYdBIGuOur5-jbPEpT4Z8-Jt5PrED9yoAxYLIvsbc8VPQxxZzakO5A1UfkTbnGeCVHL30WteaBazmnj_AwGkv_InY5c4uNBmdWT_7r-4WWG_yKCFWe3cmbT2XTHFuv_n3r5ZUW9dYAfoNjkSRXiUhumwwuyCUOMOvCcSTvbmmZ_vnl7mBYElkj87S_AKtShus4xxNgwXHH96AtI_kuGSuZHg4k-zCcQ","e":"AQAB","kid":"rsa","alg":"RS256","use":"sig"},{"kty":"EC","crv":"P-256","x":"bqBZFq_ZiMsxpTLCKdgMWtH2Bekdt0W9dmaed1WsPu4","y":"QzO42fd50m5RUjdIuKlx-HIuBVMDzTTTu8qcXgZyxbE","kid":"ec","alg":"ES256","use":"sig"},{"x":"lhlPAKmumEFnPagNUHOOT03UhlrtKEtfk3mRxpRkAxk","kty":"OKP","crv":"Ed25519","kid":"ed","alg":"EdDSA","use":"sig"}]})json";
constexpr std::string_view kEdPub = R"pem(-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAlhlPAKmumEFnPagNUHOOT03UhlrtKEtfk3mRxpRkAxk=
-----END PUBLIC KEY-----
)pem";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace xproxy::jose;
    static const Jwks keys = *Jwks::parse(kJwks);
    static const PublicKey ed = *PublicKey::from_pem(kEdPub);
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    JwtPolicy policy;
    policy.issuer = "https://idp.test";
    policy.audience = "xproxy";
    Refusal why = Refusal::wrong_message;  // never a reason of validate_jwt
    auto id = validate_jwt(in, keys, policy, 1800000010, &why);
    if (id) {
        if (id->identity.empty() || id->issuer != policy.issuer || in.size() > kMaxTokenBytes) __builtin_trap();
    } else if (why == Refusal::wrong_message || id.error().rfind(std::string(reason_name(why)) + ": ", 0) != 0) {
        __builtin_trap();
    }
    // a JWS that verifies with the set verifies with its key alone
    if (auto jws = verify_jws(in, keys); jws && jws->alg == Alg::eddsa && !verify_jws(in, ed)) __builtin_trap();
    const std::string digest = sha256("fuzz");
    if (auto r = verify_receipt(in, ed, digest); r && r->receipt.sha256 != digest) __builtin_trap();
    return 0;
}
