// option_origins.cpp: the config file lines behind the options; see option_origins.hpp.
#include <xproxy/daemon/option_origins.hpp>

#include <xproxy/base/escape.hpp>

#include <utility>

namespace xproxy::daemon {
namespace {

// value is `item` or has it between commas.
bool names_item(std::string_view value, std::string_view item) {
    if (value == item) return true;
    for (std::size_t start = 0;;) {
        const auto comma = value.find(',', start);
        if (value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start) == item)
            return true;
        if (comma == std::string_view::npos) return false;
        start = comma + 1;
    }
}

}  // namespace

void OptionOrigins::add(std::string name, std::string value, std::string where) {
    entries_.push_back({std::move(name), std::move(value), std::move(where)});
}

std::string OptionOrigins::where(std::string_view name, std::string_view value) const {
    for (const auto& e : entries_)
        if (e.name == name && (value.empty() || names_item(e.value, value))) return e.where;
    return {};
}

std::string OptionOrigins::locate(std::string_view name, const std::string& message, std::string_view value) const {
    auto at = where(name, value);
    // A value from the file reaches stderr and the log escaped, as load_options()'s own
    // errors do.
    return at.empty() ? message : escape(at + ": " + message, 0);
}

}  // namespace xproxy::daemon
