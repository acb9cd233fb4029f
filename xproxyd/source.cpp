// source.cpp: trust decisions and source announcements; see source.hpp.
#include "source.hpp"

#include <openssl/crypto.h>

#include <xproxy/base/invariant.hpp>
#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::xproxyd {

namespace {
const char* const kDenied = "550 5.7.0 Error: insufficient authorization";
}

std::optional<Encoding> parse_encoding(std::string_view t) {
    if (t == "proxy-v2") return Encoding::proxy_v2;
    if (t == "proxy-v1") return Encoding::proxy_v1;
    if (t == "xclient") return Encoding::xclient;
    if (t == "xforward") return Encoding::xforward;
    if (t == "xproxyfrom") return Encoding::xproxyfrom;
    if (t == "xproxy") return Encoding::xproxy;
    if (t == "auto") return Encoding::automatic;
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
        case Encoding::xproxy: return "xproxy";
        case Encoding::automatic: return "auto";
        case Encoding::none: return "none";
    }
    XPROXY_UNREACHABLE();
}

SourceVerdict SourceTracker::xclient(std::string_view line) {
    if (!trusted_) return {SourceVerdict::Kind::refused, kDenied};
    auto p = smtp::parse_xclient(line);
    if (!p) return {SourceVerdict::Kind::bad, "501 5.5.4 Bad XCLIENT syntax: " + p.error()};
    smtp::apply(*p, session_);
    // Postfix's smtpd/smtpd.c xclient_cmd(): an XCLIENT without HELO resets the HELO name
    // (helo_reset()), without PROTO sets the protocol to SMTP, and without LOGIN (or with
    // LOGIN=[UNAVAILABLE]) drops the SASL login (smtpd_sasl_auth_reset()); NAME, ADDR,
    // PORT, DESTADDR and DESTPORT stay as they were. Then mail_reset() forgets XFORWARD.
    // Postfix keeps the connection's TLS ("TLS session information may not be reset",
    // XCLIENT_README); here the TLS the upstream negotiated with us describes the upstream,
    // not the client it names, so the client's TLS is unknown. XCLIENT carries no session
    // id or time: the id is this session's own, the time unknown.
    if (!p->helo) session_.helo.clear();
    if (!p->proto) session_.protocol = "SMTP";
    if (!p->login) session_.login.clear();
    helo_from_ehlo_ = !p->helo;
    proto_from_ehlo_ = !p->proto;
    session_.tls = TlsInfo{};
    session_.session_id = peer_.session_id;
    session_.time = peer_.time;
    overridden_ = true;
    xforward_.reset();
    xproxy_.reset();
    return {SourceVerdict::Kind::accepted, {}};
}

SourceVerdict SourceTracker::xforward(std::string_view line) {
    if (!trusted_) return {SourceVerdict::Kind::refused, kDenied};
    auto p = smtp::parse_xforward(line);
    if (!p) return {SourceVerdict::Kind::bad, "501 5.5.4 Bad XFORWARD syntax: " + p.error()};
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
    // Everything comes from the command (no TLS, login or HELO of anyone else); only the
    // address the client connected to is ours.
    SourceInfo next = smtp::to_source_info(*from);
    next.server = session_.server;
    if (next.session_id.empty()) next.session_id = peer_.session_id;
    session_ = next;
    overridden_ = true;
    helo_from_ehlo_ = proto_from_ehlo_ = false;
    xforward_.reset();
    return {SourceVerdict::Kind::accepted, "250 2.0.0 Ok"};
}

SourceInfo SourceTracker::effective() const {
    if (!xforward_) return session_;
    const smtp::Xforward& x = *xforward_;
    // Postfix's smtpd.h: "Don't mix information from the current SMTP session with
    // forwarded information from an up-stream session". An XFORWARD with any client
    // attribute (NAME, ADDR, PORT, PROTO, HELO) describes the client entirely: what it
    // leaves out is unknown, never the session's (the upstream's own address, HELO, TLS or
    // login). One with only IDENT or SOURCE leaves the session's client as it is. IDENT
    // is the upstream's id; without it, this session's own (FORWARD_IDENT() falls back to
    // the queue id), so an announcement that needs an id always has one.
    const bool client = x.name || x.addr || x.port || x.proto || x.helo;
    SourceInfo f;
    if (client) {
        f.server = session_.server;
        f.session_id = peer_.session_id;
    } else {
        f = session_;
    }
    smtp::apply(x, f);  // IDENT=[UNAVAILABLE] clears the id: fall back as without IDENT
    if (f.session_id.empty()) f.session_id = client ? peer_.session_id : session_.session_id;
    return f;
}

void SourceTracker::ehlo(const std::string& name, bool esmtp) {
    // Postfix's helo_cmd()/ehlo_cmd(): mail_reset() forgets XFORWARD; EHLO makes the
    // protocol ESMTP, HELO leaves SMTP or ESMTP as it is.
    end_transaction();
    peer_.helo = name;
    if (esmtp) peer_.protocol = !peer_.tls.active() ? "ESMTP" : peer_.login.empty() ? "ESMTPS" : "ESMTPSA";
    if (!overridden_) {
        session_.helo = peer_.helo;
        session_.protocol = peer_.protocol;
        return;
    }
    if (helo_from_ehlo_) session_.helo = name;
    if (proto_from_ehlo_ && esmtp) session_.protocol = "ESMTP";
}

void SourceTracker::set_peer_tls(const TlsInfo& tls) {
    // RFC 3207 4.2: what the client said before the handshake is forgotten. An XCLIENT
    // or XPROXYFROM sent in plain text may come from an on-path attacker, not from the
    // trusted upstream: it must not name the client of the protected session.
    end_transaction();
    peer_ = initial_;
    peer_.tls = tls;
    session_ = peer_;
    overridden_ = false;
    helo_from_ehlo_ = proto_from_ehlo_ = false;
}

void SourceTracker::authenticated(const std::string& login) {
    peer_.login = login;
    peer_.protocol = "ESMTPSA";
    if (!overridden_) {
        session_.login = login;
        session_.protocol = peer_.protocol;
    }
}

namespace {

void proxy_v2_header(const SourceInfo& info, const ProxySigning* sign, Announcement& a) {
    pp::EncodeOptions opt;
    opt.xproxy_tlvs = true;
    opt.ssl = info.tls.active();
    if (sign) {
        opt.hmac_key.assign(sign->key);
        opt.hmac_key_id = sign->key_id;
        opt.hmac_time = sign->now;
    }
    a.header = pp::encode_v2(info, opt);
    // The copy of the key made for the encoder does not outlive it.
    OPENSSL_cleanse(opt.hmac_key.data(), opt.hmac_key.capacity());
    if (a.header.empty()) a.error = "PROXY v2 header too large";
}

void xclient_lines(const SourceInfo& info, const smtp::Advertised& advertised, Announcement& a) {
    // Postfix keeps, over one connection, whatever an XCLIENT does not name: its
    // reverse name (set by NAME only when the name is known, else from its own
    // lookup of xproxyd) and DESTADDR/DESTPORT. So both are always sent, as
    // [UNAVAILABLE] when unknown, so that no client inherits another's or
    // xproxyd's.
    smtp::Xclient x = smtp::xclient_from(info, advertised);
    auto wanted = [&](const char* n) { return !advertised || advertised->count(n) > 0; };
    if (x.name && wanted("REVERSE_NAME")) x.reverse_name = *x.name;
    if (!info.server && wanted("DESTADDR")) x.destaddr = smtp::AddrField::unavailable();
    if (!info.server && wanted("DESTPORT")) x.destport = smtp::PortField::unavailable();
    auto enc = smtp::encode(x);
    if (!enc) a.error = "XCLIENT: " + enc.error;
    else a.lines = enc.lines;
}

void xforward_lines(const SourceInfo& info, const smtp::Advertised& advertised, Announcement& a) {
    auto enc = smtp::encode_xforward(info, advertised);
    if (!enc) a.error = "XFORWARD: " + enc.error;
    else a.lines = enc.lines;
}

void xproxyfrom_lines(const SourceInfo& info, Announcement& a) {
    if (!info.client) return;  // unknown client: nothing to announce
    auto from = smtp::xproxyfrom_from(info);
    if (!from) {
        a.error = "XPROXYFROM: " + from.error();
        return;
    }
    // HELO, LOGIN and PROTO are optional: one that cannot be sent is left out
    // rather than making the message undeliverable.
    for (std::string* v : {&from->helo, &from->login, &from->proto})
        if (v->find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) v->clear();
    auto enc = smtp::encode(*from);
    if (!enc) {
        from->helo.clear();
        from->login.clear();
        from->proto.clear();
        enc = smtp::encode(*from);
    }
    if (!enc) a.error = "XPROXYFROM: " + enc.error;
    else a.lines = enc.lines;
}

// XPROXY SID IP PORT DOMAIN [LOGIN]: DOMAIN is the client's HELO, else its address literal.
void xproxy_lines(const SourceInfo& info, Announcement& a) {
    if (!info.client) return;  // unknown client: nothing to announce
    smtp::Xproxy x;
    x.sid = info.session_id;
    x.source = *info.client;
    x.domain = info.helo;
    if (x.domain.empty() || x.domain.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos)
        x.domain = "[" + info.client->addr.normalized().to_mta_string() + "]";
    x.login = info.login;
    auto enc = smtp::encode(x);
    if (!enc) a.error = "XPROXY: " + enc.error;
    else a.lines = enc.lines;
}

}  // namespace

Announcement announce(Encoding e, const SourceInfo& info, const smtp::Advertised& advertised,
                      const ProxySigning* sign) {
    Announcement a;
    switch (e) {
        case Encoding::proxy_v2: proxy_v2_header(info, sign, a); break;
        case Encoding::proxy_v1: a.header = pp::encode_v1(info.client, info.server); break;
        case Encoding::xclient: xclient_lines(info, advertised, a); break;
        case Encoding::xforward: xforward_lines(info, advertised, a); break;
        case Encoding::xproxyfrom: xproxyfrom_lines(info, a); break;
        case Encoding::xproxy: xproxy_lines(info, a); break;
        case Encoding::automatic:  // chosen after EHLO (Downstream)
        case Encoding::none: break;
    }
    return a;
}

std::string identity(Encoding e, const SourceInfo& info) {
    switch (e) {
        case Encoding::proxy_v2:
        case Encoding::proxy_v1:
        case Encoding::xclient:
        case Encoding::xproxyfrom:
        case Encoding::xproxy:
        case Encoding::automatic: {
            // auto binds the connection as XCLIENT and XPROXY do: to the whole source.
            auto a = announce(e == Encoding::automatic ? Encoding::xclient : e, info);
            std::string id = a.header;
            for (const auto& l : a.lines) id += l;
            return id.empty() ? a.error : id;
        }
        case Encoding::xforward:
        case Encoding::none: return {};
    }
    XPROXY_UNREACHABLE();
}

}  // namespace xproxy::xproxyd
