// options.hpp: what the daemons' command lines have in common (Boost.Program_options).
#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/option_origins.hpp>

namespace xproxy::daemon {

// The words after the program name.
std::vector<std::string> arguments(int argc, char** argv);

// Reads args into vm, then the file named by --config ("name = value" lines, "#" starts a
// comment; the command line wins, repeatable options add up), then runs notify(). --help
// prints "usage: PROGRAM USAGE" and the option list, --version "PROGRAM VERSION". Returns
// false when the program is to exit with exit_code: 0 after --help or --version, 2 after
// an error, which is printed as "PROGRAM: what" and stored in *error. quiet prints nothing
// (reloads). An error of the file names its line: "FILE:LINE: unknown option 'x'",
// "FILE:LINE: invalid line 'x' (want: name = value)", "FILE:LINE: the argument ('x') for
// option 'timeout' is invalid", "FILE:LINE: option 'mode' cannot be specified more than
// once (first on line N)". *origins gets the line of every option the file set.
bool load_options(const std::vector<std::string>& args, const boost::program_options::options_description& desc,
                  boost::program_options::variables_map& vm, const char* program, const char* usage,
                  const char* version, int& exit_code, std::string* error = nullptr, bool quiet = false,
                  OptionOrigins* origins = nullptr);

// "a,b" and repeated options alike: every non-empty comma-separated item, in order.
std::vector<std::string> split_commas(const std::vector<std::string>& values);

// This machine's host name (the default for names in greetings and signatures).
std::string host_name();

// --log and --log-level; on an error prints "PROGRAM: --log must be ..." and returns false.
bool parse_log_options(const std::string& sink_text, const std::string& level_text, log::Sink& sink, log::Level& level,
                       const char* program);

}  // namespace xproxy::daemon
