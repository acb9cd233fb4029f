// downstream.cpp: connection set-up and source announcement towards a downstream.
#include "downstream.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>

namespace xproxy::xproxyd {

namespace {

// Raw bytes, at most 120 of the reply's text: the log line that shows it escapes it.
std::string first_line(const Reply& r) {
    if (r.failed()) return r.error;
    return std::to_string(r.code) + " " + (r.lines.empty() ? std::string() : r.lines[0].substr(0, 120));
}

// A HELO name that can be sent as an EHLO argument: printable ASCII, no space.
std::string usable_helo(const std::string& h) {
    if (h.empty() || h.size() > 255) return {};
    for (char c : h)
        if (c <= ' ' || c > '~') return {};
    return h;
}

smtp::Advertised advertised(const smtp::EhloKeywords& k, const char* kw) {
    const std::string* p = k.get(kw);
    if (!p) return std::nullopt;
    return smtp::parse_ehlo_keyword(*p);
}

// A downstream whose XCLIENT does not take ADDR and PORT, or whose XFORWARD does not take
// ADDR (what Postfix's smtpd always advertises; smtp-sink's XFORWARD has no PORT) would
// keep xproxyd's own address (port) as the client's: it cannot carry the source and is
// treated as a failed destination. Empty when it can.
std::string missing_client_attributes(const smtp::Advertised& adv, const char* verb) {
    const bool xclient = std::string_view(verb) == "XCLIENT";
    std::string missing;
    for (const char* a : {"ADDR", "PORT"})
        if (adv && !adv->count(a) && (xclient || std::string_view(a) == "ADDR"))
            missing += std::string(missing.empty() ? "" : " ") + a;
    if (missing.empty()) return {};
    return std::string(verb) + " does not take " + missing + ": the client would be xproxyd";
}

}  // namespace

void Downstream::route(std::vector<Destination> dests, const Egress* egress, const RouteTls& tls) {
    close();
    dests_ = std::move(dests);
    egress_ = egress;
    route_tls_ = tls;
    index_ = 0;
}

void Downstream::close() {
    if (conn_) conn_->close();
    conn_.reset();
    ehlo_ = {};
    identity_.clear();
    dirty = false;
    verified_ = false;
}

std::optional<PooledConnection> Downstream::detach(bool live) {
    if (!conn_ || dirty || conn_->tls() || conn_->buffered() > 0) return std::nullopt;
    PooledConnection p;
    p.index = index_;
    p.identity = identity_;
    p.ehlo = ehlo_;
    if (live) {
        p.conn = std::move(conn_);
        close();
        return p;
    }
    error_code ec;
    p.fd.reset(conn_->socket().release(ec));
    if (ec) return std::nullopt;
    conn_.reset();
    close();
    return p;
}

bool Downstream::adopt(PooledConnection p) {
    close();
    if (!p.conn) {  // parked as a descriptor: register it with this session's executor
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(p.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
        error_code ec;
        asio::ip::tcp::socket s(ex_);
        s.assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), p.fd.get(), ec);
        if (ec) return false;               // the descriptor closes with p
        static_cast<void>(p.fd.release());  // the socket owns it now
        p.conn = std::make_shared<Conn>(std::move(s));
    }
    conn_ = std::move(p.conn);
    index_ = p.index;
    identity_ = std::move(p.identity);
    ehlo_ = std::move(p.ehlo);
    return true;
}

asio::awaitable<Reply> Downstream::command(std::string_view line) {
    if (!conn_) co_return Reply{0, {}, "not connected"};
    error_code ec;
    co_await conn_->write(line, cfg_->command_timeout, ec);
    if (ec) co_return Reply{0, {}, ec.message()};
    Reply r = co_await conn_->read_reply(cfg_->command_timeout);
    co_return r;
}

asio::awaitable<bool> Downstream::send(std::string_view data) {
    if (!conn_) co_return false;
    error_code ec;
    co_await conn_->write(data, cfg_->command_timeout, ec);
    co_return !ec;
}

namespace {

asio::awaitable<void> say_quit(std::shared_ptr<Conn> c) {
    error_code ec;
    co_await c->write("QUIT\r\n", std::chrono::seconds(2), ec);
    if (!ec) (void)co_await c->read_reply(std::chrono::seconds(2));
    c->close();
}

}  // namespace

void Downstream::quit_later() {
    if (!conn_) return;
    asio::co_spawn(ex_, say_quit(std::move(conn_)), asio::detached);
    close();
}

asio::awaitable<void> Downstream::quit() {
    if (conn_) {
        error_code ec;
        co_await conn_->write("QUIT\r\n", std::chrono::seconds(2), ec);
        if (!ec) (void)co_await conn_->read_reply(std::chrono::seconds(2));
    }
    close();
}

asio::awaitable<bool> Downstream::ehlo(std::string& why, std::string name) {
    // Locals, not temporaries, across the suspension (GCC 12 miscompiles some temporaries
    // that live across co_await in a coroutine's return expression).
    const std::string& own = egress_ ? egress_->helo : cfg_->helo;
    const char* verb = route_tls_.force_helo ? "HELO" : "EHLO";
    const std::string line = verb + (" " + (name.empty() ? own : name)) + "\r\n";
    Reply r = co_await command(line);
    if (r.code != 250) {
        why = verb + (": " + first_line(r));
        co_return false;
    }
    ehlo_ = route_tls_.force_helo ? smtp::EhloKeywords{} : smtp::parse_ehlo(r.lines);
    ehlo_lines_.assign(r.lines.size() > 1 && !route_tls_.force_helo ? r.lines.begin() + 1 : r.lines.end(),
                       r.lines.end());
    co_return true;
}

asio::awaitable<bool> Downstream::send_lines(const std::vector<std::string>& lines, int want_class, std::string& why) {
    for (const auto& l : lines) {
        Reply r = co_await command(l);
        if (r.code / 100 != want_class) {
            why = l.substr(0, l.find(' ')) + ": " + first_line(r);
            co_return false;
        }
    }
    co_return true;
}

asio::awaitable<bool> Downstream::open(std::size_t index, const SourceInfo& src, const std::string& identity,
                                       std::string& why) {
    close();
    index_ = index;
    bind_failed_ = false;
    tls_failed_ = false;
    bool ok = co_await connect(why);
    if (ok) ok = co_await introduce(src, why);
    if (!ok) {
        close();
        co_return false;
    }
    identity_ = identity;
    co_return true;
}

asio::awaitable<bool> Downstream::connect(std::string& why) {
    const Destination& d = dests_[index_];
    error_code ec;
    auto addr = asio::ip::make_address(d.host, ec);
    if (ec) {
        why = "bad address";
        co_return false;
    }
    asio::ip::tcp::socket sock(ex_);
    if (egress_) {
        // Bound to the egress address before connecting; a failure is never replaced by
        // another source address (the transaction gets a 4xx instead).
        const bool v4 = egress_->address.is_v4();
        if (v4 != addr.is_v4()) {
            why = "egress " + egress_->name + " has no " + (addr.is_v4() ? "IPv4" : "IPv6") + " address";
            co_return false;
        }
        sock.open(v4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), ec);
        if (!ec) {
            const int one = 1;  // the port is chosen at connect(): many connections per address
            (void)::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            sock.bind(asio::ip::tcp::endpoint(asio::ip::make_address(egress_->address.to_string()), 0), ec);
        }
        if (ec) {
            why = "bind " + egress_->address.to_string() + " (egress " + egress_->name + "): " + ec.message();
            bind_failed_ = true;
            co_return false;
        }
    }
    conn_ = std::make_shared<Conn>(std::move(sock));
    co_await conn_->connect(asio::ip::tcp::endpoint(addr, d.port), cfg_->connect_timeout, ec);
    if (ec) {
        why = "connect: " + ec.message();
        co_return false;
    }
    co_return true;
}

asio::awaitable<bool> Downstream::introduce(const SourceInfo& src, std::string& why) {
    ProxySigning sign;
    if (cfg_->hmac_key) {
        sign.key = cfg_->hmac_key->view();
        sign.key_id = cfg_->hmac_key_id;
        sign.now = static_cast<std::int64_t>(std::time(nullptr));
    }
    Announcement a = announce(cfg_->encoding, src, std::nullopt, cfg_->hmac_key ? &sign : nullptr);
    if (!a.error.empty()) {
        why = a.error;
        co_return false;
    }
    if (!a.header.empty()) {
        error_code ec;
        co_await conn_->write(a.header, cfg_->command_timeout, ec);
        if (ec) {
            why = "PROXY header: " + ec.message();
            co_return false;
        }
    }
    Reply g = co_await conn_->read_reply(cfg_->command_timeout);
    if (g.code != 220) {
        why = "greeting: " + first_line(g);
        co_return false;
    }
    if (!co_await ehlo(why)) co_return false;
    if (route_tls_.mode.value_or(cfg_->tls) != TlsMode::none && !co_await starttls(why)) co_return false;
    const bool ok = co_await announce_source(src, a, why);
    co_return ok;
}

asio::awaitable<bool> Downstream::announce_source(const SourceInfo& src, const Announcement& a, std::string& why) {
    if (cfg_->encoding == Encoding::xclient || (cfg_->encoding == Encoding::automatic && !ehlo_.has("XPROXY"))) {
        if (cfg_->encoding == Encoding::automatic && !ehlo_.has("XCLIENT")) {
            why = "neither XPROXY nor XCLIENT offered (encoding=auto; smtpd_authorized_xclient_hosts?)";
            co_return false;
        }
        const bool ok = co_await send_xclient(src, why);
        co_return ok;
    }
    if (cfg_->encoding == Encoding::xproxy || cfg_->encoding == Encoding::automatic) {
        if (!ehlo_.has("XPROXY")) {
            why = "XPROXY not offered";
            co_return false;
        }
        Announcement x = announce(Encoding::xproxy, src);
        if (!x.error.empty()) {
            why = x.error;
            co_return false;
        }
        const bool ok = co_await send_lines(x.lines, 2, why);
        co_return ok;
    }
    if (cfg_->encoding == Encoding::xproxyfrom) {
        if (!ehlo_.has("XPROXYFROM")) {
            why = "XPROXYFROM not offered";
            co_return false;
        }
        const bool ok = co_await send_lines(a.lines, 2, why);
        co_return ok;
    }
    if (cfg_->encoding == Encoding::xforward) {
        if (!ehlo_.has("XFORWARD")) {
            why = "XFORWARD not offered";
            co_return false;
        }
        why = missing_client_attributes(advertised(ehlo_, "XFORWARD"), "XFORWARD");
        co_return why.empty();
    }
    co_return true;
}

asio::awaitable<bool> Downstream::starttls(std::string& why) {
    const TlsMode mode = route_tls_.mode.value_or(cfg_->tls);
    const bool must = mode != TlsMode::may;
    tls_failed_ = must;  // until the handshake is done
    if (!ehlo_.has("STARTTLS") || !tls_ctx_) {
        if (must)
            why = std::string("STARTTLS not offered and tls=") + to_string(mode) +
                  (route_tls_.mode ? " (asked for this route)" : "");
        co_return !must;
    }
    Reply r = co_await command("STARTTLS\r\n");
    if (r.code != 220) {
        if (must) why = "STARTTLS: " + first_line(r);
        co_return !must;
    }
    tls_failed_ = true;
    if (conn_->buffered() > 0) {
        // Bytes after the 220 came before the handshake, in plain text: read after it they
        // would pass for the downstream's protected replies (an on-path attacker's 250).
        why = "plain text after the 220 to STARTTLS (" + std::to_string(conn_->buffered()) +
              " bytes): injection, connection dropped";
        co_return false;
    }
    // The expected identity: the MX host name (outbound), else tls-name=, else the
    // destination's address (checked with verify).
    const Destination& dest = dests_[index_];
    const std::string peer = route_tls_.chain_only    ? std::string()
                             : !dest.name.empty()     ? dest.name
                             : cfg_->tls_name.empty() ? dest.host
                                                      : cfg_->tls_name;
    const bool verify = mode == TlsMode::verify;
    if (verify && route_tls_.chain_only) conn_->verify_chain_only();
    error_code ec;
    co_await conn_->handshake(*tls_ctx_, false, peer, verify, cfg_->command_timeout, ec);
    if (ec) {
        const std::string detail = conn_->verify_error();
        why = "TLS handshake: " + ec.message() + (detail.empty() ? "" : " (" + detail + ", expected " + peer + ")");
        co_return false;
    }
    verified_ = verify;
    tls_failed_ = false;
    const bool ok = co_await ehlo(why);
    co_return ok;
}

asio::awaitable<bool> Downstream::send_xclient(const SourceInfo& src, std::string& why) {
    auto adv = advertised(ehlo_, "XCLIENT");
    if (!adv) {
        why = "XCLIENT not offered (smtpd_authorized_xclient_hosts?)";
        co_return false;
    }
    why = missing_client_attributes(adv, "XCLIENT");
    if (!why.empty()) co_return false;
    Announcement x = announce(Encoding::xclient, src, adv);
    if (!x.error.empty()) {
        why = x.error;
        co_return false;
    }
    bool ok = co_await send_lines(x.lines, 2, why);
    // The EHLO after XCLIENT names the original client: Postfix's smtpd takes the HELO name
    // from the EHLO that follows, overriding XCLIENT HELO. Without a usable HELO it is the
    // client's address literal, never xproxyd's own name (which would become the client's).
    std::string helo = usable_helo(src.helo);
    if (helo.empty() && src.client) helo = "[" + src.client->addr.normalized().to_mta_string() + "]";
    if (ok) ok = co_await ehlo(why, helo);
    co_return ok;
}

asio::awaitable<bool> Downstream::reannounce(const SourceInfo& src, const std::string& identity, std::string& why) {
    if (!conn_ || dirty || cfg_->encoding != Encoding::xclient) co_return false;
    const bool ok = co_await send_xclient(src, why);
    if (!ok) {
        close();
        co_return false;
    }
    identity_ = identity;
    co_return true;
}

asio::awaitable<Reply> Downstream::mail(const SourceInfo& src, const std::string& mail_line, std::string& why) {
    if (cfg_->encoding != Encoding::xforward) {
        Reply r = co_await command(mail_line);
        co_return r;
    }
    Announcement a = announce(Encoding::xforward, src, advertised(ehlo_, "XFORWARD"));
    if (!a.error.empty()) {
        why = a.error;
        co_return Reply{0, {}, why};
    }
    if (!ehlo_.has("PIPELINING")) {
        if (!co_await send_lines(a.lines, 2, why)) co_return Reply{0, {}, why};
        Reply r = co_await command(mail_line);
        co_return r;
    }
    std::string batch;
    for (const auto& l : a.lines) batch += l;
    batch += mail_line;
    if (!co_await send(batch)) co_return Reply{0, {}, "write failed"};
    bool ok = true;
    for (std::size_t i = 0; i < a.lines.size(); ++i) {
        Reply r = co_await reply();
        if (r.code / 100 != 2 && ok) {
            why = "XFORWARD: " + first_line(r);
            ok = false;
        }
        if (r.failed()) co_return r;
    }
    Reply m = co_await reply();
    if (!ok) {
        // MAIL was sent after a refused XFORWARD: undo it, never send mail without its source.
        if (m.ok()) (void)co_await command("RSET\r\n");
        co_return Reply{0, {}, why};
    }
    co_return m;
}

}  // namespace xproxy::xproxyd
