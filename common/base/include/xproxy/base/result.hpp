// result.hpp: the two result shapes of xproxy (CODING.md, rule 2).
//
// 1. DecodeResult: every incremental decoder (bytes arrive in pieces).
// 2. Expected<T>: every whole-input parser, loader and check (a configuration word, a
//    file, a command line): a T, or a message that says why not, meant for the
//    administrator (it may quote the input, escaped). Expected<void> is a check.
//
// An incremental decoder is given the bytes received so far and answers exactly one of:
//   complete  - a whole message was decoded; `consumed` bytes belong to it and the
//               caller must consume exactly that many (never more: what follows is
//               application data);
//   need_more - every byte seen so far is a valid prefix; call again with more;
//   invalid   - the input can never become valid; `reason` says why (a static string,
//               safe to log). The caller stops processing that input.
// Decoders never throw, never read past `size` and never guess.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace xproxy {

enum class DecodeStatus { complete, need_more, invalid };

struct DecodeResult {
    DecodeStatus status = DecodeStatus::need_more;
    std::size_t consumed = 0;   // valid when status == complete
    std::string_view reason{};  // valid when status == invalid; static storage

    static constexpr DecodeResult done(std::size_t n) { return {DecodeStatus::complete, n, {}}; }
    static constexpr DecodeResult more() { return {DecodeStatus::need_more, 0, {}}; }
    static constexpr DecodeResult bad(std::string_view why) { return {DecodeStatus::invalid, 0, why}; }

    constexpr bool complete() const { return status == DecodeStatus::complete; }
    constexpr bool need_more() const { return status == DecodeStatus::need_more; }
    constexpr bool invalid() const { return status == DecodeStatus::invalid; }
};

// The error side of Expected<T>: `return Failure{"no such group: " + name};`
struct Failure {
    std::string message;
};

template <class T>
class [[nodiscard]] Expected {
public:
    Expected(T value) : value_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
    Expected(Failure f) : error_(std::move(f.message)) {}  // NOLINT(google-explicit-constructor)

    bool has_value() const { return value_.has_value(); }
    explicit operator bool() const { return has_value(); }
    T& value() & { return *value_; }
    const T& value() const& { return *value_; }
    T&& value() && { return std::move(*value_); }
    T& operator*() & { return *value_; }
    const T& operator*() const& { return *value_; }
    T&& operator*() && { return std::move(*value_); }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    const std::string& error() const { return error_; }

private:
    std::optional<T> value_;
    std::string error_;
};

template <>
class [[nodiscard]] Expected<void> {
public:
    Expected() = default;
    Expected(Failure f) : ok_(false), error_(std::move(f.message)) {}  // NOLINT(google-explicit-constructor)

    bool has_value() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const std::string& error() const { return error_; }

private:
    bool ok_ = true;
    std::string error_;
};

}  // namespace xproxy
