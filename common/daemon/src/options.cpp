// options.cpp: the daemons' shared command-line handling.
#include <xproxy/daemon/options.hpp>

#include <unistd.h>

#include <iostream>
#include <sstream>
#include <stdexcept>

#include <xproxy/base/file_loader.hpp>

namespace po = boost::program_options;

namespace xproxy::daemon {

std::vector<std::string> arguments(int argc, char** argv) {
    return argc > 1 ? std::vector<std::string>(argv + 1, argv + argc) : std::vector<std::string>{};
}

bool load_options(const std::vector<std::string>& args, const po::options_description& desc, po::variables_map& vm,
                  const char* program, const char* usage, const char* version, int& exit_code, std::string* error,
                  bool quiet) {
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
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
        if (vm.count("config")) {
            auto path = vm["config"].as<std::string>();
            auto text = load_text_file(path, kConfigFileRules);
            if (!text) throw std::runtime_error("cannot read config file " + path);
            std::istringstream in(std::move(*text));
            po::store(po::parse_config_file(in, desc), vm);
        }
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
