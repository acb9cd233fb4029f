// base64.cpp: strict base64 (base64.hpp). OpenSSL decodes once the input is checked.
#include <xproxy/base/base64.hpp>

#include <openssl/evp.h>

namespace xproxy {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr bool is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

std::size_t padding(std::string_view in) {
    std::size_t pad = 0;
    while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
    return pad;
}

// Decodes checked input into out[0, in.size() / 4 * 3); returns the data length.
std::size_t decode_checked(std::string_view in, unsigned char* out) {
    if (in.empty()) return 0;
    const int n = EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    // EVP_DecodeBlock counts the zero bytes the padding stands for: they are not data.
    const std::size_t pad = padding(in);
    return n < 0 || static_cast<std::size_t>(n) < pad ? 0 : static_cast<std::size_t>(n) - pad;
}

}  // namespace

bool base64_valid(std::string_view in) {
    if (in.size() % 4 != 0) return false;
    const std::size_t pad = padding(in);
    for (std::size_t i = 0; i + pad < in.size(); ++i)
        if (!is_b64(in[i])) return false;
    return true;
}

bool base64_decode(std::string_view in, SecretBytes& out) {
    out.wipe();
    if (!base64_valid(in)) return false;
    char* p = out.prepare(in.size() / 4 * 3);
    out.truncate(decode_checked(in, reinterpret_cast<unsigned char*>(p)));
    return true;
}

std::optional<std::string> base64_decode(std::string_view in) {
    if (!base64_valid(in)) return std::nullopt;
    std::string out(in.size() / 4 * 3, '\0');
    out.resize(decode_checked(in, reinterpret_cast<unsigned char*>(out.data())));
    return out;
}

std::size_t base64_encode(std::string_view data, char* out) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t o = 0, i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        const unsigned v = (unsigned{p[i]} << 16) | (unsigned{p[i + 1]} << 8) | p[i + 2];
        out[o++] = kAlphabet[(v >> 18) & 63];
        out[o++] = kAlphabet[(v >> 12) & 63];
        out[o++] = kAlphabet[(v >> 6) & 63];
        out[o++] = kAlphabet[v & 63];
    }
    if (const std::size_t rest = data.size() - i; rest > 0) {
        const unsigned v = (unsigned{p[i]} << 16) | (rest == 2 ? unsigned{p[i + 1]} << 8 : 0u);
        out[o++] = kAlphabet[(v >> 18) & 63];
        out[o++] = kAlphabet[(v >> 12) & 63];
        out[o++] = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

std::string base64_encode(std::string_view data) {
    std::string out(base64_encoded_size(data.size()), '\0');
    base64_encode(data, out.data());
    return out;
}

}  // namespace xproxy
