// secret_file.cpp: see secret_file.hpp.
#include <xproxy/base/secret_file.hpp>

#include <cstring>

#include <xproxy/base/file_loader.hpp>

namespace xproxy {

Expected<SecretBytes> read_secret_file(const std::string& path, std::size_t min_size, bool group_may_read) {
    if (min_size == 0) min_size = 1;
    const FileRules rules{4095, group_may_read ? kSecretGroupRead : kSecretOwnerOnly, false, false};
    FileRefusal r;
    auto key = load_secret_file(path, rules, &r);
    if (!key) {
        switch (r.reason) {
            case FileRefusal::Reason::open: return Failure{"cannot open " + path + ": " + std::strerror(r.sys_errno)};
            case FileRefusal::Reason::read: return Failure{"cannot read " + path + ": " + std::strerror(r.sys_errno)};
            case FileRefusal::Reason::too_big: return Failure{path + " is longer than 4095 bytes"};
            default:
                return Failure{path + " must be a regular file of mode " + (group_may_read ? "0640" : "0600") +
                               " or tighter (has " + mode_octal(r.mode) + "; chmod " +
                               (group_may_read ? "640 " : "600 ") + path + ")"};
        }
    }
    std::size_t used = key->size();
    if (used > 0 && key->view().back() == '\n') key->truncate(--used);
    if (used == 0) return Failure{path + " is empty"};
    if (used < min_size) return Failure{path + " holds fewer than " + std::to_string(min_size) + " bytes"};
    return key;
}

}  // namespace xproxy
