// jose_fixtures.hpp: the JOSE unit tests' fixtures (fixtures/, written by fixtures/mint.py
// with PyJWT): keys, a JWK set and tokens issued at kIssued. The tests inject kNow as the
// current time, so the fixtures never expire.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

#include <xproxy/base/text.hpp>

namespace xproxy::test {

inline constexpr std::int64_t kIssued = 1800000000;
inline constexpr std::int64_t kNow = kIssued + 10;

inline std::string fixture(const std::string& name) {
    std::ifstream in(std::string(XPROXY_SOURCE_DIR) + "/tests/unit/jose/fixtures/" + name, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!s.empty() && s.back() == '\n' && name.size() > 4 && name.substr(name.size() - 4) == ".jwt") s.pop_back();
    return s;
}

}  // namespace xproxy::test
