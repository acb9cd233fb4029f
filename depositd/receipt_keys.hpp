// receipt_keys.hpp: the JWK Set a client fetches to check receipts (GET
// /.well-known/dmail/receipt-keys; doc/deposit.md): the public half of the receipt key,
// {"keys":[{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}]} or
// {"kty":"EC","crv":"P-256","x":...,"y":...,"kid":...,"alg":"ES256","use":"sig"}.
//
// Promises: never a private member; a Failure (never a partial set) when OpenSSL cannot
// export the key; jose::Jwks::parse() reads the result back to the same key.
#pragma once

#include <string>

#include <xproxy/base/result.hpp>
#include <xproxy/jose/signing_key.hpp>

namespace xproxy::depositd {

Expected<std::string> receipt_jwk_set(const jose::SigningKey& key);

}  // namespace xproxy::depositd
