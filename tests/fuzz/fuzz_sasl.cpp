// fuzz_sasl: the PLAIN and LOGIN mechanisms on arbitrary client lines. The first byte
// picks the mechanism (bit 0) and whether the first line is AUTH's initial response
// (bit 1); the rest is split into lines at LF. Every challenge is base64; an exchange
// ends within its lines or asks for more; credentials that come out obey the promises of
// sasl.hpp (sizes, no NUL/CR/LF, non-empty user and password), and PLAIN credentials
// encoded again come out the same.
#include <cstdint>
#include <string>
#include <vector>

#include <xproxy/base/base64.hpp>
#include <xproxy/wire/sasl.hpp>

using namespace xproxy;
using sasl::Step;

namespace {

bool clean(std::string_view s, bool may_be_empty) {
    return (may_be_empty || !s.empty()) && s.size() <= sasl::kMaxField &&
           s.find_first_of(std::string_view("\0\r\n", 3)) == std::string_view::npos;
}

Step run(const char* mech, bool initial, const std::vector<std::string_view>& lines) {
    auto m = sasl::make_mechanism(mech);
    if (!m) __builtin_trap();
    std::size_t next = 0;
    Step s = m->start(initial && !lines.empty() ? std::optional<std::string_view>(lines[next++]) : std::nullopt);
    while (s.kind == Step::challenge) {
        if (!base64_valid(s.challenge_b64)) __builtin_trap();
        if (next == lines.size()) return s;
        s = m->next(lines[next++]);
    }
    if (s.kind != Step::done && s.reason.empty()) __builtin_trap();
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const char* mech = (data[0] & 1) ? "login" : "plain";
    const bool initial = (data[0] & 2) != 0;
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::vector<std::string_view> lines;
    while (!rest.empty()) {
        const std::size_t lf = rest.find('\n');
        lines.push_back(rest.substr(0, lf));
        rest = lf == std::string_view::npos ? std::string_view() : rest.substr(lf + 1);
    }
    const Step s = run(mech, initial, lines);
    if (s.kind != Step::done) return 0;
    const sasl::Credentials& c = s.credentials;
    if (!clean(c.authzid, true) || !clean(c.authcid, false) || !clean(c.secret.view(), false)) __builtin_trap();
    if (c.kind != sasl::Credentials::Kind::password) __builtin_trap();
    if (mech[0] == 'p') {
        const std::string again = base64_encode(c.authzid + '\0' + c.authcid + '\0' + std::string(c.secret.view()));
        const Step t = run("plain", true, {again});
        if (t.kind != Step::done || t.credentials.authzid != c.authzid || t.credentials.authcid != c.authcid ||
            t.credentials.secret.view() != c.secret.view())
            __builtin_trap();
    }
    return 0;
}
