// keyring.cpp: key ring parsing, and loading with the file ownership rules (keyring.hpp).
#include <xproxy/base/keyring.hpp>

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xproxy {

SecretBytes& SecretBytes::operator=(const SecretBytes& other) {
    if (this != &other) {
        wipe();
        bytes_ = other.bytes_;
    }
    return *this;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
        wipe();
        bytes_ = std::move(other.bytes_);
        other.bytes_.clear();
    }
    return *this;
}

void SecretBytes::wipe() {
    if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
    bytes_.clear();
}

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// Decodes "hex:..." or "base64:..." into out; on failure returns a reason (no secret
// byte in it).
const char* decode_secret(std::string_view spec, SecretBytes& out) {
    std::vector<unsigned char> buf;  // sized once, never shrunk nor grown: one allocation to wipe
    std::size_t len = 0;             // bytes of buf that are the secret
    const char* why = nullptr;
    if (spec.rfind("hex:", 0) == 0) {
        std::string_view hex = spec.substr(4);
        if (hex.empty() || hex.size() % 2 != 0) {
            why = "hex secret must have an even, non-zero number of digits";
        } else {
            buf.resize(hex.size() / 2);
            for (std::size_t i = 0; i < buf.size() && !why; ++i) {
                const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
                if (hi < 0 || lo < 0) why = "hex secret has a character that is not a hex digit";
                else buf[i] = static_cast<unsigned char>(hi * 16 + lo);
            }
            len = buf.size();
        }
    } else if (spec.rfind("base64:", 0) == 0) {
        std::string_view b64 = spec.substr(7);
        std::size_t pad = 0;
        while (pad < 2 && pad < b64.size() && b64[b64.size() - 1 - pad] == '=') ++pad;
        bool chars_ok = !b64.empty() && b64.size() % 4 == 0;
        for (std::size_t i = 0; chars_ok && i + pad < b64.size(); ++i) chars_ok = is_b64(b64[i]);
        if (!chars_ok) {
            why = "base64 secret must be standard base64 (A-Z a-z 0-9 + /) with '=' padding";
        } else {
            buf.resize(b64.size() / 4 * 3);
            const int n = EVP_DecodeBlock(buf.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                                          static_cast<int>(b64.size()));
            // The bytes decoded from the padding stay in buf (cleansed below): shrinking
            // the vector would leave them beyond size(), out of reach of the cleanse.
            if (n < 0 || static_cast<std::size_t>(n) < pad) why = "base64 secret does not decode";
            else len = static_cast<std::size_t>(n) - pad;
        }
    } else {
        why = "secret must start with hex: or base64:";
    }
    if (!why && len < KeyRing::kMinSecret) why = "secret is shorter than 16 bytes";
    if (!why && len > KeyRing::kMaxSecret) why = "secret is longer than 128 bytes";
    if (!why) out = SecretBytes(buf.data(), len);
    if (!buf.empty()) OPENSSL_cleanse(buf.data(), buf.size());
    return why;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

std::string mode_text(mode_t mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

}  // namespace

bool KeyRing::valid_id(std::string_view id) {
    if (id.empty() || id.size() > kMaxId) return false;
    for (char c : id) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

const Key* KeyRing::find(std::string_view id) const {
    for (const auto& k : keys_)
        if (k.id == id) return &k;
    return nullptr;
}

std::vector<std::string> KeyRing::ids() const {
    std::vector<std::string> out;
    out.reserve(keys_.size());
    for (const auto& k : keys_) out.push_back(k.id);
    return out;
}

std::optional<KeyRing> KeyRing::parse(std::string_view text, std::string* error) {
    KeyRing ring;
    std::size_t lineno = 0;
    std::size_t pos = 0;
    auto fail = [&](std::size_t line, const std::string& why) -> std::optional<KeyRing> {
        if (error) *error = "line " + std::to_string(line) + ": " + why;
        return std::nullopt;
    };
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++lineno;
        if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        line = trim(line);
        if (line.empty()) continue;
        for (char c : line)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || static_cast<unsigned char>(c) >= 0x7F)
                return fail(lineno, "control or non-ASCII byte");
        const auto sep = line.find_first_of(" \t");
        if (sep == std::string_view::npos) return fail(lineno, "expected 'KEYID hex:SECRET' or 'KEYID base64:SECRET'");
        const std::string_view id = line.substr(0, sep);
        const std::string_view spec = trim(line.substr(sep));
        if (!valid_id(id)) return fail(lineno, "key id must be 1-32 characters of A-Z a-z 0-9 . _ -");
        if (spec.find_first_of(" \t") != std::string_view::npos)
            return fail(lineno, "unexpected text after the secret of key '" + std::string(id) + "'");
        if (ring.find(id)) return fail(lineno, "key id '" + std::string(id) + "' appears twice");
        SecretBytes secret;
        if (const char* why = decode_secret(spec, secret))
            return fail(lineno, std::string(why) + " (key '" + std::string(id) + "')");
        ring.keys_.push_back(Key{std::string(id), std::move(secret)});
    }
    if (ring.keys_.empty()) {
        if (error) *error = "no key (expected lines 'KEYID hex:SECRET' or 'KEYID base64:SECRET')";
        return std::nullopt;
    }
    return ring;
}

std::optional<KeyRing> KeyRing::load_file(const std::string& path, std::string* error) {
    auto fail = [&](const std::string& why) -> std::optional<KeyRing> {
        if (error) *error = "key ring " + path + ": " + why;
        return std::nullopt;
    };
    // O_NONBLOCK: a FIFO put in place of the file must not hang us before fstat says no.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fail(std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return fail(std::string("cannot stat: ") + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return fail("not a regular file (mode " + mode_text(st.st_mode) + ")");
    }
    if ((st.st_mode & 077) != 0) {
        ::close(fd);
        if (error)
            *error = "key ring " + path + " has mode " + mode_text(st.st_mode) +
                     ": group or others may access its secrets; refusing it (chmod 600 " + path + ")";
        return std::nullopt;
    }
    if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) > kMaxFileSize) {
        ::close(fd);
        return fail("larger than 1 MiB");
    }
    // One buffer of the announced size + 1, read until EOF; a file that grows while we
    // read is refused rather than reallocating (which would leave unwiped copies).
    std::vector<char> buf(static_cast<std::size_t>(st.st_size) + 1);
    std::size_t used = 0;
    const char* why = nullptr;
    int read_errno = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf.data() + used, buf.size() - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            read_errno = errno;
            why = "cannot read: ";
            break;
        }
        if (n == 0) break;
        used += static_cast<std::size_t>(n);
        if (used == buf.size()) {
            why = "file changed while being read";
            break;
        }
    }
    ::close(fd);
    std::optional<KeyRing> ring;
    std::string parse_error;
    if (!why) ring = parse(std::string_view(buf.data(), used), &parse_error);
    OPENSSL_cleanse(buf.data(), buf.size());
    if (why) return fail(std::string(why) + (read_errno ? std::strerror(read_errno) : ""));
    if (!ring) return fail(parse_error);
    return ring;
}

}  // namespace xproxy
