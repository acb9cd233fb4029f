// fuzz_token_audience: the deposit client's token_audiences (the "aud" of a JWT's payload,
// read without its signature, tools/deposit/token_audience.hpp) and audience_names_endpoint
// on arbitrary bytes: no crash nor read past the input; a refusal is one of its fixed
// texts (nothing of the input quoted); every audience accepted is a string of the
// payload, and one that names the endpoint is an https URL of its host and port.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "token_audience.hpp"

using namespace xproxy;
using namespace xproxy::deposit;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    http::HttpsUrl endpoint;
    endpoint.host = "mx.example.org";
    endpoint.port = 8443;
    if (audience_names_endpoint(in, endpoint)) {
        auto u = http::parse_https_url(in);
        check(u && u->host == "mx.example.org" && u->port == 8443);
    }
    auto r = token_audiences(in);
    if (!r) {
        // Every refusal is one of the fixed texts: nothing of the token is quoted (an input
        // may still happen to be a piece of one of them).
        static const std::string_view kTexts[] = {
            "the token is not a JWT (three parts separated by dots)",
            "the token's payload is not base64url",
            "the token's payload is not a JSON object",
            "the token has no \"aud\" claim",
            "the token's \"aud\" array holds a value that is not a string",
            "the token's \"aud\" is neither a string nor a non-empty array of strings",
        };
        bool known = r.error().rfind("the token is longer than ", 0) == 0 && r.error().size() < 60;
        for (auto t : kTexts) known = known || r.error() == t;
        check(known);
        return 0;
    }
    check(!r->empty());
    for (const auto& a : *r) {
        if (!audience_names_endpoint(a, endpoint)) continue;
        auto u = http::parse_https_url(a);
        check(u && u->host == "mx.example.org" && u->port == 8443);
    }
    return 0;
}
