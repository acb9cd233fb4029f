// trace_header.cpp: sign, format and verify X-Original-Source.
#include "xproxy/trace_header.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>
#include <map>

#include "xproxy/xtext.hpp"

namespace xproxy::trace {

namespace {

// Every tag, in the order of the canonical form and of what sign() writes.
constexpr std::array<std::string_view, 15> kTags = {"v",   "ip", "port", "helo", "name", "proto", "tls", "login",
                                                    "sid", "by", "t",    "b",    "kid",  "sig",  ""};
constexpr std::size_t kTagCount = 14;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string binding_line(BindingKind kind, const MessageBinding& b) {
    // The Message-ID is compared without surrounding white space; the sender case-folded.
    std::string_view mid = b.message_id;
    while (!mid.empty() && (mid.front() == ' ' || mid.front() == '\t' || mid.front() == '\r' || mid.front() == '\n'))
        mid.remove_prefix(1);
    while (!mid.empty() && (mid.back() == ' ' || mid.back() == '\t' || mid.back() == '\r' || mid.back() == '\n'))
        mid.remove_suffix(1);
    if (kind == BindingKind::message_id) return "mid:" + std::string(mid) + "\nenv:" + lower(b.sender);
    return "env:" + lower(b.sender);
}

// The canonical form: "tag=value;" for every tag but sig, in kTags order, then LF and
// the binding line. Values are the xtext forms as written.
std::string canonical(const std::map<std::string, std::string, std::less<>>& tags, BindingKind kind,
                      const MessageBinding& b) {
    std::string out;
    for (std::size_t i = 0; i + 1 < kTagCount; ++i) {
        auto it = tags.find(kTags[i]);
        out += kTags[i];
        out += '=';
        if (it != tags.end()) out += it->second;
        out += ';';
    }
    out += '\n';
    out += binding_line(kind, b);
    return out;
}

std::string hmac_b64(const std::string& key, const std::string& data) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), mac, &len);
    std::string out(4 * ((len + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, static_cast<int>(len));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string tls_text(const TlsInfo& t) {
    if (!t.active()) return "";
    return t.version + "/" + t.cipher + "/" + std::to_string(t.bits);
}

bool parse_int(std::string_view s, std::int64_t& out) {
    if (s.empty() || s.size() > 19) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out >= 0;
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// xtext, with ';' (our tag separator, legal in xtext) encoded as +3B as well.
std::string enc(std::string_view raw) {
    std::string x = xtext_encode(raw), out;
    out.reserve(x.size());
    for (char c : x) out += c == ';' ? std::string("+3B") : std::string(1, c);
    return out;
}

}  // namespace

const char* to_string(Verdict v) {
    switch (v) {
        case Verdict::ok: return "ok";
        case Verdict::malformed: return "malformed";
        case Verdict::unsupported_version: return "unsupported_version";
        case Verdict::unknown_key: return "unknown_key";
        case Verdict::bad_signature: return "bad_signature";
        case Verdict::expired: return "expired";
        case Verdict::future: return "future";
    }
    return "malformed";
}

std::string sign(const SourceInfo& info, std::string_view by, std::int64_t time, BindingKind kind,
                 const MessageBinding& binding, const KeyRing& keys) {
    const Key* key = keys.signing_key();
    if (!key) return "";
    std::map<std::string, std::string, std::less<>> tags;
    tags["v"] = "1";
    tags["ip"] = info.client ? info.client->addr.to_string() : "";
    tags["port"] = info.client ? std::to_string(info.client->port) : "";
    tags["helo"] = enc(info.helo);
    tags["name"] = enc(info.ptr_name);
    tags["proto"] = enc(info.protocol);
    tags["tls"] = enc(tls_text(info.tls));
    tags["login"] = enc(info.login);
    tags["sid"] = enc(info.session_id);
    tags["by"] = enc(by);
    tags["t"] = std::to_string(time);
    tags["b"] = kind == BindingKind::message_id ? "mid" : "env";
    tags["kid"] = key->id;
    std::string sig = hmac_b64(key->secret, canonical(tags, kind, binding));
    std::string out;
    for (std::size_t i = 0; i + 1 < kTagCount; ++i) {
        out += kTags[i];
        out += '=';
        out += tags[std::string(kTags[i])];
        out += "; ";
    }
    out += "sig=" + sig;
    return out;
}

std::string format_field(std::string_view value) {
    std::string out(kFieldName);
    out += ':';
    std::size_t col = out.size();
    std::size_t i = 0;
    while (i < value.size()) {
        auto sp = value.find(' ', i);
        auto word = value.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i);
        if (col + 1 + word.size() > 78 && col > kFieldName.size() + 1) {
            out += "\r\n\t";
            col = 8;
        } else {
            out += ' ';
            ++col;
        }
        out += word;
        col += word.size();
        if (sp == std::string_view::npos) break;
        i = sp + 1;
    }
    return out;
}

VerifyResult verify(std::string_view field, const MessageBinding& binding, const KeyRing& keys, std::int64_t now,
                    std::int64_t max_age, std::int64_t max_skew) {
    VerifyResult r;
    auto bad = [&](Verdict v, std::string why) {
        r.verdict = v;
        r.reason = std::move(why);
        return r;
    };
    if (field.size() > 4096) return bad(Verdict::malformed, "header longer than 4096 bytes");
    // Drop an optional field name.
    if (field.size() > kFieldName.size() && lower(field.substr(0, kFieldName.size())) == lower(kFieldName) &&
        field[kFieldName.size()] == ':')
        field.remove_prefix(kFieldName.size() + 1);
    // Unfold and split into tag=value pairs, ignoring white space around both.
    std::map<std::string, std::string, std::less<>> tags;
    std::size_t i = 0;
    while (i < field.size()) {
        auto semi = field.find(';', i);
        auto part = field.substr(i, semi == std::string_view::npos ? std::string_view::npos : semi - i);
        i = semi == std::string_view::npos ? field.size() : semi + 1;
        std::string compact;
        for (char c : part)
            if (!is_ws(c)) compact += c;
        if (compact.empty()) continue;
        auto eq = compact.find('=');
        if (eq == std::string::npos || eq == 0) return bad(Verdict::malformed, "tag without '='");
        std::string tag = compact.substr(0, eq);
        bool known = false;
        for (std::size_t k = 0; k < kTagCount; ++k) known = known || kTags[k] == tag;
        if (!known) return bad(Verdict::malformed, "unknown tag");
        if (!tags.emplace(tag, compact.substr(eq + 1)).second) return bad(Verdict::malformed, "repeated tag");
    }
    auto get = [&](std::string_view t) -> std::string {
        auto it = tags.find(t);
        return it == tags.end() ? std::string() : it->second;
    };
    if (!tags.count("v") || !tags.count("sig") || !tags.count("kid") || !tags.count("t") || !tags.count("b"))
        return bad(Verdict::malformed, "missing v, t, b, kid or sig");
    if (get("v") != "1") return bad(Verdict::unsupported_version, "version is not 1");
    std::string b = get("b");
    if (b != "mid" && b != "env") return bad(Verdict::malformed, "unknown binding");
    r.binding = b == "mid" ? BindingKind::message_id : BindingKind::envelope;
    r.key_id = get("kid");
    const Key* key = keys.find(r.key_id);
    if (!key) return bad(Verdict::unknown_key, "unknown key id");
    std::string expected = hmac_b64(key->secret, canonical(tags, r.binding, binding));
    std::string given = get("sig");
    if (given.size() != expected.size() || CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0)
        return bad(Verdict::bad_signature, "signature does not match this message");
    // Authentic from here on: the values were written by a key holder.
    std::int64_t t = 0;
    if (!parse_int(get("t"), t)) return bad(Verdict::malformed, "bad time");
    if (t > now + max_skew) return bad(Verdict::future, "signed in the future");
    if (now - t > max_age) return bad(Verdict::expired, "older than the accepted age");
    SourceInfo& s = r.source;
    s.time = t;
    std::string ip = get("ip");
    if (!ip.empty()) {
        auto a = IpAddress::parse(ip);
        std::int64_t port = 0;
        if (!a || !parse_int(get("port"), port) || port > 65535) return bad(Verdict::malformed, "bad ip or port");
        s.client = Endpoint{*a, static_cast<std::uint16_t>(port)};
    }
    auto dec = [&](std::string_view t2, std::string& out) {
        auto v = xtext_decode(get(t2));
        if (!v) return false;
        out = std::move(*v);
        return true;
    };
    std::string tls;
    if (!dec("helo", s.helo) || !dec("name", s.ptr_name) || !dec("proto", s.protocol) || !dec("tls", tls) ||
        !dec("login", s.login) || !dec("sid", s.session_id) || !dec("by", r.by))
        return bad(Verdict::malformed, "bad xtext value");
    if (!tls.empty()) {
        auto a = tls.find('/'), z = tls.rfind('/');
        s.tls.version = tls.substr(0, a);
        if (a != std::string::npos && z != a) {
            s.tls.cipher = tls.substr(a + 1, z - a - 1);
            std::int64_t bits = 0;
            if (parse_int(tls.substr(z + 1), bits) && bits < 65536) s.tls.bits = static_cast<unsigned>(bits);
        }
    }
    r.verdict = Verdict::ok;
    return r;
}

}  // namespace xproxy::trace
