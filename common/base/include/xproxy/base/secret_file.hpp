// secret_file.hpp: a shared key read from a file (the PROXY v2 HMAC key of the shim,
// xproxyd and xproxy-wire), into the one buffer that holds secrets (secret_bytes.hpp).
//
// The file is read by load_secret_file() (file_loader.hpp): opened without following a
// link, a regular file that group and others cannot access (mode 0600 or tighter), at
// most 4095 bytes (one trailing newline is not part of the key) and at least the
// caller's minimum. The key's only copy is the SecretBytes it is read into. Error
// messages name the file, never its bytes.
#pragma once

#include <cstddef>
#include <string>

#include <xproxy/base/result.hpp>
#include <xproxy/base/secret_bytes.hpp>

namespace xproxy {

// The shortest PROXY v2 HMAC key the shim and xproxyd accept (128 bits).
inline constexpr std::size_t kMinHmacKeySize = 16;

// The key in `path` (at least min_size bytes, at least 1), or why not ("cannot open PATH:
// ...", "PATH must be a regular file of mode 0600 or tighter (has MODE; chmod 600 PATH)",
// "PATH is empty", "PATH holds fewer than N bytes", "PATH is longer than 4095 bytes",
// "cannot read PATH: ...").
// group_may_read: mode 0640 is accepted too (the file can belong to root and the group of
// the user a daemon runs as, which reads it again after dropping privileges); "other"
// never has any access, the group never more than read.
Expected<SecretBytes> read_secret_file(const std::string& path, std::size_t min_size, bool group_may_read = false);

}  // namespace xproxy
