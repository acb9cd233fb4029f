// receipt.hpp: the deposit receipt (doc/wire-formats.md, "Deposit receipt"): a compact
// JWS a server signs over what it accepted, that anyone holding the server's public key
// can check against the message.
//
//   header  {"alg":"EdDSA"|"ES256","kid":KID,"typ":"xproxy-receipt+jws"}
//   payload {"typ":"xproxy-receipt","iss":SERVER,"iat":SECONDS,"sha256":B64URL,
//            "rcpt":[ADDRESS,...],"queue_id":ID}
//
// Promises: sign_receipt() writes exactly that (members in that order); verify_receipt()
// accepts only that header type and payload type (a receipt is never a login token and a
// token is never a receipt), checks the signature with the one given key (jws.hpp), then
// that every member is present with its type (sha256 decoding to 32 bytes, at least one
// recipient) and that sha256 is the message's digest (wrong_message otherwise). A receipt
// longer than kMaxReceiptBytes is refused unread. Never throws on bad input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/jose/public_key.hpp>
#include <xproxy/jose/refusal.hpp>
#include <xproxy/jose/signing_key.hpp>

namespace xproxy::jose {

inline constexpr std::size_t kMaxReceiptBytes = std::size_t{1} << 20;
inline constexpr std::string_view kReceiptHeaderType = "xproxy-receipt+jws";
inline constexpr std::string_view kReceiptType = "xproxy-receipt";

struct Receipt {
    std::string issuer;                   // "iss": the server's name
    std::int64_t issued_at = 0;           // "iat": seconds since the epoch
    std::string sha256;                   // the 32 bytes of the message's SHA-256
    std::vector<std::string> recipients;  // "rcpt": the accepted recipients
    std::string queue_id;                 // the MTA's queue id
};

struct VerifiedReceipt {
    Receipt receipt;
    std::string kid;
    Alg alg = Alg::eddsa;
};

// The SHA-256 of `bytes` (32 bytes).
std::string sha256(std::string_view bytes);

// The payload JSON of `r`; a Failure when a string is not UTF-8 or the digest not 32 bytes.
Expected<std::string> receipt_payload(const Receipt& r);
Expected<std::string> sign_receipt(const SigningKey& key, const Receipt& r);
// `message_sha256`: the 32-byte digest of the message the receipt is said to cover.
Expected<VerifiedReceipt> verify_receipt(std::string_view token, const PublicKey& key, std::string_view message_sha256,
                                         Refusal* why = nullptr);

}  // namespace xproxy::jose
