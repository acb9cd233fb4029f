// base64.hpp: standard base64 (RFC 4648 section 4), strict, written once for every reader
// of base64 on the wire or in a file (SASL responses, key ring secrets).
//
// Strict means: the alphabet A-Z a-z 0-9 + / only, '=' padding required (the length is a
// multiple of 4), at most two '=' and only at the end, no whitespace, no line breaks.
// The empty string is valid and decodes to nothing. The bits a final character carries
// beyond the data are not checked (OpenSSL's decoder ignores them too). Nothing here
// throws on bad input or reads past it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <xproxy/base/secret_bytes.hpp>

namespace xproxy {

// Whether `in` is strict base64 (the rules above).
bool base64_valid(std::string_view in);

// Decodes strict base64 into `out`, replacing (and wiping) what it held, in one
// allocation of `out` and no other copy. False (and `out` empty) when `in` is not strict
// base64.
bool base64_decode(std::string_view in, SecretBytes& out);
// The same for data that is not secret.
std::optional<std::string> base64_decode(std::string_view in);

// The length of the encoding of `size` bytes (with padding).
constexpr std::size_t base64_encoded_size(std::size_t size) { return (size + 2) / 3 * 4; }
// Writes the encoding of `data` to `out`, exactly base64_encoded_size(data.size()) bytes
// (no terminating NUL), and returns that length.
std::size_t base64_encode(std::string_view data, char* out);
std::string base64_encode(std::string_view data);

}  // namespace xproxy
