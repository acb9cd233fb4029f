// fuzz_token_audience: the deposit client's token_audiences (the "aud" of a JWT's payload,
// read without its signature, tools/deposit/token_audience.hpp) and audience_names_endpoint
// on arbitrary bytes: no crash nor read past the input; a refusal has a short text that
// never quotes the input; every audience accepted is a string of the payload, and one that
// names the endpoint is an https URL of its host and port.
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
        check(!r.error().empty() && r.error().size() < 200);
        check(in.size() < 16 || r.error().find(in) == std::string::npos);
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
