// receipt.cpp: see receipt.hpp.
#include <xproxy/jose/receipt.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/jws.hpp>

#include "json_input.hpp"
#include "openssl_util.hpp"

namespace xproxy::jose {

std::string sha256(std::string_view bytes) {
    std::string out(32, '\0');
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), reinterpret_cast<unsigned char*>(out.data()), &len, EVP_sha256(),
                   nullptr) != 1 ||
        len != 32)
        return {};
    return out;
}

Expected<std::string> receipt_payload(const Receipt& r) {
    if (r.sha256.size() != 32) return Failure{"the digest must be 32 bytes"};
    // nlohmann::ordered_json keeps the members in the documented order
    nlohmann::ordered_json p;
    p["typ"] = kReceiptType;
    p["iss"] = r.issuer;
    p["iat"] = r.issued_at;
    p["sha256"] = base64url_encode(r.sha256);
    p["rcpt"] = r.recipients;
    p["queue_id"] = r.queue_id;
    try {
        return p.dump();
    } catch (const nlohmann::json::exception&) {
        return Failure{"a receipt string is not UTF-8"};
    }
}

Expected<std::string> sign_receipt(const SigningKey& key, const Receipt& r) {
    auto payload = receipt_payload(r);
    if (!payload) return Failure{payload.error()};
    return sign_jws(key, kReceiptHeaderType, *payload);
}

Expected<VerifiedReceipt> verify_receipt(std::string_view token, const PublicKey& key, std::string_view message_sha256,
                                         Refusal* why) {
    auto jws = verify_jws(token, key, kMaxReceiptBytes, why);
    if (!jws) return Failure{jws.error()};
    const std::string* typ = detail::string_member(jws->header, "typ");
    if (typ == nullptr || *typ != kReceiptHeaderType)
        return refuse(Refusal::malformed, "header typ is not xproxy-receipt+jws", why);
    auto p = detail::parse_json_object(jws->payload, 4);
    if (!p) return refuse(Refusal::malformed, "payload is not a JSON object", why);
    const std::string* ptyp = detail::string_member(*p, "typ");
    const std::string* iss = detail::string_member(*p, "iss");
    const std::string* digest = detail::string_member(*p, "sha256");
    const std::string* queue_id = detail::string_member(*p, "queue_id");
    auto iat = p->find("iat");
    auto rcpt = p->find("rcpt");
    if (ptyp == nullptr || *ptyp != kReceiptType || iss == nullptr || digest == nullptr || queue_id == nullptr ||
        iat == p->end() || !iat->is_number_integer() || rcpt == p->end() || !rcpt->is_array() || rcpt->empty())
        return refuse(Refusal::malformed, "payload is not a receipt (typ, iss, iat, sha256, rcpt, queue_id)", why);
    VerifiedReceipt out;
    for (const auto& a : *rcpt) {
        if (!a.is_string()) return refuse(Refusal::malformed, "a recipient is not a string", why);
        out.receipt.recipients.push_back(a.get<std::string>());
    }
    auto d = base64url_decode(*digest);
    if (!d || d->size() != 32) return refuse(Refusal::malformed, "sha256 is not 32 bytes of base64url", why);
    if (message_sha256.size() != 32 || CRYPTO_memcmp(d->data(), message_sha256.data(), 32) != 0)
        return refuse(Refusal::wrong_message, "the message's SHA-256 is not the one the receipt names", why);
    out.receipt.issuer = *iss;
    out.receipt.issued_at = iat->get<std::int64_t>();
    out.receipt.sha256 = std::move(*d);
    out.receipt.queue_id = *queue_id;
    out.kid = jws->kid;
    out.alg = jws->alg;
    return out;
}

}  // namespace xproxy::jose
