// openssl_util.hpp: the small pieces of OpenSSL plumbing the JOSE layer shares: owning
// pointers, byte views, the error queue, and JOSE's ECDSA signature encoding.
//
// Promises: ecdsa_raw_to_der() accepts exactly 2 * size bytes (r||s, each a big-endian
// integer padded to `size` bytes) and nothing else; ecdsa_der_to_raw() is its inverse for
// what OpenSSL produces. Nothing here throws.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace xproxy::jose::detail {

template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const {
        Free(p);
    }
};
template <class T, auto Free>
using Owned = std::unique_ptr<T, FreeWith<Free>>;

inline const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// Empties this thread's OpenSSL error queue after a refused input (so a later, unrelated
// error report does not show a stale entry).
void clear_openssl_errors();

// A pem_password_cb that supplies no passphrase (an encrypted key is refused, never
// prompted for).
int no_passphrase(char* buf, int size, int rwflag, void* u);

std::optional<std::string> ecdsa_raw_to_der(std::string_view raw, std::size_t size);
std::optional<std::string> ecdsa_der_to_raw(std::string_view der, std::size_t size);

}  // namespace xproxy::jose::detail
