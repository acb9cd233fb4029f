// session.cpp: the front-side SMTP state machine: greeting, the command loop with its
// bounds, the dispatch through the CommandTable, and the commands the session answers
// itself (EHLO/HELO, STARTTLS, the source commands, RSET, NOOP, QUIT, VRFY, HELP) or
// checks before its TransactionRelay (MAIL, RCPT), a DataRelay (DATA) or its BdatRelay
// (BDAT) takes over.
#include "session.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

#include <openssl/crypto.h>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/log.hpp>

#include "data_relay.hpp"
#include "splice.hpp"

namespace xproxy::xproxyd {

namespace {

bool has_8bit(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 128) return true;
    return false;
}

}  // namespace

Session::Session(std::shared_ptr<Conn> conn, const Listener& listener, Shared& sh)
    : cfg_(sh.cfg),
      sh_(sh),
      listener_(listener),
      front_(std::move(conn), sh.cfg.client_timeout),
      relay_(front_, sh, sh.cfg.downstreams[listener.downstream], sid_, listener.pool),
      splice_(listener.splice) {}

// The session id, the TCP peer as the first source, and the greeting.
void Session::start() {
    char idbuf[32];
    std::snprintf(idbuf, sizeof idbuf, "%08llX%06llX", static_cast<unsigned long long>(std::time(nullptr)),
                  static_cast<unsigned long long>(++sh_.sessions & 0xFFFFFF));
    sid_ = idbuf;
    error_code ec;
    SourceInfo peer;
    auto rep = front_.conn().socket().remote_endpoint(ec);
    if (!ec) peer.client = Endpoint::from_sockaddr(rep.data(), static_cast<unsigned>(rep.size()));
    auto lep = front_.conn().socket().local_endpoint(ec);
    if (!ec) peer.server = Endpoint::from_sockaddr(lep.data(), static_cast<unsigned>(lep.size()));
    peer.protocol = "SMTP";
    peer.session_id = sid_;
    bool trusted = peer.client && cfg_.trusted.contains(peer.client->addr);
    src_.emplace(peer, trusted);
    if (log::enabled(log::Level::info))
        log::info("event=connect sid=%s client=%s trusted=%s downstream=%s", sid_.c_str(),
                  endpoint_text(peer.client).c_str(), trusted ? "yes" : "no",
                  relay_.downstream().config().name.c_str());
    front_.reply("220 " + cfg_.hostname + " ESMTP xproxyd");
}

asio::awaitable<void> Session::run() {
    if (listener_.implicit_tls) {
        // Port 465 (RFC 8314): TLS from the first byte, before the greeting.
        XPROXY_INVARIANT(sh_.front_tls);  // checked at start-up
        error_code ec;
        const std::string no_peer_name;  // a local: no temporary across the suspension
        co_await front_.conn().handshake(*sh_.front_tls, true, no_peer_name, false, cfg_.client_timeout, ec);
        if (ec) {
            error_code ignored;
            auto rep = front_.conn().socket().remote_endpoint(ignored);
            std::optional<Endpoint> peer;
            if (!ignored) peer = Endpoint::from_sockaddr(rep.data(), static_cast<unsigned>(rep.size()));
            log::warning("event=tls_failed client=%s error=\"%s\" mode=implicit", endpoint_text(peer).c_str(),
                         ec.message().c_str());
            front_.conn().close();
            co_return;
        }
    }
    start();
    if (front_.conn().tls()) src_->set_peer_tls(front_.conn().tls_info());
    const char* why = co_await serve_commands();
    bdat_.reset();
    co_await relay_.release_downstream();
    front_.conn().close();
    log::info("event=disconnect sid=%s reason=\"%s\" transactions=%u commands=%u", sid_.c_str(), why,
              relay_.transactions(), commands_);
}

asio::awaitable<const char*> Session::serve_commands() {
    for (;;) {
        if (!front_.conn().has_line() && !co_await front_.flush()) co_return "write error";
        std::string line;
        bool too_long = false;
        error_code ec;
        if (!co_await front_.conn().read_line(line, cfg_.max_line, cfg_.client_timeout, ec, &too_long)) {
            if (ec != asio::error::timed_out) co_return ec == asio::error::eof ? "client disconnected" : "read error";
            co_await close_with("4.4.2", "timeout exceeded");
            co_return "client timeout";
        }
        if (++commands_ > cfg_.max_commands) {
            co_await close_with("4.7.0", "too many commands");
            co_return "too many commands";
        }
        if (too_long && looks_like_bdat(line)) {  // its chunk's size is unknown: never read it as commands
            co_await refuse_unreadable_bdat(line);
            co_return "BDAT chunk size unknown";
        }
        if (too_long) {
            src_->abandon_sequence();
            front_.reply("500 5.5.2 Error: line too long");
            log::warning("event=line_too_long sid=%s", sid_.c_str());
            if (syntax_error()) continue;
            co_await close_with("4.7.0", "too many errors");
            co_return "too many errors";
        }
        if (!co_await dispatch(line)) {
            co_await front_.flush();
            co_return closing_ ? "client quit" : "session ended";
        }
        if (errors_ >= cfg_.max_errors) {
            co_await close_with("4.7.0", "too many errors");
            co_return "too many errors";
        }
    }
}

asio::awaitable<void> Session::close_with(const char* code, const char* text) {
    front_.reply(std::string("421 ") + code + " " + cfg_.hostname + " Error: " + text);
    co_await front_.flush();
}

FrontState Session::state() const {
    const Transaction& t = relay_.transaction();
    return FrontState{.helo = !helo_.empty(),
                      .transaction = t.active,
                      .recipients = !t.rcpt_lines.empty(),
                      .tls_offered = sh_.front_tls != nullptr,
                      .tls = front_.conn().tls(),
                      .submission = listener_.submission,
                      .authenticated = !login_.empty()};
}

// "BDAT" followed by a space, a tab or a NUL, in any case: a line that announces a chunk
// even when the command table cannot take it (too long, a NUL, a tab as separator).
bool Session::looks_like_bdat(std::string_view line) {
    return line.size() > 4 && istarts_with(line, "BDAT") && (line[4] == ' ' || line[4] == '\t' || line[4] == '\0');
}

asio::awaitable<void> Session::refuse_unreadable_bdat(std::string line) {
    log::warning("event=bdat_unknown_size sid=%s argument=\"%s\"", sid_.c_str(),
                 escape_value(std::string_view(line).substr(std::min<std::size_t>(line.size(), 5)), 64).c_str());
    front_.reply("501 5.5.4 Syntax: BDAT count [LAST]");
    co_await close_with("4.5.0", "BDAT chunk size unknown, closing");
}

asio::awaitable<bool> Session::dispatch(const std::string& line) {
    if (looks_like_bdat(line) && (line.find('\0') != std::string::npos || line[4] == '\t')) {
        co_await refuse_unreadable_bdat(line);
        co_return false;
    }
    if (line.find('\0') != std::string::npos) {
        src_->abandon_sequence();
        front_.reply("500 5.5.2 Error: NUL in command");
        syntax_error();
        co_return true;
    }
    smtp::CommandLine c = smtp::split_command(line);
    const CommandRow* row = CommandTable::find(c.verb);
    // An unfinished XPROXYFROM or XPROXYTO sequence (LAST=False) must be continued by the
    // next line.
    if (!row || !row->has(command_flags::continues_sequence)) src_->abandon_sequence();
    if (!row || row->verb != "XPROXYTO") xproxyto_.reset();
    if (!row) {
        front_.reply("502 5.5.2 Error: command not recognized");
        log::info("event=unknown_command sid=%s command=\"%s\"", sid_.c_str(), escape_value(line, 64).c_str());
        syntax_error();
        co_return true;
    }
    if (const auto refusal = CommandTable::check(*row, c, state())) {
        if (row->has(command_flags::chunk_follows))
            co_return co_await refuse_chunk(c, refusal->reply, refusal->counts_as_error);
        front_.reply(refusal->reply);
        if (refusal->counts_as_error) syntax_error();
        co_return true;
    }
    const bool go_on = co_await (this->*(row->handler))(c, line);
    if (row->handler == &Session::cmd_auth) {
        // AUTH PLAIN's initial response holds the password: not left in these buffers.
        OPENSSL_cleanse(const_cast<char*>(line.data()), line.size());  // serve_commands' own line
        OPENSSL_cleanse(c.arg.data(), c.arg.size());
    }
    co_return go_on;
}

void Session::end_transaction() {
    bdat_.reset();
    relay_.reset();
    src_->end_transaction();
}

asio::awaitable<bool> Session::cmd_helo(const smtp::CommandLine& c, const std::string&) {
    if (relay_.transaction().active) end_transaction();
    helo_ = c.arg;
    esmtp_ = c.verb == "EHLO";
    src_->ehlo(helo_, esmtp_);
    if (!esmtp_) {
        front_.reply("250 " + cfg_.hostname);
        co_return true;
    }
    std::vector<std::string> ext = {cfg_.hostname, "PIPELINING",
                                    cfg_.max_message_size ? "SIZE " + std::to_string(cfg_.max_message_size) : "SIZE"};
    if (sh_.front_tls && !front_.conn().tls()) ext.push_back("STARTTLS");
    if (front_.conn().tls()) ext.push_back("REQUIRETLS");
    if (listener_.submission && front_.conn().tls()) ext.push_back("AUTH " + std::string(sasl::mechanism_names()));
    ext.push_back("ENHANCEDSTATUSCODES");
    ext.push_back("8BITMIME");
    ext.push_back("CHUNKING");
    ext.push_back("SMTPUTF8");
    if (src_->trusted() && !listener_.submission) {
        ext.push_back("XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT");
        ext.push_back("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE");
        ext.push_back("XPROXYFROM");
        if (relay_.outbound()) ext.push_back("XPROXYTO");
    }
    for (std::size_t i = 0; i < ext.size(); ++i) front_.reply((i + 1 < ext.size() ? "250-" : "250 ") + ext[i]);
    co_return true;
}

// The syntax of MAIL and what this session allows in it; the relay does the rest.
asio::awaitable<bool> Session::cmd_mail(const smtp::CommandLine& c, const std::string&) {
    std::string err;
    auto mail = smtp::parse_path(c.arg, "FROM", true, true, &err);
    if (!mail) {
        front_.reply(err);
        syntax_error();
        co_return true;
    }
    smtp::MailLimits lim{cfg_.max_message_size, front_.conn().tls()};
    auto params = smtp::check_mail_params(*mail, lim, &err);
    if (!params) {
        front_.reply(err);
        syntax_error();
        co_return true;
    }
    if (!esmtp_ && !mail->params.empty()) {
        front_.reply("555 5.5.4 Error: MAIL parameters need EHLO");
        co_return true;
    }
    if (has_8bit(mail->path) && !params->smtputf8) {
        front_.reply("553 5.6.7 Error: non-ASCII address without SMTPUTF8");
        co_return true;
    }
    if (relay_.outbound() && !src_->trusted()) {
        // The outbound mode relays to anyone's MX hosts: only the source MTAs it serves.
        log::warning("event=relay_refused sid=%s client=%s", sid_.c_str(),
                     endpoint_text(src_->effective().client).c_str());
        front_.reply("550 5.7.1 Error: relay access denied");
        co_return true;
    }
    if (listener_.submission) {
        XPROXY_INVARIANT(!login_.empty() && directory_);  // the row's flags
        if (!home_error_.empty()) {
            log::warning("event=no_home sid=%s login=\"%s\" detail=\"%s\"", sid_.c_str(),
                         escape_value(login_, 256).c_str(), escape_value(home_error_, 256).c_str());
            front_.reply("451 4.3.0 Error: your mail cannot be routed now, try again later");
            co_return true;
        }
        if (auto refusal = sender_refusal(*directory_, login_, mail->path)) {
            log::warning("event=sender_refused sid=%s login=\"%s\" sender=\"%s\"", sid_.c_str(),
                         escape_value(login_, 256).c_str(), escape_value(mail->path, 256).c_str());
            front_.reply(*refusal);
            co_return true;
        }
    }
    SourceInfo source = src_->effective();
    co_await relay_.mail(*mail, *params, std::move(source));
    co_return true;
}

asio::awaitable<bool> Session::cmd_rcpt(const smtp::CommandLine& c, const std::string&) {
    if (bdat_) {
        front_.reply("503 5.5.1 Error: RCPT after BDAT");
        co_return true;
    }
    std::string err;
    auto rcpt = smtp::parse_path(c.arg, "TO", false, relay_.transaction().params.smtputf8, &err);
    if (!rcpt) {
        front_.reply(err);
        syntax_error();
        co_return true;
    }
    if (!rcpt->params.empty()) {
        front_.reply("555 5.5.4 Unsupported option: " + rcpt->params.front().first);
        co_return true;
    }
    co_await relay_.rcpt(rcpt->path);
    co_return true;
}

asio::awaitable<bool> Session::cmd_data(const smtp::CommandLine&, const std::string&) {
    if (bdat_) {
        front_.reply("503 5.5.1 Error: DATA after BDAT");
        co_return true;
    }
    DataRelay data(front_, relay_, sh_, sid_);
    const bool go_on = co_await data.run();
    end_transaction();
    co_return go_on;
}

// BDAT (RFC 3030): the argument here, the chunk and its relay in the BdatRelay that lives
// until the transaction ends (BDAT LAST answered, a chunk too big, RSET).
asio::awaitable<bool> Session::cmd_bdat(const smtp::CommandLine& c, const std::string&) {
    const smtp::BdatArg a = smtp::parse_bdat(c.arg);
    if (!a.valid) co_return co_await refuse_chunk(c, "501 5.5.4 Syntax: BDAT count [LAST]", true);
    if (!bdat_) bdat_.emplace(front_, relay_, sh_, sid_);
    if (!co_await bdat_->chunk(*a.size, a.last)) co_return false;
    if (bdat_->done()) end_transaction();
    co_return true;
}

asio::awaitable<bool> Session::refuse_chunk(const smtp::CommandLine& c, const std::string& reply, bool bad_syntax) {
    const smtp::BdatArg a = smtp::parse_bdat(c.arg);
    if (!a.size) {
        std::string shown = "BDAT " + c.arg;  // a local across the suspension (GCC 12)
        co_await refuse_unreadable_bdat(std::move(shown));
        co_return false;
    }
    if (!co_await skip_chunk(front_, cfg_, *a.size)) co_return false;
    front_.reply(reply);
    if (bad_syntax) syntax_error();
    co_return true;
}

asio::awaitable<bool> Session::cmd_rset(const smtp::CommandLine&, const std::string&) {
    bdat_.reset();  // a downstream inside DATA is closed; one inside BDAT takes RSET
    co_await relay_.rset();
    end_transaction();
    front_.reply("250 2.0.0 Ok");
    co_return true;
}

asio::awaitable<bool> Session::cmd_noop(const smtp::CommandLine&, const std::string&) {
    front_.reply("250 2.0.0 Ok");
    co_return true;
}

asio::awaitable<bool> Session::cmd_quit(const smtp::CommandLine&, const std::string&) {
    front_.reply("221 2.0.0 Bye");
    closing_ = true;
    co_return false;
}

asio::awaitable<bool> Session::cmd_vrfy(const smtp::CommandLine&, const std::string&) {
    front_.reply("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
    co_return true;
}

asio::awaitable<bool> Session::cmd_help(const smtp::CommandLine&, const std::string&) {
    front_.reply("214 2.0.0 See RFC 5321");
    co_return true;
}

asio::awaitable<bool> Session::cmd_starttls(const smtp::CommandLine&, const std::string&) {
    XPROXY_INVARIANT(sh_.front_tls && !front_.conn().tls() && !relay_.transaction().active);  // the row's flags
    front_.reply("220 2.0.0 Ready to start TLS");
    if (!co_await front_.flush()) co_return false;
    // Anything pipelined after STARTTLS was sent in clear text: discard it (CVE-2011-0411).
    if (const std::size_t discarded = front_.conn().discard_buffered(); discarded > 0)
        log::warning("event=starttls_pipelining sid=%s discarded=%zu", sid_.c_str(), discarded);
    error_code ec;
    co_await front_.conn().handshake(*sh_.front_tls, true, std::string(), false, cfg_.client_timeout, ec);
    if (ec) {
        log::warning("event=tls_failed sid=%s error=\"%s\"", sid_.c_str(), ec.message().c_str());
        co_return false;
    }
    TlsInfo t = front_.conn().tls_info();
    src_->set_peer_tls(t);
    co_await relay_.forget_route();
    helo_.clear();
    esmtp_ = false;
    log::info("event=tls sid=%s version=%s cipher=%s", sid_.c_str(), t.version.c_str(), t.cipher.c_str());
    co_return true;
}

// XCLIENT, XFORWARD, XPROXYFROM: SourceTracker decides; see source.hpp.
asio::awaitable<bool> Session::cmd_source(const smtp::CommandLine& c, const std::string& line) {
    XPROXY_INVARIANT(!relay_.transaction().active);  // the row's flags
    SourceVerdict v = c.verb == "XCLIENT"    ? src_->xclient(line)
                      : c.verb == "XFORWARD" ? src_->xforward(line)
                                             : src_->xproxyfrom(line);
    switch (v.kind) {
        case SourceVerdict::Kind::refused:
            log::warning("event=source_refused sid=%s command=%s client=%s", sid_.c_str(), c.verb.c_str(),
                         endpoint_text(src_->effective().client).c_str());
            front_.reply(v.reply);
            syntax_error();
            break;
        case SourceVerdict::Kind::bad:
            front_.reply(v.reply);
            syntax_error();
            break;
        case SourceVerdict::Kind::need_more: front_.reply(v.reply); break;
        case SourceVerdict::Kind::accepted: {
            SourceInfo s = src_->effective();
            log::info("event=source sid=%s command=%s client=%s helo=\"%s\"", sid_.c_str(), c.verb.c_str(),
                      endpoint_text(s.client).c_str(), escape_value(s.helo, 128).c_str());
            if (c.verb == "XCLIENT") {
                helo_.clear();
                esmtp_ = false;
                front_.reply("220 " + cfg_.hostname + " ESMTP xproxyd");
            } else {
                front_.reply(v.reply);
            }
            break;
        }
    }
    co_return true;
}

// XPROXYTO (seed 000's application-to-outbound exchange): trusted source MTAs on an
// outbound listener only; a sequence of LAST=False lines is merged first. A malformed
// one gets 501 and changes nothing.
asio::awaitable<bool> Session::cmd_xproxyto(const smtp::CommandLine&, const std::string& line) {
    if (!relay_.outbound()) {
        xproxyto_.reset();
        front_.reply("502 5.5.1 Error: XPROXYTO needs an outbound listener (destinations=mx)");
        co_return true;
    }
    if (!src_->trusted()) {
        xproxyto_.reset();
        log::warning("event=xproxyto_refused sid=%s client=%s reason=\"not a trusted upstream\"", sid_.c_str(),
                     endpoint_text(src_->effective().client).c_str());
        front_.reply("550 5.7.0 Error: XPROXYTO not allowed");
        syntax_error();
        co_return true;
    }
    const DecodeResult r = xproxyto_.add(line);
    if (r.need_more()) {
        front_.reply("250 2.0.0 Ok");
        co_return true;
    }
    const auto* x = r.complete() ? std::get_if<smtp::XproxyTo>(&xproxyto_.command()) : nullptr;
    if (!x) {
        log::info("event=xproxyto_bad sid=%s error=\"%s\"", sid_.c_str(), escape_value(xproxyto_.error(), 200).c_str());
        front_.reply("501 5.5.4 Error: bad XPROXYTO: " + escape_value(xproxyto_.error(), 200));
        xproxyto_.reset();
        syntax_error();
        co_return true;
    }
    const smtp::XproxyTo to = *x;
    xproxyto_.reset();
    co_await relay_.xproxyto(to);
    if (!splice_ || !relay_.downstream().connected()) co_return true;
    // The layer-4 mode: the reply goes out, then bytes are copied both ways (splice.hpp).
    if (!co_await front_.flush()) co_return false;
    log::info("event=splice sid=%s destination=%s", sid_.c_str(), relay_.downstream().where().c_str());
    const SpliceResult sp = co_await splice(front_.conn_ptr(), relay_.downstream().take_connection(),
                                            cfg_.client_timeout);
    log::info("event=splice_end sid=%s to_target=%llu to_source=%llu reason=\"%s\"", sid_.c_str(),
              static_cast<unsigned long long>(sp.to_target), static_cast<unsigned long long>(sp.to_source), sp.ended);
    closing_ = true;
    co_return false;
}

asio::awaitable<void> run_session(std::shared_ptr<Conn> conn, const Listener& listener, Shared& shared) {
    Session s(std::move(conn), listener, shared);
    co_await s.run();
}

namespace {
constexpr std::chrono::milliseconds kBusyPoll{5};
}  // namespace

// AUTH (the submission mode; the row checked TLS, the state and that it is the first).
// The decoded credentials go to the throttle, then to the verifier (Dovecot); the reply
// to a failure waits as the throttle says. The password never reaches a log line.
asio::awaitable<bool> Session::cmd_auth(const smtp::CommandLine& c, const std::string&) {
    XPROXY_INVARIANT(sh_.submission && listener_.submission && login_.empty());
    bool go_on = true;
    auto creds = co_await sasl_exchange(c, &go_on);
    if (!creds) co_return go_on;
    SubmissionServices& sub = *sh_.submission;
    const SourceInfo peer_src = src_->effective();
    const std::string user_shown = escape_value(creds->authcid, 256);
    const std::string client_shown = endpoint_text(peer_src.client);
    const IpAddress client_addr = peer_src.client ? peer_src.client->addr : IpAddress();
    const auto now = std::chrono::steady_clock::now();
    ThrottleCheck th = sub.throttle().check(client_addr, creds->authcid, now);
    // Attempts in flight fill the places: wait for one (a burst of logins from one
    // address), at most --auth-timeout.
    for (auto waited = std::chrono::milliseconds(0); th.busy && waited < cfg_.submission.auth_timeout;
         waited += kBusyPoll) {
        co_await pause(kBusyPoll);
        th = sub.throttle().check(client_addr, creds->authcid, std::chrono::steady_clock::now());
    }
    if (th.busy) {
        log::warning("event=auth_busy sid=%s client=%s user=\"%s\" busy=%s", sid_.c_str(), client_shown.c_str(),
                     user_shown.c_str(), th.why);
        front_.reply("454 4.7.0 Error: too many logins at once, try again later");
        co_return true;
    }
    if (th.locked) {
        log::warning("event=auth_locked sid=%s client=%s user=\"%s\" locked=%s", sid_.c_str(), client_shown.c_str(),
                     user_shown.c_str(), th.why);
        co_await pause(th.delay);
        front_.reply("454 4.7.0 Error: too many failed logins, try again later");
        syntax_error();
        co_return true;
    }
    AuthPeer ap;
    if (peer_src.client) ap.client = *peer_src.client;
    if (peer_src.server) ap.server = *peer_src.server;
    ap.tls = front_.conn().tls();
    const std::string mech = c.arg.substr(0, c.arg.find(' '));
    CredentialVerifier* verifier = sub.verifier(creds->kind);
    if (!verifier) {  // a mechanism whose credentials nothing here can check
        front_.reply("504 5.5.4 Unsupported authentication mechanism");
        co_return true;
    }
    AuthVerdict v = co_await verifier->verify(*creds, ap);
    switch (v.kind) {
        case AuthVerdict::Kind::ok: break;
        case AuthVerdict::Kind::failed:
            co_await refuse_login(creds->authcid, mech, v.reason, &th.attempt);
            co_return true;
        case AuthVerdict::Kind::temporary:
            log::warning("event=auth_unavailable sid=%s client=%s user=\"%s\" reason=\"%s\"", sid_.c_str(),
                         client_shown.c_str(), user_shown.c_str(), escape_value(v.reason, 256).c_str());
            front_.reply("454 4.7.0 Temporary authentication failure");
            co_return true;
    }
    const std::string login = v.user.empty() ? creds->authcid : v.user;
    if (login.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
        log::warning("event=auth_failed sid=%s client=%s user=\"%s\" reason=\"control byte in the login\"",
                     sid_.c_str(), client_shown.c_str(), escape_value(login, 256).c_str());
        front_.reply("535 5.7.8 Error: authentication failed");
        co_return true;
    }
    route_home(login);
    src_->authenticated(login_);
    front_.reply("235 2.7.0 Authentication successful");
    co_return true;
}

asio::awaitable<std::optional<sasl::Credentials>> Session::sasl_exchange(const smtp::CommandLine& c, bool* go_on) {
    const std::string_view arg = c.arg;
    const auto sp = arg.find(' ');
    const std::string_view name = arg.substr(0, sp);
    std::optional<std::string_view> initial;
    if (sp != std::string_view::npos) initial = arg.substr(sp + 1);
    auto mech = sasl::make_mechanism(name);
    if (!mech) {
        front_.reply("504 5.5.4 Unsupported authentication mechanism");
        syntax_error();
        co_return std::nullopt;
    }
    sasl::Step step = mech->start(initial);
    for (unsigned round = 0; step.kind == sasl::Step::Kind::challenge; ++round) {
        if (round >= 8) {  // PLAIN and LOGIN need two at most
            front_.reply("501 5.5.2 Error: too many authentication steps");
            co_return std::nullopt;
        }
        front_.reply("334 " + step.challenge_b64);
        if (!co_await front_.flush()) {
            *go_on = false;
            co_return std::nullopt;
        }
        std::string line;
        bool too_long = false;
        error_code ec;
        const bool got = co_await front_.conn().read_line(line, cfg_.max_line, cfg_.client_timeout, ec, &too_long);
        if (!got) {
            if (ec == asio::error::timed_out) co_await close_with("4.4.2", "timeout exceeded");
            log::info("event=auth_abandoned sid=%s reason=\"%s\"", sid_.c_str(),
                      ec == asio::error::timed_out ? "timeout" : "disconnected");
            *go_on = false;
            co_return std::nullopt;
        }
        if (too_long) {
            OPENSSL_cleanse(line.data(), line.size());
            front_.reply("500 5.5.6 Error: authentication exchange line is too long");
            syntax_error();
            co_return std::nullopt;
        }
        step = mech->next(line);
        OPENSSL_cleanse(line.data(), line.size());
    }
    switch (step.kind) {
        case sasl::Step::Kind::done: co_return std::move(step.credentials);
        case sasl::Step::Kind::cancelled: front_.reply("501 5.7.0 Authentication cancelled"); break;
        case sasl::Step::Kind::bad_encoding:
            front_.reply("501 5.5.2 Error: cannot decode the response");
            syntax_error();
            break;
        case sasl::Step::Kind::bad_credentials:
        default:
            // A CR, LF or NUL inside a name or password, or a malformed PLAIN message: a
            // failed login, counted as one (for the address: no user name could be read).
            co_await refuse_login(std::string_view(), name, step.reason, nullptr);
            break;
    }
    co_return std::nullopt;
}

asio::awaitable<void> Session::refuse_login(std::string_view user, std::string_view mechanism, std::string_view reason,
                                            ThrottleAttempt* attempt) {
    const SourceInfo p = src_->effective();
    const auto delay = sh_.submission->throttle().failed(p.client ? p.client->addr : IpAddress(), user,
                                                         std::chrono::steady_clock::now());
    if (attempt) attempt->release();  // counted as a failure now, no longer as an attempt in flight
    log::warning("event=auth_failed sid=%s client=%s user=\"%s\" mechanism=%s reason=\"%s\"", sid_.c_str(),
                 endpoint_text(p.client).c_str(), escape_value(user, 256).c_str(), escape_value(mechanism, 32).c_str(),
                 escape_value(reason, 256).c_str());
    co_await pause(delay);
    front_.reply("535 5.7.8 Error: authentication failed");
    syntax_error();
}

void Session::route_home(const std::string& login) {
    login_ = login;
    directory_ = sh_.submission->directory();
    const DownstreamConfig& fallback = cfg_.downstreams[listener_.downstream];
    HomeRoute r = home_route(*directory_, login, fallback);
    const char* home = r.name.empty() ? fallback.name.c_str() : r.name.c_str();
    if (!r.error.empty()) {
        home_error_ = r.error;
        log::warning("event=auth sid=%s client=%s login=\"%s\" home=%s status=no_route detail=\"%s\"", sid_.c_str(),
                     endpoint_text(src_->effective().client).c_str(), escape_value(login, 256).c_str(), home,
                     escape_value(r.error, 256).c_str());
        return;
    }
    if (!r.name.empty()) {
        home_ = std::make_unique<DownstreamConfig>(std::move(r.config));
        relay_.downstream().reconfigure(*home_, sh_.submission->home_tls(home_->tls));
    }
    log::info("event=auth sid=%s client=%s login=\"%s\" in_directory=%s home=%s", sid_.c_str(),
              endpoint_text(src_->effective().client).c_str(), escape_value(login, 256).c_str(), r.user ? "yes" : "no",
              home);
}

asio::awaitable<void> Session::pause(std::chrono::milliseconds d) {
    if (d.count() <= 0) co_return;
    asio::steady_timer t(front_.conn().socket().get_executor());
    t.expires_after(d);
    error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace xproxy::xproxyd
