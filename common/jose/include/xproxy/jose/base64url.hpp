// base64url.hpp: the base64url encoding of JOSE (RFC 7515 section 2: RFC 4648 section 5
// without padding), strict.
//
// Promises: the decoder accepts exactly what the encoder produces: the alphabet A-Z a-z
// 0-9 - _ only, no '=' padding, no whitespace, no length of 1 modulo 4, and the bits a
// final character carries beyond the data must be zero (so every byte string has exactly
// one spelling and a signature cannot be varied without changing its bytes). Nothing here
// throws on bad input or reads past it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace xproxy::jose {

// The bytes `in` encodes, or nullopt when `in` is not canonical base64url.
std::optional<std::string> base64url_decode(std::string_view in);

std::string base64url_encode(std::string_view data);

}  // namespace xproxy::jose
