// xproxy-wire: encode, decode and verify every xproxy wire format from the command line:
// a tool for administrators (what did HAProxy send? does this header verify?) and the
// bridge the end-to-end tests use to put our codecs in front of real Postfix/HAProxy.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string_view>
#include <vector>

#include "wire_command.hpp"

namespace xproxy::wire {
std::vector<Command>& registry() {
    static std::vector<Command> commands;
    return commands;
}
}  // namespace xproxy::wire

static void usage(std::FILE* out) {
    std::fprintf(out, "usage: xproxy-wire COMMAND [ARGS...]\ncommands:\n");
    auto cmds = xproxy::wire::registry();
    std::sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    for (const auto& c : cmds) std::fprintf(out, "  %.*s\n", static_cast<int>(c.usage.size()), c.usage.data());
}

int main(int argc, char** argv) {
    if (argc < 2 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    std::string_view name = argv[1];
    std::vector<std::string_view> args(argv + 2, argv + argc);
    for (const auto& c : xproxy::wire::registry()) {
        if (c.name != name) continue;
        try {
            return c.fn(args);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "xproxy-wire: %s: %s\n", argv[1], e.what());
            return 2;
        }
    }
    std::fprintf(stderr, "xproxy-wire: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
