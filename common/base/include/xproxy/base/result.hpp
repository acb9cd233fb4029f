// result.hpp: the return convention of every incremental decoder in libxproxy.
//
// A decoder is given the bytes received so far and answers exactly one of:
//   complete  - a whole message was decoded; `consumed` bytes belong to it and the
//               caller must consume exactly that many (never more: what follows is
//               application data);
//   need_more - every byte seen so far is a valid prefix; call again with more;
//   invalid   - the input can never become valid; `reason` says why (a static string,
//               safe to log). The caller stops processing that input.
// Decoders never throw, never read past `size` and never guess.
#pragma once

#include <cstddef>
#include <string_view>

namespace xproxy {

enum class DecodeStatus { complete, need_more, invalid };

struct DecodeResult {
    DecodeStatus status = DecodeStatus::need_more;
    std::size_t consumed = 0;       // valid when status == complete
    std::string_view reason{};      // valid when status == invalid; static storage

    static constexpr DecodeResult done(std::size_t n) { return {DecodeStatus::complete, n, {}}; }
    static constexpr DecodeResult more() { return {DecodeStatus::need_more, 0, {}}; }
    static constexpr DecodeResult bad(std::string_view why) { return {DecodeStatus::invalid, 0, why}; }

    constexpr bool complete() const { return status == DecodeStatus::complete; }
    constexpr bool need_more() const { return status == DecodeStatus::need_more; }
    constexpr bool invalid() const { return status == DecodeStatus::invalid; }
};

}  // namespace xproxy
