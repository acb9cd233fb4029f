// callbacks.cpp: thin libmilter callbacks over Session (see callbacks.hpp). libmilter
// maps N connections onto M threads: all state lives in the Session reached through
// smfi_getpriv; xxfi_close may come without xxfi_connect and with NULL private data.
#include "callbacks.hpp"

#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ctime>
#include <string>

#include <xproxy/base/escape.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>

namespace xproxy::milter {

namespace {

std::shared_ptr<const Config> g_config;
bool g_no_reply_steps = false;

// The macros asked for in negotiate, per stage, and read after each callback.
char kConnectMacros[] =
    "j _ {daemon_name} {daemon_addr} {daemon_port} {client_addr} {client_port} {client_name} {client_ptr}";
char kHeloMacros[] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}";
char kMailMacros[] =
    "i r {auth_type} {auth_authen} {mail_addr} {tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}";
char kEomMacros[] = "i";
const char* const kAllMacros[] = {"j",
                                  "_",
                                  "{daemon_name}",
                                  "{daemon_addr}",
                                  "{daemon_port}",
                                  "{client_addr}",
                                  "{client_port}",
                                  "{client_name}",
                                  "{client_ptr}",
                                  "{tls_version}",
                                  "{cipher}",
                                  "{cipher_bits}",
                                  "{cert_subject}",
                                  "{cert_issuer}",
                                  "i",
                                  "{auth_type}",
                                  "{auth_authen}",
                                  "{mail_addr}",
                                  "r",
                                  "{r}"};

// What smfi_setpriv holds: the Session and the protocol steps negotiated for it. Steps
// marked "no reply" (SMFIP_NR_*) save the MTA a round trip per callback; they are asked
// for only where the callback never refuses.
const metrics::ListenerMetrics& connection_metrics() {
    static const metrics::ListenerMetrics m = metrics::listener_metrics("xproxy_milter", "milter");
    return m;
}

struct Conn {
    explicit Conn(std::shared_ptr<const Config> c) : session(std::move(c)) {}
    metrics::SessionCount counted{connection_metrics()};
    Session session;
    unsigned long steps = 0;

    sfsistat cont(unsigned long nr_flag) const { return (steps & nr_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE; }
};

Conn* conn_of(SMFICTX* ctx) { return static_cast<Conn*>(smfi_getpriv(ctx)); }

void read_macros(SMFICTX* ctx, Session& s) {
    for (const char* name : kAllMacros) {
        const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
        if (v) s.set_macro(name, v);
    }
}

// smfi_setreply text: printable ASCII without '%' (libmilter passes it on as a format).
std::string reply_text(const std::string& in) {
    std::string out;
    for (char c : in) out += (c >= 0x20 && c < 0x7f && c != '%') ? c : '?';
    return out;
}

sfsistat map_reply(SMFICTX* ctx, const Reply& r) {
    if (r.is_cont()) return SMFIS_CONTINUE;
    std::string text = reply_text(r.text);
    smfi_setreply(ctx, const_cast<char*>(r.code.c_str()), const_cast<char*>(r.status.c_str()),
                  const_cast<char*>(text.c_str()));
    return r.kind == Reply::Kind::reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

template <typename F>
sfsistat guarded(const char* where, SMFICTX* ctx, F&& f) {
    try {
        Conn* c = conn_of(ctx);
        if (!c) {
            log::warning("event=no_session callback=%s", where);
            return SMFIS_TEMPFAIL;
        }
        return f(*c, c->session);
    } catch (const std::exception& e) {
        log::error("event=internal_error callback=%s error=\"%s\"", where, escape_value(e.what()).c_str());
    } catch (...) {
        log::error("event=internal_error callback=%s", where);
    }
    return SMFIS_TEMPFAIL;
}

sfsistat on_negotiate_unguarded(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long, unsigned long,
                                unsigned long* pf0, unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) {
    unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
    if ((f0 & want) != want) {
        log::error("event=negotiate_failed reason=\"MTA does not offer header changes\"");
        return SMFIS_REJECT;
    }
    Conn* c = conn_of(ctx);
    if (!c) {
        c = new Conn(g_config);
        smfi_setpriv(ctx, c);
    }
    // Quarantine (a held recipient's message to the MTA's hold queue) when the MTA offers
    // it, as Postfix and Sendmail do; without it a message to hold is deferred (on_eom).
    *pf0 = want | (f0 & (SMFIF_SETSYMLIST | SMFIF_QUARANTINE));
    // Body, unknown commands, DATA and the end of headers are not needed (each step the MTA
    // skips saves it a command, and the end of headers a round trip); connect, HELO and
    // headers never get refused, and without a policy neither does MAIL, and RCPT is not
    // needed at all.
    unsigned long steps = SMFIP_NOBODY | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOEOH;
    if (!g_config->policy.any()) steps |= SMFIP_NORCPT;
    if (g_no_reply_steps) {
        steps |= SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_HDR;
        if (!g_config->policy.any()) steps |= SMFIP_NR_MAIL;
    }
    *pf1 = f1 & steps;
    c->steps = *pf1;
    *pf2 = 0;
    *pf3 = 0;
    if (f0 & SMFIF_SETSYMLIST) {
        smfi_setsymlist(ctx, SMFIM_CONNECT, kConnectMacros);
        smfi_setsymlist(ctx, SMFIM_HELO, kHeloMacros);
        smfi_setsymlist(ctx, SMFIM_ENVFROM, kMailMacros);
        smfi_setsymlist(ctx, SMFIM_EOM, kEomMacros);
    }
    return SMFIS_CONTINUE;
}

sfsistat on_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
                      unsigned long* pf0, unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) {
    try {
        return on_negotiate_unguarded(ctx, f0, f1, f2, f3, pf0, pf1, pf2, pf3);
    } catch (...) {
        log::error("event=internal_error callback=negotiate");
        return SMFIS_TEMPFAIL;
    }
}

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* hostaddr) {
    try {
        Conn* c = conn_of(ctx);  // made in negotiate; an MTA without negotiation gets one here
        if (!c) {
            c = new Conn(g_config);
            smfi_setpriv(ctx, c);
        }
        std::optional<Endpoint> peer;
        if (hostaddr) {
            unsigned len = hostaddr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
            peer = Endpoint::from_sockaddr(hostaddr, len);
        }
        read_macros(ctx, c->session);
        c->session.connect(hostname ? hostname : "", peer);
        return c->cont(SMFIP_NR_CONN);
    } catch (...) {
        log::error("event=internal_error callback=connect");
        return SMFIS_TEMPFAIL;
    }
}

sfsistat on_helo(SMFICTX* ctx, char* name) {
    return guarded("helo", ctx, [&](Conn& c, Session& s) {
        read_macros(ctx, s);
        s.helo(name ? name : "");
        return c.cont(SMFIP_NR_HELO);
    });
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    return guarded("envfrom", ctx, [&](Conn& c, Session& s) {
        read_macros(ctx, s);
        sfsistat rc = map_reply(ctx, s.mail_from(argv && argv[0] ? argv[0] : ""));
        if (rc != SMFIS_CONTINUE) {
            log::info("%s", s.summary().c_str());
            return rc;
        }
        return c.cont(SMFIP_NR_MAIL);
    });
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
    return guarded("envrcpt", ctx, [&](Conn&, Session& s) {
        sfsistat rc = map_reply(ctx, s.rcpt_to(argv && argv[0] ? argv[0] : ""));
        if (rc != SMFIS_CONTINUE) log::info("%s", s.summary().c_str());
        return rc;
    });
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    return guarded("header", ctx, [&](Conn& c, Session& s) {
        s.header(name ? name : "", value ? value : "");
        return c.cont(SMFIP_NR_HDR);
    });
}

sfsistat on_eom(SMFICTX* ctx) {
    return guarded("eom", ctx, [&](Conn&, Session& s) {
        read_macros(ctx, s);
        EomResult r = s.end_of_message(static_cast<std::int64_t>(std::time(nullptr)));
        sfsistat rc = SMFIS_CONTINUE;
        for (const auto& e : r.edits) {
            int ok = e.kind == HeaderEdit::Kind::remove
                         ? smfi_chgheader(ctx, const_cast<char*>(e.name.c_str()), e.index, nullptr)
                         : smfi_insheader(ctx, e.index, const_cast<char*>(e.name.c_str()),
                                          const_cast<char*>(e.value.c_str()));
            if (ok != MI_SUCCESS) {
                log::error("%s event=header_edit_failed", s.summary().c_str());
                smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.3.0"),
                              const_cast<char*>("Cannot edit the header"));
                rc = SMFIS_TEMPFAIL;
                break;
            }
        }
        if (rc == SMFIS_CONTINUE && !r.hold.empty()) {
            // A message that should wait on hold is never delivered instead: an MTA that
            // cannot hold it (no quarantine offered in negotiate) gets a tempfail.
            std::string reason = reply_text(r.hold);
            if (smfi_quarantine(ctx, reason.data()) != MI_SUCCESS) {
                log::error("%s event=hold_failed", s.summary().c_str());
                smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.3.0"),
                              const_cast<char*>("Cannot hold the message"));
                rc = SMFIS_TEMPFAIL;
            }
        }
        if (rc == SMFIS_CONTINUE) rc = map_reply(ctx, r.reply);
        log::info("%s", s.summary().c_str());
        s.abort();
        return rc;
    });
}

sfsistat on_abort(SMFICTX* ctx) {
    if (Conn* c = conn_of(ctx)) c->session.abort();
    return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) {
    delete conn_of(ctx);  // NULL when neither negotiate nor connect ran
    smfi_setpriv(ctx, nullptr);
    return SMFIS_CONTINUE;
}

}  // namespace

bool register_filter(std::shared_ptr<const Config> config, bool no_reply_steps) {
    g_config = std::move(config);
    g_no_reply_steps = no_reply_steps;
    static smfiDesc desc{};
    desc.xxfi_name = const_cast<char*>("xproxy-milter");
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
    desc.xxfi_connect = on_connect;
    desc.xxfi_helo = on_helo;
    desc.xxfi_envfrom = on_envfrom;
    desc.xxfi_envrcpt = on_envrcpt;
    desc.xxfi_header = on_header;
    desc.xxfi_eoh = nullptr;
    desc.xxfi_body = nullptr;
    desc.xxfi_eom = on_eom;
    desc.xxfi_abort = on_abort;
    desc.xxfi_close = on_close;
    desc.xxfi_unknown = nullptr;
    desc.xxfi_data = nullptr;
    desc.xxfi_negotiate = on_negotiate;
    return smfi_register(desc) == MI_SUCCESS;
}

}  // namespace xproxy::milter
