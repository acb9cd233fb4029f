// proxy_source_info.cpp: what a decoded PROXY header says about the original client, as
// a SourceInfo: the addresses, TLS from the SSL TLV and our HELO/LOGIN/SESSION_ID TLVs.
#include <string>

#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::pp {

namespace {

std::string text(std::span<const std::uint8_t> v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

// The SSL TLV value: client (1), verify (4), sub-TLVs (validated by the decoder).
void read_ssl(std::span<const std::uint8_t> v, TlsInfo& tls) {
    if (v.size() < 5 || !(v[0] & PP2_CLIENT_SSL)) return;
    tls.version = "unknown";
    for_each_tlv(v.subspan(5), [&](const TlvView& t) {
        switch (t.type) {
            case PP2_SUBTYPE_SSL_VERSION:
                if (!t.value.empty()) tls.version = text(t.value);
                break;
            case PP2_SUBTYPE_SSL_CIPHER: tls.cipher = text(t.value); break;
            case PP2_SUBTYPE_SSL_CN: tls.peer_subject = "CN=" + text(t.value); break;
            default: break;
        }
    });
}

}  // namespace

void to_source_info(const Header& h, SourceInfo& out) {
    out.client.reset();
    out.server.reset();
    out.tls = TlsInfo{};
    out.helo.clear();
    out.login.clear();
    out.session_id.clear();
    if (h.has_addresses) {
        out.client = h.source;
        out.server = h.destination;
    }
    for_each_tlv(h.tlv_bytes, [&](const TlvView& t) {
        switch (t.type) {
            case PP2_TYPE_SSL: read_ssl(t.value, out.tls); break;
            case PP2_TYPE_XPROXY_HELO: out.helo = text(t.value); break;
            case PP2_TYPE_XPROXY_LOGIN: out.login = text(t.value); break;
            case PP2_TYPE_XPROXY_SESSION_ID: out.session_id = text(t.value); break;
            default: break;
        }
    });
}

}  // namespace xproxy::pp
