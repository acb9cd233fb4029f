// option_origins.hpp: where the config file set each option ("FILE:LINE"), so that a
// check made after the options were read can name the line at fault.
//
//   origins.locate("mode", "--mode must be inject or verify")
//     -> "/etc/xproxy/milter.conf:2: --mode must be inject or verify"   (set in the file)
//     -> "--mode must be inject or verify"                               (command line)
// Only the values in force are recorded: a file line the command line overrode is not.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xproxy::daemon {

class OptionOrigins {
public:
    // Option `name` was set to `value` by the line at `where` ("FILE:LINE").
    void add(std::string name, std::string value, std::string where);

    // "FILE:LINE" of the line that set option `name`, or "" when no line did. With a
    // value: the line whose value is `value` or names it as one of its comma-separated
    // items ("policy = inject,vdomains"), "" when none does (it came from the command
    // line); without: the first line that set the option.
    std::string where(std::string_view name, std::string_view value = {}) const;

    // message, prefixed with "FILE:LINE: " when where(name, value) knows the line.
    std::string locate(std::string_view name, const std::string& message, std::string_view value = {}) const;

    bool empty() const { return entries_.empty(); }

private:
    struct Entry {
        std::string name, value, where;
    };
    std::vector<Entry> entries_;
};

}  // namespace xproxy::daemon
