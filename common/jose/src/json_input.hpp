// json_input.hpp: the one reader of untrusted JSON in the JOSE layer (token headers and
// payloads, JWK sets, discovery documents, receipts), on nlohmann-json's non-throwing
// parser.
//
// Promises: never throws; accepts only a top-level object; refuses a member name that
// appears twice in one object (two parsers of the same token must never see different
// claims), nesting deeper than max_depth, and invalid UTF-8 (nlohmann's own check). The
// caller bounds the size of the text before calling.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace xproxy::jose::detail {

std::optional<nlohmann::json> parse_json_object(std::string_view text, int max_depth = 8);

// A string member of `obj`: nullptr when absent or not a string.
const std::string* string_member(const nlohmann::json& obj, const char* name);

// A NumericDate (RFC 7519 section 2): an integer, or a finite number (truncated toward
// negative infinity), within +-2^53. nullopt otherwise.
std::optional<std::int64_t> numeric_date(const nlohmann::json& v);

}  // namespace xproxy::jose::detail
