// wire_command.hpp: subcommands of xproxy-wire register themselves here, one file per
// wire format (wire_proxy.cpp, wire_smtp.cpp, wire_trace.cpp, wire_policy.cpp).
#pragma once

#include <string_view>
#include <vector>

namespace xproxy::wire {

// Runs one subcommand: args are the arguments after the subcommand name. Returns the
// process exit status (0 ok, 1 input rejected / verification failed, 2 usage error).
using CommandFn = int (*)(const std::vector<std::string_view>& args);

struct Command {
    std::string_view name;
    std::string_view usage;  // one line: "NAME [options] - what it does"
    CommandFn fn;
};

std::vector<Command>& registry();

struct Registrar {
    explicit Registrar(Command c) { registry().push_back(c); }
};

}  // namespace xproxy::wire
