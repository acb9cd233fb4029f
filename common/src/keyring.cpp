// keyring.cpp: key ring parsing and loading, with the permission check on secrets.
#include "xproxy/keyring.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xproxy {

namespace {

std::optional<std::string> decode_secret(std::string_view spec) {
    if (spec.rfind("hex:", 0) == 0) {
        auto hex = spec.substr(4);
        if (hex.size() % 2) return std::nullopt;
        std::string out;
        for (std::size_t i = 0; i < hex.size(); i += 2) {
            auto nib = [](char c) -> int {
                if (c >= '0' && c <= '9') return c - '0';
                if (c >= 'a' && c <= 'f') return c - 'a' + 10;
                if (c >= 'A' && c <= 'F') return c - 'A' + 10;
                return -1;
            };
            int hi = nib(hex[i]), lo = nib(hex[i + 1]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out += static_cast<char>(hi * 16 + lo);
        }
        return out;
    }
    if (spec.rfind("base64:", 0) == 0) {
        auto b64 = spec.substr(7);
        if (b64.empty() || b64.size() % 4) return std::nullopt;
        std::string out(b64.size() / 4 * 3, '\0');
        int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
        if (n < 0) return std::nullopt;
        std::size_t len = static_cast<std::size_t>(n);
        if (b64.back() == '=') --len;
        if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --len;
        out.resize(len);
        return out;
    }
    return std::nullopt;
}

bool valid_id(std::string_view id) {
    if (id.empty() || id.size() > 32) return false;
    for (char c : id)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    return true;
}

}  // namespace

KeyRing::~KeyRing() {
    for (auto& k : keys_)
        if (!k.secret.empty()) OPENSSL_cleanse(k.secret.data(), k.secret.size());
}

const Key* KeyRing::find(std::string_view id) const {
    for (const auto& k : keys_)
        if (k.id == id) return &k;
    return nullptr;
}

std::optional<KeyRing> KeyRing::parse(std::string_view text, std::string* error) {
    KeyRing ring;
    std::size_t lineno = 0, pos = 0;
    while (pos <= text.size()) {
        auto nl = text.find('\n', pos);
        auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        ++lineno;
        if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        auto trim = [](std::string_view s) {
            while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
            while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
            return s;
        };
        line = trim(line);
        if (line.empty()) continue;
        auto sp = line.find_first_of(" \t");
        auto fail = [&](const std::string& why) -> std::optional<KeyRing> {
            if (error) *error = "key ring line " + std::to_string(lineno) + ": " + why;
            return std::nullopt;
        };
        if (sp == std::string_view::npos) return fail("expected 'KEYID base64:SECRET' or 'KEYID hex:SECRET'");
        auto id = line.substr(0, sp);
        auto spec = trim(line.substr(sp));
        if (!valid_id(id)) return fail("key id must be 1-32 characters of A-Z a-z 0-9 . _ -");
        if (ring.find(id)) return fail("key id '" + std::string(id) + "' appears twice");
        auto secret = decode_secret(spec);
        if (!secret) return fail("secret must be base64:... or hex:... (key '" + std::string(id) + "')");
        if (secret->size() < 16) return fail("secret of key '" + std::string(id) + "' is shorter than 16 bytes");
        ring.keys_.push_back(Key{std::string(id), std::move(*secret)});
    }
    if (ring.keys_.empty()) {
        if (error) *error = "key ring holds no key";
        return std::nullopt;
    }
    return ring;
}

std::optional<std::string> read_secret_file(const std::string& path, std::string* error) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (error) *error = "cannot open " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        if (error)
            *error = S_ISREG(st.st_mode) ? path + " has mode " + mode + ": secrets must not be accessible by group or others (chmod 600)"
                                         : path + " is not a regular file";
        close(fd);
        return std::nullopt;
    }
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > (1u << 20)) break;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

std::optional<KeyRing> KeyRing::load_file(const std::string& path, std::string* error) {
    auto text = read_secret_file(path, error);
    if (!text) return std::nullopt;
    auto ring = parse(*text, error);
    OPENSSL_cleanse(text->data(), text->size());
    if (!ring && error) *error = path + ": " + *error;
    return ring;
}

}  // namespace xproxy
