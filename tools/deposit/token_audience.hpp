// token_audience.hpp: the bearer token bound to the endpoint it is sent to (doc/deposit.md
// "Tokens"). A token goes only to a server its "aud" names, so a server the recipient's
// domain chose (SRV) cannot capture a token it could replay at another deposit service.
//
// Promises: token_audiences reads the payload of a compact JWT (three base64url parts, at
// most jose::kMaxTokenBytes) without checking its signature (the client holds no key and
// needs none: the check protects the token's holder) and returns its "aud", a string or a
// non-empty array of strings; any other shape is a failure that says what is wrong and
// never quotes the token. audience_names_endpoint is true only for an https URL without
// user info whose host equals the endpoint's (ASCII case ignored, a final dot dropped) and
// whose port (443 when absent) equals the endpoint's; the audience's path is not compared.
// Never throws on bad input.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/daemon/https_url.hpp>

namespace xproxy::deposit {

Expected<std::vector<std::string>> token_audiences(std::string_view token);

// The audience a token for this endpoint needs: "https://HOST" (port 443) or "https://HOST:PORT".
std::string endpoint_audience(const http::HttpsUrl& endpoint);

bool audience_names_endpoint(std::string_view audience, const http::HttpsUrl& endpoint);

}  // namespace xproxy::deposit
