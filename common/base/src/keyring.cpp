// keyring.cpp: key ring parsing, and loading with the file ownership rules (keyring.hpp).
#include <xproxy/base/keyring.hpp>

#include <cstring>

#include <xproxy/base/base64.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decodes "hex:..." or "base64:..." into out; on failure returns a reason (no secret
// byte in it).
const char* decode_secret(std::string_view spec, SecretBytes& out) {
    SecretBytes secret;  // wipes itself, whichever way this returns
    const char* why = nullptr;
    if (spec.rfind("hex:", 0) == 0) {
        std::string_view hex = spec.substr(4);
        if (hex.empty() || hex.size() % 2 != 0) {
            why = "hex secret must have an even, non-zero number of digits";
        } else {
            char* p = secret.prepare(hex.size() / 2);
            for (std::size_t i = 0; i < secret.size() && !why; ++i) {
                const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
                if (hi < 0 || lo < 0) why = "hex secret has a character that is not a hex digit";
                else p[i] = static_cast<char>(hi * 16 + lo);
            }
        }
    } else if (spec.rfind("base64:", 0) == 0) {
        std::string_view b64 = spec.substr(7);
        if (b64.empty() || !base64_decode(b64, secret))
            why = "base64 secret must be standard base64 (A-Z a-z 0-9 + /) with '=' padding";
    } else {
        why = "secret must start with hex: or base64:";
    }
    if (!why && secret.size() < KeyRing::kMinSecret) why = "secret is shorter than 16 bytes";
    if (!why && secret.size() > KeyRing::kMaxSecret) why = "secret is longer than 128 bytes";
    if (!why) out = std::move(secret);
    return why;
}

constexpr std::string_view kLineBlanks = " \t\r";  // a CR before the LF is tolerated

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

Expected<KeyRing> KeyRing::parse(std::string_view text) {
    KeyRing ring;
    std::size_t lineno = 0;
    std::size_t pos = 0;
    auto fail = [&](std::size_t line, const std::string& why) -> Expected<KeyRing> {
        return Failure{"line " + std::to_string(line) + ": " + why};
    };
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++lineno;
        if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        line = trim(line, kLineBlanks);
        if (line.empty()) continue;
        for (char c : line)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || static_cast<unsigned char>(c) >= 0x7F)
                return fail(lineno, "control or non-ASCII byte");
        const auto sep = line.find_first_of(" \t");
        if (sep == std::string_view::npos) return fail(lineno, "expected 'KEYID hex:SECRET' or 'KEYID base64:SECRET'");
        const std::string_view id = line.substr(0, sep);
        const std::string_view spec = trim(line.substr(sep), kLineBlanks);
        if (!valid_id(id)) return fail(lineno, "key id must be 1-32 characters of A-Z a-z 0-9 . _ -");
        if (spec.find_first_of(" \t") != std::string_view::npos)
            return fail(lineno, "unexpected text after the secret of key '" + std::string(id) + "'");
        if (ring.find(id)) return fail(lineno, "key id '" + std::string(id) + "' appears twice");
        SecretBytes secret;
        if (const char* why = decode_secret(spec, secret))
            return fail(lineno, std::string(why) + " (key '" + std::string(id) + "')");
        ring.keys_.push_back(Key{std::string(id), std::move(secret)});
    }
    if (ring.keys_.empty()) return Failure{"no key (expected lines 'KEYID hex:SECRET' or 'KEYID base64:SECRET')"};
    return ring;
}

Expected<KeyRing> KeyRing::load_file(const std::string& path) {
    constexpr FileRules rules{kMaxFileSize, kSecretOwnerOnly, true, false};
    FileRefusal r;
    const auto text = load_secret_file(path, rules, &r);  // wiped when it goes out of scope
    if (!text) {
        const std::string prefix = "key ring " + path + ": ";
        switch (r.reason) {
            case FileRefusal::Reason::open: return Failure{prefix + "cannot open: " + std::strerror(r.sys_errno)};
            case FileRefusal::Reason::stat: return Failure{prefix + "cannot stat: " + std::strerror(r.sys_errno)};
            case FileRefusal::Reason::read: return Failure{prefix + "cannot read: " + std::strerror(r.sys_errno)};
            case FileRefusal::Reason::not_regular:
                return Failure{prefix + "not a regular file (mode " + mode_octal(r.mode) + ")"};
            case FileRefusal::Reason::mode:
                return Failure{"key ring " + path + " has mode " + mode_octal(r.mode) +
                               ": group or others may access its secrets; refusing it (chmod 600 " + path + ")"};
            case FileRefusal::Reason::too_big: return Failure{prefix + "larger than 1 MiB"};
            case FileRefusal::Reason::changed: return Failure{prefix + "file changed while being read"};
            case FileRefusal::Reason::owner: return Failure{text.error()};
        }
    }
    auto ring = parse(text->view());
    if (!ring) return Failure{"key ring " + path + ": " + ring.error()};
    return ring;
}

}  // namespace xproxy
