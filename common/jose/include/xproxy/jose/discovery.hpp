// discovery.hpp: an OpenID Connect discovery document (OpenID Connect Discovery 1.0
// section 3, ".well-known/openid-configuration") reduced to what the deposit daemon
// needs: the issuer and where its JWK set is.
//
// Promises: pure (the daemon fetches the document); refuses a document larger than
// kMaxDiscoveryBytes, one that is not a strict JSON object, whose "issuer" is not exactly
// the configured issuer (section 4.3: a document may not speak for another issuer), or
// whose "jwks_uri" is not an https:// URL of printable ASCII without spaces. Never throws.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <xproxy/base/result.hpp>

namespace xproxy::jose {

inline constexpr std::size_t kMaxDiscoveryBytes = std::size_t{256} << 10;

struct Discovery {
    std::string issuer;
    std::string jwks_uri;
};

Expected<Discovery> parse_discovery(std::string_view json, std::string_view expected_issuer);

}  // namespace xproxy::jose
