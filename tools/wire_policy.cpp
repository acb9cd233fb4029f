// wire_policy.cpp: xproxy-wire policy-parse: Postfix policy requests on stdin -> one
// name=value line per attribute (non-printable bytes as \xHH), "---" after each request.
// Exit 1 with error=REASON when the input breaks the protocol or its bounds, or ends in
// the middle of a request.
#include <cstdio>
#include <iostream>
#include <iterator>

#include "wire_command.hpp"
#include "xproxy/policy_protocol.hpp"

namespace {

void print_escaped(const std::string& s) {
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c >= 32 && c < 127 && c != '\\') std::putchar(c);
        else std::printf("\\x%02X", c);
    }
}

int policy_parse(const std::vector<std::string_view>& args) {
    if (!args.empty()) return 2;
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    xproxy::policy::RequestParser parser;
    std::vector<xproxy::policy::Request> reqs;
    bool ok = parser.feed(in.data(), in.size(), reqs);
    for (const auto& r : reqs) {
        for (const auto& [k, v] : r.attrs) {
            std::printf("%s=", k.c_str());
            print_escaped(v);
            std::putchar('\n');
        }
        std::printf("---\n");
    }
    if (!ok) {
        std::printf("error=%s\n", parser.error().c_str());
        return 1;
    }
    if (parser.pending_bytes() > 0) {
        std::printf("error=input ends inside a request\n");
        return 1;
    }
    return 0;
}

const xproxy::wire::Registrar policy_cmd({"policy-parse", "policy-parse - parse Postfix policy requests from stdin",
                                          policy_parse});

}  // namespace
