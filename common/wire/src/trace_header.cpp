// trace_header.cpp: sign, fold and verify X-Original-Source (trace_header.hpp,
// doc/wire-formats.md).
#include <xproxy/wire/trace_header.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <memory>
#include <optional>

#include <xproxy/base/text.hpp>
#include <xproxy/wire/mail_address.hpp>
#include <xproxy/wire/xtext.hpp>

namespace xproxy {

namespace {

// Every tag, in canonical order (also the order sign_trace_header writes).
enum Tag : std::size_t {
    kV,
    kIp,
    kPort,
    kHelo,
    kName,
    kProto,
    kTls,
    kLogin,
    kSid,
    kBy,
    kT,
    kB,
    kBh,
    kKid,
    kSig,
    kTagCount
};
constexpr std::array<std::string_view, kTagCount> kTagNames = {
    "v", "ip", "port", "helo", "name", "proto", "tls", "login", "sid", "by", "t", "b", "bh", "kid", "sig"};

constexpr std::string_view kCanonicalLabel = "xproxy-trace-v1\n";
constexpr std::string_view kBindingLabel = "xproxy-trace-binding-v1\n";
constexpr std::size_t kDigestB64 = 43;  // base64url of 32 bytes, no padding
constexpr std::size_t kMaxTlsVersion = 32, kMaxTlsCipher = 64, kMaxTlsFingerprint = 192;
constexpr std::int64_t kMaxTime = 9'999'999'999'999;  // 13 digits; keeps t + max_age in range

// The decoded content of a header: what the canonical form is built from.
struct Fields {
    std::optional<Endpoint> client;
    std::string helo, name, proto, login, sid, by;
    TlsInfo tls;  // version, cipher, bits, peer_fingerprint
    std::int64_t t = 0;
    TraceBinding kind = TraceBinding::message_id;
    std::string bh;  // base64url SHA-256 of the binding
    std::string kid;
};

// xtext, with ';' (the tag separator) and, where asked, '/' (the tls part separator)
// also hex-encoded.
void append_encoded(std::string& out, std::string_view raw, bool slash) {
    for (char c : xtext_encode(raw)) {
        if (c == ';') out += "+3B";
        else if (c == '/' && slash) out += "+2F";
        else out += c;
    }
}

std::string tls_value(const TlsInfo& tls) {
    if (tls.version.empty()) return {};
    std::string out;
    append_encoded(out, tls.version, true);
    out += '/';
    append_encoded(out, tls.cipher, true);
    out += '/';
    out += std::to_string(tls.bits);
    if (!tls.peer_fingerprint.empty()) {
        out += '/';
        append_encoded(out, tls.peer_fingerprint, true);
    }
    return out;
}

// The value of each tag as the canonical form writes it.
std::array<std::string, kTagCount> tag_values(const Fields& f) {
    std::array<std::string, kTagCount> v;
    v[kV].push_back('1');  // (not = "1": GCC 12 -O3 reports a false -Wrestrict there)
    if (f.client) {
        v[kIp] = f.client->addr.normalized().to_string();
        v[kPort] = std::to_string(f.client->port);
    }
    append_encoded(v[kHelo], f.helo, false);
    append_encoded(v[kName], f.name, false);
    append_encoded(v[kProto], f.proto, false);
    v[kTls] = tls_value(f.tls);
    append_encoded(v[kLogin], f.login, false);
    append_encoded(v[kSid], f.sid, false);
    append_encoded(v[kBy], f.by, false);
    v[kT] = std::to_string(f.t);
    v[kB] = to_string(f.kind);
    v[kBh] = f.bh;
    v[kKid] = f.kid;
    return v;
}

// The signed bytes: a label, then "tag=value;" for every tag but sig in canonical
// order, absent tags with an empty value.
std::string canonical(const std::array<std::string, kTagCount>& v) {
    std::string out(kCanonicalLabel);
    for (std::size_t i = 0; i < kSig; ++i) {
        out += kTagNames[i];
        out += '=';
        out += v[i];
        out += ';';
    }
    return out;
}

std::string base64url(const unsigned char* data, std::size_t size) {
    std::string out(4 * ((size + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
}

bool is_wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Algorithms fetched once and kept for the process: an implicit fetch per call (what
// EVP_sha256() and HMAC() do in OpenSSL 3) costs more than the hashing itself.
EVP_MAC* hmac_algorithm() {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

const EVP_MD* sha256_algorithm() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}

struct MacCtxFree {
    void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

void append_counted(std::string& out, std::string_view name, std::string_view value) {
    out += name;
    out += '=';
    out += std::to_string(value.size());
    out += ':';
    out += value;
    out += '\n';
}

// base64url(SHA-256(binding input)), the bh= value for `kind` and the caller's values.
std::string binding_hash(TraceBinding kind, const MessageBinding& b) {
    std::string mid;
    for (char c : b.message_id)
        if (!is_wsp(c)) mid += c;
    const std::string sender = canonical_address(b.sender);

    std::string in(kBindingLabel);
    in += "b=";
    in += to_string(kind);
    in += '\n';
    if (kind == TraceBinding::message_id) append_counted(in, "mid", mid);
    append_counted(in, "from", sender);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!sha256_algorithm() || EVP_Digest(in.data(), in.size(), md, &len, sha256_algorithm(), nullptr) != 1) return {};
    return base64url(md, len);
}

// base64url(HMAC-SHA256(key, data)), or "" if OpenSSL fails (never equal to a sig).
std::string hmac(const Key& key, const std::string& data) {
    if (!hmac_algorithm()) return {};
    std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(EVP_MAC_CTX_new(hmac_algorithm()));
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    if (!ctx || EVP_MAC_init(ctx.get(), key.secret.data(), key.secret.size(), params) != 1 ||
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
        EVP_MAC_final(ctx.get(), mac, &len, sizeof mac) != 1)
        return {};
    std::string out = base64url(mac, len);
    OPENSSL_cleanse(mac, sizeof mac);
    return out;
}

std::string cut(std::string_view s, std::size_t max) { return std::string(s.substr(0, max)); }

bool decode_text(std::string_view text, std::size_t max, std::string& out) {
    auto v = xtext_decode(text, true);
    if (!v || v->size() > max) return false;
    out = std::move(*v);
    return true;
}

bool is_b64url(std::string_view s) {
    if (s.size() != kDigestB64) return false;
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    return true;
}

// tls=VERSION/CIPHER/BITS[/FINGERPRINT]
bool parse_tls(std::string_view v, TlsInfo& tls) {
    std::array<std::string_view, 5> part{};
    std::size_t n = 0;
    for (std::size_t start = 0;;) {
        const auto slash = v.find('/', start);
        if (n == part.size()) return false;
        part[n++] = v.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    if (n < 3 || n > 4) return false;
    std::optional<std::uint16_t> bits;
    if (!decode_text(part[0], kMaxTlsVersion, tls.version) || tls.version.empty() ||
        !decode_text(part[1], kMaxTlsCipher, tls.cipher) ||
        !(bits = parse_decimal<std::uint16_t>(part[2], 65535, LeadingZeros::forbidden)))
        return false;
    tls.bits = *bits;
    if (n == 4 && (!decode_text(part[3], kMaxTlsFingerprint, tls.peer_fingerprint) || tls.peer_fingerprint.empty()))
        return false;
    return true;
}

// Removes an optional leading "X-Original-Source:" (any case, white space allowed before
// the colon).
std::string_view strip_field_name(std::string_view in) {
    std::string_view s = in;
    while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
    if (!istarts_with(s, kTraceFieldName)) return in;
    s.remove_prefix(kTraceFieldName.size());
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    if (s.empty() || s.front() != ':') return in;
    s.remove_prefix(1);
    return s;
}

}  // namespace

const char* to_string(TraceVerdict v) {
    switch (v) {
        case TraceVerdict::ok: return "ok";
        case TraceVerdict::malformed: return "malformed";
        case TraceVerdict::unknown_key: return "unknown_key";
        case TraceVerdict::bad_signature: return "bad_signature";
        case TraceVerdict::wrong_binding: return "wrong_binding";
        case TraceVerdict::expired: return "expired";
        case TraceVerdict::future: return "future";
    }
    return "malformed";
}

const char* to_string(TraceBinding b) { return b == TraceBinding::envelope ? "env" : "mid"; }

std::string sign_trace_header(const SourceInfo& info, const std::string& by, std::int64_t t,
                              const MessageBinding& binding, const KeyRing& keys) {
    const Key* key = keys.signing_key();
    if (!key || t < 0 || t > kMaxTime) return {};
    Fields f;
    f.client = info.client;
    f.helo = cut(info.helo, kTraceMaxText);
    f.name = cut(info.ptr_name, kTraceMaxText);
    f.proto = cut(info.protocol, kTraceMaxText);
    if (info.tls.active()) {
        f.tls.version = cut(info.tls.version, kMaxTlsVersion);
        f.tls.cipher = cut(info.tls.cipher, kMaxTlsCipher);
        f.tls.bits = info.tls.bits > 65535 ? 65535 : info.tls.bits;
        f.tls.peer_fingerprint = cut(info.tls.peer_fingerprint, kMaxTlsFingerprint);
    }
    f.login = cut(info.login, kTraceMaxText);
    f.sid = cut(info.session_id, kTraceMaxText);
    f.by = cut(by, kTraceMaxText);
    f.t = t;
    f.kind = binding.kind;
    f.bh = binding_hash(binding.kind, binding);
    f.kid = key->id;
    const auto values = tag_values(f);
    const std::string sig = hmac(*key, canonical(values));
    if (sig.size() != kDigestB64 || f.bh.size() != kDigestB64) return {};
    std::string out;
    for (std::size_t i = 0; i < kSig; ++i) {
        if (values[i].empty()) continue;
        out += kTagNames[i];
        out += '=';
        out += values[i];
        out += "; ";
    }
    out += "sig=";
    out += sig;
    return out;
}

std::string format_field(std::string_view value, std::string_view eol) {
    constexpr std::size_t kWidth = 78;
    std::string out(kTraceFieldName);
    out += ':';
    std::size_t col = out.size();
    bool first = true;
    std::size_t pos = 0;
    while (pos <= value.size()) {
        const auto semi = value.find(';', pos);
        std::string_view tok = value.substr(pos, semi == std::string_view::npos ? std::string_view::npos : semi - pos);
        pos = semi == std::string_view::npos ? value.size() + 1 : semi + 1;
        tok = trim(tok);
        if (tok.empty()) continue;
        if (!first) out += ';';
        // +1 for the ';' that will follow unless this is the last tag: keep room for it.
        if (!first && col + 2 + tok.size() + 1 > kWidth) {
            out += eol;
            out += '\t';
            col = 1;
        } else {
            out += ' ';
            col += first ? 1 : 2;
        }
        out += tok;
        col += tok.size();
        first = false;
    }
    return out;
}

namespace {

// Why a header is refused: the verdict and a reason safe to log (our text, a key id that
// KeyRing::valid_id accepted, or a tag name of ours).
struct Refusal {
    TraceVerdict verdict;
    std::string why;
};
using Refused = std::optional<Refusal>;
Refused malformed(std::string why) { return Refusal{TraceVerdict::malformed, std::move(why)}; }

using TagValues = std::array<std::optional<std::string_view>, kTagCount>;

// Unfolds the field: every CR, LF, SP and HTAB goes; anything else outside 0x21..0x7E is
// an error.
Refused unfold(std::string_view value, std::string& compact) {
    compact.reserve(value.size());
    for (char c : value) {
        if (is_wsp(c)) continue;
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x21 || u > 0x7E) return malformed("control or 8-bit byte in header");
        compact += c;
    }
    return std::nullopt;
}

// Splits "tag=value; ..." into the known tags: v=1 first, no unknown or repeated tag,
// every required tag present. The views point into `compact`.
Refused split_tags(std::string_view compact, TagValues& tags) {
    struct Pair {
        std::string_view tag, value;
    };
    std::array<Pair, kTagCount> pairs{};
    std::size_t npairs = 0;
    for (std::size_t pos = 0; pos < compact.size();) {
        const auto semi = compact.find(';', pos);
        const std::string_view part = compact.substr(
            pos, semi == std::string_view::npos ? std::string_view::npos : semi - pos);
        pos = semi == std::string_view::npos ? compact.size() : semi + 1;
        if (part.empty()) continue;
        const auto eq = part.find('=');
        if (eq == std::string_view::npos || eq == 0) return malformed("tag without '=' or name");
        if (npairs == pairs.size()) return malformed("too many tags");
        pairs[npairs++] = Pair{part.substr(0, eq), part.substr(eq + 1)};
    }
    for (std::size_t i = 0; i < npairs; ++i)
        if (pairs[i].tag == "v") tags[kV] = pairs[i].value;
    if (!tags[kV]) return malformed("no v= tag");
    if (*tags[kV] != "1") return malformed("unsupported version (only v=1 is known)");
    for (std::size_t i = 0; i < npairs; ++i) {
        std::size_t k = 0;
        while (k < kTagCount && kTagNames[k] != pairs[i].tag) ++k;
        if (k == kTagCount) return malformed("unknown tag");
        if (k != kV && tags[k]) return malformed("repeated tag " + std::string(kTagNames[k]));
        if (k != kV) tags[k] = pairs[i].value;
    }
    for (Tag required : {kT, kB, kBh, kKid, kSig})
        if (!tags[required]) return malformed("missing tag " + std::string(kTagNames[required]));
    return std::nullopt;
}

// Decodes every value strictly into `f`.
Refused decode_fields(const TagValues& tags, Fields& f) {
    auto get = [&tags](Tag t) { return tags[t].value_or(std::string_view{}); };
    if (!get(kIp).empty() || !get(kPort).empty()) {
        auto addr = IpAddress::parse(get(kIp));
        const auto port = parse_decimal<std::uint16_t>(get(kPort), 65535, LeadingZeros::forbidden);
        if (!addr || !port) return malformed("bad ip= or port=");
        f.client = Endpoint{*addr, *port};
    }
    if (!decode_text(get(kHelo), kTraceMaxText, f.helo) || !decode_text(get(kName), kTraceMaxText, f.name) ||
        !decode_text(get(kProto), kTraceMaxText, f.proto) || !decode_text(get(kLogin), kTraceMaxText, f.login) ||
        !decode_text(get(kSid), kTraceMaxText, f.sid) || !decode_text(get(kBy), kTraceMaxText, f.by))
        return malformed("bad xtext value or value too long");
    if (!get(kTls).empty() && !parse_tls(get(kTls), f.tls)) return malformed("bad tls= value");
    const auto t = parse_decimal<std::uint64_t>(get(kT), static_cast<std::uint64_t>(kMaxTime), LeadingZeros::forbidden);
    if (!t) return malformed("bad t= value");
    f.t = static_cast<std::int64_t>(*t);
    if (get(kB) == "mid") f.kind = TraceBinding::message_id;
    else if (get(kB) == "env") f.kind = TraceBinding::envelope;
    else return malformed("bad b= value (mid or env)");
    if (!is_b64url(get(kBh))) return malformed("bad bh= value");
    f.bh = std::string(get(kBh));
    if (!KeyRing::valid_id(get(kKid))) return malformed("bad kid= value");
    f.kid = std::string(get(kKid));
    if (!is_b64url(get(kSig))) return malformed("bad sig= value");
    return std::nullopt;
}

// Authenticity, then the binding to this message, then the time window.
Refused check_signature(const Fields& f, std::string_view sig, const MessageBinding& binding, const KeyRing& keys) {
    const Key* key = keys.find(f.kid);
    if (!key) return Refusal{TraceVerdict::unknown_key, "unknown key id " + f.kid};
    const std::string expected = hmac(*key, canonical(tag_values(f)));
    if (expected.size() != sig.size() || CRYPTO_memcmp(expected.data(), sig.data(), sig.size()) != 0)
        return Refusal{TraceVerdict::bad_signature, "signature does not match (key " + f.kid + ")"};
    const std::string bh = binding_hash(f.kind, binding);
    if (bh.size() != f.bh.size() || CRYPTO_memcmp(bh.data(), f.bh.data(), bh.size()) != 0)
        return Refusal{TraceVerdict::wrong_binding, f.kind == TraceBinding::message_id
                                                        ? "signed for another Message-ID or envelope sender"
                                                        : "signed for another envelope sender"};
    return std::nullopt;
}

Refused check_time(std::int64_t t, std::int64_t now, std::int64_t max_age, std::int64_t max_future) {
    if (max_future < 0) max_future = 0;
    if (max_age < 0) max_age = 0;
    if (max_age > INT64_MAX - kMaxTime) max_age = INT64_MAX - kMaxTime;
    if (now < t - max_future) return Refusal{TraceVerdict::future, "signed in the future (clock skew?)"};
    if (now > t + max_age) return Refusal{TraceVerdict::expired, "older than the accepted age"};
    return std::nullopt;
}

void move_source(Fields& f, SourceInfo& s) {
    s.client = f.client;
    s.helo = std::move(f.helo);
    s.ptr_name = std::move(f.name);
    s.protocol = std::move(f.proto);
    s.tls = std::move(f.tls);
    s.login = std::move(f.login);
    s.session_id = std::move(f.sid);
    s.time = f.t;
}

}  // namespace

TraceVerifyResult verify_trace_header(std::string_view raw_value, const MessageBinding& binding, const KeyRing& keys,
                                      std::int64_t now, std::int64_t max_age, std::int64_t max_future) {
    TraceVerifyResult r;
    auto refuse = [&r](Refusal&& no) {
        r.verdict = no.verdict;
        r.reason = std::move(no.why);
        return r;
    };
    if (raw_value.size() > kTraceMaxInput) return refuse({TraceVerdict::malformed, "header longer than 8192 bytes"});
    std::string compact;
    TagValues tags{};
    Fields f;
    if (auto no = unfold(strip_field_name(raw_value), compact)) return refuse(std::move(*no));
    if (auto no = split_tags(compact, tags)) return refuse(std::move(*no));
    if (auto no = decode_fields(tags, f)) return refuse(std::move(*no));
    r.key_id = f.kid;
    r.binding = f.kind;
    r.time = f.t;
    r.by = f.by;
    if (auto no = check_signature(f, *tags[kSig], binding, keys)) return refuse(std::move(*no));
    if (auto no = check_time(f.t, now, max_age, max_future)) return refuse(std::move(*no));
    move_source(f, r.source);
    r.verdict = TraceVerdict::ok;
    r.reason = "ok";
    return r;
}

}  // namespace xproxy
