// signing_key.hpp: the key xproxyd signs PROXY v2 headers with (hmac-key-file=), the
// same key the downstream's shim verifies with (XPROXY_HMAC_KEY_FILE).
//
// Read once at start-up, before privileges are dropped, from a regular file of mode 0600
// or tighter that is not a symbolic link; one trailing newline is dropped; at least 16
// and at most 4095 bytes. The key lives in one buffer, zeroed (OPENSSL_cleanse) when the
// object goes away; error messages name the file, never its bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace xproxy::proxyd {

class SigningKey {
public:
    static constexpr std::size_t kMinSize = 16;
    SigningKey() = default;
    SigningKey(const SigningKey&) = delete;
    SigningKey& operator=(const SigningKey&) = delete;
    ~SigningKey();
    std::string_view bytes() const { return bytes_; }

    // The key in `path`, or nullptr with *error set.
    static std::shared_ptr<const SigningKey> load(const std::string& path, std::string* error);

private:
    std::string bytes_;
};

}  // namespace xproxy::proxyd
