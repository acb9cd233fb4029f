// json_input.cpp: see json_input.hpp.
#include "json_input.hpp"

#include <cmath>
#include <set>
#include <string>
#include <vector>

namespace xproxy::jose::detail {

std::optional<nlohmann::json> parse_json_object(std::string_view text, int max_depth) {
    using nlohmann::json;
    std::vector<std::set<std::string>> names;  // member names of each open object
    std::vector<bool> is_object;               // each open container
    bool refused = false;
    json::parser_callback_t check = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                if (static_cast<int>(is_object.size()) >= max_depth) refused = true;
                is_object.push_back(event == json::parse_event_t::object_start);
                if (is_object.back()) names.emplace_back();
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                if (!is_object.empty()) {
                    if (is_object.back() && !names.empty()) names.pop_back();
                    is_object.pop_back();
                }
                break;
            case json::parse_event_t::key:
                if (!names.empty() && parsed.is_string() &&
                    !names.back().insert(parsed.get_ref<const std::string&>()).second)
                    refused = true;
                break;
            case json::parse_event_t::value: break;
        }
        return !refused;  // once refused, keep nothing more
    };
    json j = json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
    if (refused || j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

const std::string* string_member(const nlohmann::json& obj, const char* name) {
    auto it = obj.find(name);
    if (it == obj.end() || !it->is_string()) return nullptr;
    return &it->get_ref<const std::string&>();
}

std::optional<std::int64_t> numeric_date(const nlohmann::json& v) {
    constexpr std::int64_t kLimit = std::int64_t{1} << 53;
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(kLimit)) return std::nullopt;
        return static_cast<std::int64_t>(u);
    }
    if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (i > kLimit || i < -kLimit) return std::nullopt;
        return i;
    }
    if (v.is_number_float()) {
        const double d = std::floor(v.get<double>());
        if (!std::isfinite(d) || d > static_cast<double>(kLimit) || d < -static_cast<double>(kLimit))
            return std::nullopt;
        return static_cast<std::int64_t>(d);
    }
    return std::nullopt;
}

}  // namespace xproxy::jose::detail
