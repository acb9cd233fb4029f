// keyring_edit.cpp: a key ring's text edited in memory (keyring_edit.hpp).
#include "keyring_edit.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <xproxy/base/keyring.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::keyring_tool {

namespace {

constexpr std::string_view kLineBlanks = " \t\r";

// The key id of one line, as KeyRing::parse() reads it; empty for a comment or blank line.
std::string_view line_id(std::string_view line) {
    if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line, kLineBlanks);
    return line.substr(0, line.find_first_of(" \t"));
}

// The concatenation of the pieces, in one SecretBytes (one allocation, nothing left behind).
SecretBytes join(std::initializer_list<std::string_view> pieces) {
    std::size_t size = 0;
    for (const auto p : pieces) size += p.size();
    SecretBytes out;
    char* dst = out.prepare(size);
    for (const auto p : pieces) {
        if (!p.empty()) std::memcpy(dst, p.data(), p.size());
        dst += p.size();
    }
    return out;
}

}  // namespace

std::string default_key_id(std::time_t now) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::snprintf(buf, sizeof buf, "k%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    return buf;
}

Expected<SecretBytes> random_secret(std::size_t bytes) {
    if (bytes < KeyRing::kMinSecret || bytes > KeyRing::kMaxSecret)
        return Failure{"a secret has 16 to 128 bytes, not " + std::to_string(bytes)};
    SecretBytes out;
    auto* dst = reinterpret_cast<unsigned char*>(out.prepare(bytes));
    if (RAND_bytes(dst, static_cast<int>(bytes)) != 1) return Failure{"OpenSSL's RAND_bytes failed"};
    return out;
}

SecretBytes encode_secret(const SecretBytes& secret) {
    constexpr std::string_view prefix = "base64:";
    SecretBytes out;
    char* dst = out.prepare(prefix.size() + 4 * ((secret.size() + 2) / 3) + 1);  // + EVP_EncodeBlock's NUL
    std::memcpy(dst, prefix.data(), prefix.size());
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(dst + prefix.size()), secret.data(),
                                  static_cast<int>(secret.size()));
    out.truncate(prefix.size() + static_cast<std::size_t>(n));
    return out;
}

Expected<KeyRingText> KeyRingText::parse(std::string_view text) {
    const auto ring = KeyRing::parse(text);
    if (!ring) return Failure{ring.error()};
    KeyRingText out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        const std::string_view line = text.substr(pos,
                                                  nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        Line l;
        l.text.assign(line.data(), line.size());
        l.id = std::string(line_id(line));
        if (!l.id.empty()) {
            const Key* k = ring->find(l.id);
            if (k == nullptr) return Failure{"key ring parser and editor disagree on key '" + l.id + "'"};
            l.bytes = k->secret.size();
            if (!line.empty() && line.back() == '\r') out.crlf_ = true;
        }
        out.lines_.push_back(std::move(l));
    }
    return out;
}

KeyRingText KeyRingText::fresh() {
    KeyRingText out;
    Line l;
    l.text.assign(kHeaderComment.data(), kHeaderComment.size());
    out.lines_.push_back(std::move(l));
    return out;
}

std::ptrdiff_t KeyRingText::index_of(std::string_view id) const {
    for (std::size_t i = 0; i < lines_.size(); ++i)
        if (!lines_[i].id.empty() && lines_[i].id == id) return static_cast<std::ptrdiff_t>(i);
    return -1;
}

std::ptrdiff_t KeyRingText::first_key() const {
    for (std::size_t i = 0; i < lines_.size(); ++i)
        if (!lines_[i].id.empty()) return static_cast<std::ptrdiff_t>(i);
    return -1;
}

bool KeyRingText::contains(std::string_view id) const { return index_of(id) >= 0; }

std::size_t KeyRingText::key_count() const {
    return static_cast<std::size_t>(
        std::count_if(lines_.begin(), lines_.end(), [](const Line& l) { return !l.id.empty(); }));
}

std::string KeyRingText::unused_id(std::string_view base) const {
    std::string id(base);
    for (unsigned n = 2; contains(id); ++n) id = std::string(base) + "-" + std::to_string(n);
    return id;
}

Expected<void> KeyRingText::add(std::string_view id, const SecretBytes& spec, Where where) {
    if (!KeyRing::valid_id(id))
        return Failure{"key id '" + std::string(id).substr(0, 64) + "' is not 1-32 characters of A-Z a-z 0-9 . _ -"};
    if (const auto at = index_of(id); at >= 0)
        return Failure{"key id '" + std::string(id) + "' is already in the key ring (line " + std::to_string(at + 1) +
                       ")"};
    for (const char c : spec.view())
        if (c <= ' ' || c == '#' || static_cast<unsigned char>(c) >= 0x7F)
            return Failure{"new key: the secret must be hex:DIGITS or base64:TEXT, with no space, '#' or control byte"};
    Line l;
    l.text = join({id, " ", spec.view(), crlf_ ? "\r" : ""});
    // The new line alone must be a valid key ring: the parser's own checks of the secret.
    const auto alone = KeyRing::parse(l.text.view());
    if (!alone) {
        std::string why = alone.error();
        if (why.rfind("line 1: ", 0) == 0) why.erase(0, 8);
        return Failure{"new key: " + why};
    }
    l.id = std::string(id);
    l.bytes = alone->signing_key()->secret.size();
    const auto first = first_key();
    std::size_t at = lines_.size();
    if (first >= 0) at = static_cast<std::size_t>(first) + (where == Where::second ? 1 : 0);
    lines_.insert(lines_.begin() + static_cast<std::ptrdiff_t>(at), std::move(l));
    return {};
}

Expected<bool> KeyRingText::promote(std::string_view id) {
    const auto at = index_of(id);
    if (at < 0) return Failure{"no key '" + std::string(id) + "' in the key ring"};
    const auto first = first_key();
    if (at == first) return false;
    // lines_[first .. at] becomes lines_[at], lines_[first .. at-1]
    std::rotate(lines_.begin() + first, lines_.begin() + at, lines_.begin() + at + 1);
    return true;
}

Expected<void> KeyRingText::retire(std::string_view id, bool force) {
    const auto at = index_of(id);
    if (at < 0) return Failure{"no key '" + std::string(id) + "' in the key ring"};
    if (key_count() == 1)
        return Failure{"key '" + std::string(id) +
                       "' is the only key: a key ring without a key is refused by the daemons; add another first"};
    if (at == first_key() && !force)
        return Failure{"key '" + std::string(id) +
                       "' is the signing (first) key: promote another key first, or use --force"};
    lines_.erase(lines_.begin() + at);
    return {};
}

std::vector<ListedKey> KeyRingText::keys() const {
    std::vector<ListedKey> out;
    for (std::size_t i = 0; i < lines_.size(); ++i)
        if (!lines_[i].id.empty()) out.push_back(ListedKey{out.size() + 1, lines_[i].id, lines_[i].bytes, i + 1});
    return out;
}

SecretBytes KeyRingText::render() const {
    std::size_t size = 0;
    for (const auto& l : lines_) size += l.text.size() + 1;
    SecretBytes out;
    char* dst = out.prepare(size);
    for (const auto& l : lines_) {
        dst = std::copy_n(l.text.view().data(), l.text.size(), dst);
        *dst++ = '\n';
    }
    return out;
}

}  // namespace xproxy::keyring_tool
