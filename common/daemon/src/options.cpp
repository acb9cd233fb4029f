// options.cpp: the daemons' shared command-line and config file handling.
#include <xproxy/daemon/options.hpp>

#include <unistd.h>

#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/text.hpp>

namespace po = boost::program_options;

namespace xproxy::daemon {

std::vector<std::string> arguments(int argc, char** argv) {
    return argc > 1 ? std::vector<std::string>(argv + 1, argv + argc) : std::vector<std::string>{};
}

namespace {

// A line of the config file as Boost.Program_options sees it: "#" to the end removed,
// white space around trimmed.
std::string_view bare_line(std::string_view line) { return trim(line.substr(0, line.find('#')), " \t\r\n"); }

// The file's bytes (a line, a name, a value Boost quotes) are escaped: the message reaches
// stderr and the log.
[[noreturn]] void fail_at(const std::string& where, const std::string& what) {
    throw std::runtime_error(escape(where + ": " + what, 0));
}

std::string invalid_line(std::string_view bare) {
    return "invalid line '" + std::string(bare) + "' (want: name = value)";
}

// The options the command line set for good: the file's values for them are ignored, as
// po::store() does (the first value stored wins, except for composing options).
std::set<std::string> final_options(const po::parsed_options& command_line, const po::options_description& desc) {
    std::set<std::string> out;
    for (const auto& opt : command_line.options) {
        if (opt.string_key.empty() || opt.unregistered) continue;
        const auto* d = desc.find_nothrow(opt.string_key, false, false, false);
        if (d && !d->semantic()->is_composing()) out.insert(opt.string_key);
    }
    return out;
}

// The config file read as parse_config_file() reads it ("name = value", "[section]"
// prefixes the names after it), one line at a time so that every error names its line:
// the syntax, the name, and each value converted as po::store() will convert it (a second
// value of a single-valued option included). Then stored into vm in one go, as before.
void store_config_file(const std::string& path, const po::options_description& desc,
                       const po::parsed_options& command_line, po::variables_map& vm, OptionOrigins* origins) {
    auto text = load_text_file(path, kConfigFileRules);
    if (!text) throw std::runtime_error("cannot read config file " + path);
    const auto finals = final_options(command_line, desc);
    po::parsed_options all(&desc);
    std::map<std::string, boost::any> values;        // per option: its file values, converted
    std::map<std::string, std::size_t> first_lines;  // per option: the line of its first value
    std::string section;
    std::istringstream in(std::move(*text));
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        const std::string where = path + ":" + std::to_string(number);
        const auto bare = bare_line(line);
        if (bare.empty()) continue;
        if (bare.front() == '[' && bare.back() == ']') {
            section = bare;
            continue;
        }
        po::parsed_options parsed(&desc);
        try {
            std::istringstream one(section + "\n" + line);
            parsed = po::parse_config_file(one, desc);
        } catch (const po::unknown_option& e) {
            if (e.get_option_name().empty()) fail_at(where, invalid_line(bare));  // "= value"
            fail_at(where, "unknown option '" + e.get_option_name() + "'");
        } catch (const po::invalid_syntax&) {
            fail_at(where, invalid_line(bare));
        }
        for (auto& opt : parsed.options) {
            const std::string name = opt.string_key;
            if (finals.count(name)) continue;  // the command line's value stays
            const auto& semantic = *desc.find(name, false, false, false).semantic();
            try {
                semantic.parse(values[name], opt.value, false);
            } catch (const po::multiple_occurrences&) {
                fail_at(where, "option '" + name + "' cannot be specified more than once (first on line " +
                                   std::to_string(first_lines[name]) + ")");
            } catch (po::error_with_option_name& e) {
                e.add_context(name, opt.original_tokens.empty() ? name : opt.original_tokens.front(), 0);
                fail_at(where, e.what());
            }
            first_lines.emplace(name, number);
            if (origins) origins->add(name, opt.value.empty() ? std::string() : opt.value.front(), where);
            all.options.push_back(std::move(opt));
        }
    }
    try {
        po::store(all, vm);
    } catch (const std::exception& e) {  // not expected: every value was converted above
        fail_at(path, e.what());
    }
}

}  // namespace

bool load_options(const std::vector<std::string>& args, const po::options_description& desc, po::variables_map& vm,
                  const char* program, const char* usage, const char* version, int& exit_code, std::string* error,
                  bool quiet, OptionOrigins* origins) {
    try {
        const auto command_line = po::command_line_parser(args).options(desc).run();
        po::store(command_line, vm);
        if (vm.count("help")) {
            if (!quiet) std::cout << "usage: " << program << " " << usage << "\n" << desc << "\n";
            exit_code = 0;
            return false;
        }
        if (vm.count("version")) {
            if (!quiet) std::cout << program << " " << version << "\n";
            exit_code = 0;
            return false;
        }
        if (vm.count("config")) store_config_file(vm["config"].as<std::string>(), desc, command_line, vm, origins);
        po::notify(vm);
    } catch (const std::exception& e) {
        if (error) *error = e.what();
        if (!quiet) std::cerr << program << ": " << e.what() << "\n";
        exit_code = 2;
        return false;
    }
    return true;
}

std::vector<std::string> split_commas(const std::vector<std::string>& values) {
    std::vector<std::string> out;
    for (const auto& v : values) {
        std::size_t start = 0;
        for (;;) {
            auto comma = v.find(',', start);
            auto item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!item.empty()) out.push_back(item);
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    return out;
}

std::string host_name() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return host;
}

bool parse_log_options(const std::string& sink_text, const std::string& level_text, log::Sink& sink, log::Level& level,
                       const char* program) {
    if (log::parse_sink(sink_text, sink) && log::parse_level(level_text, level)) return true;
    std::cerr << program << ": --log must be syslog, stderr or off; --log-level error|warning|info|debug\n";
    return false;
}

}  // namespace xproxy::daemon
