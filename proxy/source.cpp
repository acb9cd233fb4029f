// source.cpp: trust decisions and source announcements; see source.hpp.
#include "source.hpp"

#include "xproxy/proxy_protocol.hpp"

namespace xproxy::proxyd {

namespace {
const char* const kDenied = "550 5.7.0 Error: insufficient authorization";
}

std::optional<Encoding> parse_encoding(std::string_view t) {
    if (t == "proxy-v2") return Encoding::proxy_v2;
    if (t == "proxy-v1") return Encoding::proxy_v1;
    if (t == "xclient") return Encoding::xclient;
    if (t == "xforward") return Encoding::xforward;
    if (t == "xproxyfrom") return Encoding::xproxyfrom;
    if (t == "none") return Encoding::none;
    return std::nullopt;
}

const char* to_string(Encoding e) {
    switch (e) {
        case Encoding::proxy_v2: return "proxy-v2";
        case Encoding::proxy_v1: return "proxy-v1";
        case Encoding::xclient: return "xclient";
        case Encoding::xforward: return "xforward";
        case Encoding::xproxyfrom: return "xproxyfrom";
        case Encoding::none: return "none";
    }
    return "none";
}

SourceVerdict SourceTracker::xclient(std::string_view line) {
    if (!trusted_) return {SourceVerdict::Kind::refused, kDenied};
    auto p = smtp::parse_xclient(line);
    if (!p) return {SourceVerdict::Kind::bad, "501 5.5.4 Bad XCLIENT syntax: " + p.error};
    smtp::apply(*p, session_);
    overridden_ = true;
    return {SourceVerdict::Kind::accepted, {}};
}

SourceVerdict SourceTracker::xforward(std::string_view line) {
    if (!trusted_) return {SourceVerdict::Kind::refused, kDenied};
    auto p = smtp::parse_xforward(line);
    if (!p) return {SourceVerdict::Kind::bad, "501 5.5.4 Bad XFORWARD syntax: " + p.error};
    if (!xforward_) xforward_ = smtp::Xforward{};
    smtp::merge(*xforward_, *p);
    return {SourceVerdict::Kind::accepted, "250 2.0.0 Ok"};
}

SourceVerdict SourceTracker::xproxyfrom(std::string_view line) {
    if (!trusted_) return {SourceVerdict::Kind::refused, kDenied};
    auto r = xproxy_.add(line);
    if (r.need_more()) return {SourceVerdict::Kind::need_more, "250 2.0.0 Ok"};
    if (r.invalid()) return {SourceVerdict::Kind::bad, "501 5.5.4 Bad XPROXYFROM: " + xproxy_.error()};
    const auto* from = std::get_if<smtp::XproxyFrom>(&xproxy_.command());
    if (!from) return {SourceVerdict::Kind::bad, "501 5.5.4 Bad XPROXYFROM: wrong command"};
    SourceInfo next = smtp::to_source_info(*from);
    next.server = session_.server;
    session_ = next;
    overridden_ = true;
    return {SourceVerdict::Kind::accepted, "250 2.0.0 Ok"};
}

SourceInfo SourceTracker::effective() const {
    SourceInfo s = session_;
    if (xforward_) {
        // XFORWARD describes the original client; what it does not name is unknown
        // rather than inherited from the upstream MTA's own connection.
        SourceInfo f;
        f.server = s.server;
        smtp::apply(*xforward_, f);
        if (!xforward_->addr) f.client = s.client;
        return f;
    }
    return s;
}

void SourceTracker::set_peer_tls(const TlsInfo& tls) {
    peer_.tls = tls;
    if (!overridden_) session_.tls = tls;
}

void SourceTracker::set_peer_helo(const std::string& helo) {
    peer_.helo = helo;
    if (!overridden_) session_.helo = helo;
}

Announcement announce(Encoding e, const SourceInfo& info, const smtp::Advertised& advertised) {
    Announcement a;
    switch (e) {
        case Encoding::proxy_v2: {
            proxy::EncodeOptions opt;
            opt.xproxy_tlvs = true;
            opt.ssl = info.tls.active();
            a.header = proxy::encode_v2(info, opt);
            if (a.header.empty()) a.error = "PROXY v2 header too large";
            break;
        }
        case Encoding::proxy_v1:
            a.header = proxy::encode_v1(info.client, info.server);
            break;
        case Encoding::xclient: {
            auto enc = smtp::encode_xclient(info, advertised);
            if (!enc) a.error = "XCLIENT: " + enc.error;
            else a.lines = enc.lines;
            break;
        }
        case Encoding::xforward: {
            auto enc = smtp::encode_xforward(info, advertised);
            if (!enc) a.error = "XFORWARD: " + enc.error;
            else a.lines = enc.lines;
            break;
        }
        case Encoding::xproxyfrom: {
            auto from = smtp::xproxyfrom_from(info);
            if (!from) {
                a.error = "XPROXYFROM: " + from.error;
                break;
            }
            auto enc = smtp::encode(*from);
            if (!enc) a.error = "XPROXYFROM: " + enc.error;
            else a.lines = enc.lines;
            break;
        }
        case Encoding::none:
            break;
    }
    return a;
}

std::string identity(Encoding e, const SourceInfo& info) {
    switch (e) {
        case Encoding::proxy_v2:
        case Encoding::proxy_v1:
        case Encoding::xclient:
        case Encoding::xproxyfrom: {
            auto a = announce(e, info);
            std::string id = a.header;
            for (const auto& l : a.lines) id += l;
            return id.empty() ? a.error : id;
        }
        case Encoding::xforward:
        case Encoding::none:
            return {};
    }
    return {};
}

}  // namespace xproxy::proxyd
