// wire_policy.cpp: xproxy-wire policy-parse: Postfix policy requests on stdin ->
// every attribute of each request as name=value (values escaped, xproxy/escape.hpp):
// first the known attributes that were present, in Postfix's order, then the others in
// arrival order; "---" after each request. Exit 1 with error=REASON when the input
// breaks the protocol or a bound (--max-line, --max-request, --max-attributes), or ends
// inside a request; 2 on a usage error.
#include <charconv>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "wire_command.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/wire/policy_protocol.hpp>

namespace {

using namespace xproxy;

bool size_option(std::string_view v, std::size_t& out) {
    const auto n = parse_decimal<std::size_t>(v);
    if (n) out = *n;
    return n.has_value();
}

void print(const PolicyRequest& r) {
    for (std::size_t i = 0; i < PolicyRequest::kKnownCount; ++i)
        if (r.present(i))
            std::printf("%s=%s\n", std::string(PolicyRequest::known_names()[i]).c_str(), escape(r.field(i), 0).c_str());
    for (const auto& [k, v] : r.other) std::printf("%s=%s\n", escape(k, 0).c_str(), escape(v, 0).c_str());
    std::printf("---\n");
}

int policy_parse(const std::vector<std::string_view>& args) {
    PolicyLimits limits;
    for (std::size_t i = 0; i < args.size(); i += 2) {
        std::size_t* target = args[i] == "--max-line"         ? &limits.max_line
                              : args[i] == "--max-request"    ? &limits.max_request
                              : args[i] == "--max-attributes" ? &limits.max_attributes
                                                              : nullptr;
        if (!target || i + 1 >= args.size() || !size_option(args[i + 1], *target)) {
            std::fprintf(stderr, "usage: policy-parse [--max-line N] [--max-request N] [--max-attributes N]\n");
            return 2;
        }
    }
    PolicyRequestParser parser(limits);
    char buf[65536];
    bool ok = true;
    while (ok && std::cin) {
        std::cin.read(buf, sizeof buf);
        const auto n = static_cast<std::size_t>(std::cin.gcount());
        if (n == 0) break;
        ok = parser.feed(buf, n);
        while (auto r = parser.next()) print(*r);
    }
    if (!ok) {
        std::printf("error=%s\n", escape(parser.error()).c_str());
        return 1;
    }
    if (parser.in_request()) {
        std::printf("error=input ends inside a request\n");
        return 1;
    }
    return 0;
}

const xproxy::wire::Registrar policy_cmd(
    {"policy-parse",
     "policy-parse [--max-line N] [--max-request N] [--max-attributes N] - parse Postfix policy requests from stdin",
     policy_parse});

}  // namespace
