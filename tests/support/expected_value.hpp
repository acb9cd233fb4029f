// expected_value.hpp: for unit tests written against parsers that return Expected<T>.
// value_or_error() gives the value, or nullopt with the message in `error`, so that
// table-driven rows can assert on the message after the call.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include <xproxy/base/result.hpp>

namespace xproxy::test {

template <class T>
std::optional<T> value_or_error(Expected<T> e, std::string& error) {
    if (!e) {
        error = e.error();
        return std::nullopt;
    }
    return std::move(*e);
}

}  // namespace xproxy::test
