// dovecot_auth.cpp: DovecotAuth, one auth-client connection per check (dovecot_auth.hpp).
#include "dovecot_auth.hpp"

#include <unistd.h>

#include <atomic>
#include <memory>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/wire/dovecot_auth.hpp>

namespace xproxy::xproxyd {

namespace {

using asio::use_awaitable;
using Socket = asio::generic::stream_protocol::socket;

// One connection to the auth service under one deadline for the whole exchange: when it
// passes, the timer closes the socket and the pending operation fails. Held in a
// shared_ptr whose timer handler holds only a weak_ptr, so a deadline firing after the
// end touches nothing.
class Channel : public std::enable_shared_from_this<Channel> {
public:
    explicit Channel(const asio::any_io_executor& ex) : sock_(ex), timer_(ex) {}

    void start_deadline(Seconds timeout) {
        timer_.expires_after(timeout);
        timer_.async_wait([weak = weak_from_this()](error_code ec) {
            auto self = weak.lock();
            if (!self || ec) return;
            self->timed_out_ = true;
            error_code ignored;
            self->sock_.close(ignored);
        });
    }
    bool timed_out() const { return timed_out_; }

    asio::awaitable<void> connect(const DovecotAuth::Target& t, error_code& ec) {
        if (t.kind == DovecotAuth::Target::Kind::unix_socket) {
            const asio::local::stream_protocol::endpoint ep(t.path);
            co_await sock_.async_connect(ep, asio::redirect_error(use_awaitable, ec));
        } else {
            error_code bad;
            const auto addr = asio::ip::make_address(t.endpoint.addr.to_string(), bad);
            if (bad) {
                ec = bad;
                co_return;
            }
            const asio::ip::tcp::endpoint ep(addr, t.endpoint.port);
            co_await sock_.async_connect(ep, asio::redirect_error(use_awaitable, ec));
        }
    }

    asio::awaitable<void> write(std::string_view data, error_code& ec) {
        co_await asio::async_write(sock_, asio::buffer(data), asio::redirect_error(use_awaitable, ec));
    }

    // The next server line: complete or invalid from the decoder, or need_more with ec set
    // when the connection failed first.
    asio::awaitable<DecodeResult> read_line(dovecot::ServerDecoder& dec, dovecot::ServerLine& line, error_code& ec) {
        for (;;) {
            const DecodeResult r = dec.decode(std::string_view(in_).substr(pos_), line);
            if (r.complete()) pos_ += r.consumed;
            if (!r.need_more()) co_return r;
            in_.erase(0, pos_);
            pos_ = 0;
            char buf[4096];
            const std::size_t n = co_await sock_.async_read_some(asio::buffer(buf),
                                                                 asio::redirect_error(use_awaitable, ec));
            if (ec) co_return r;
            in_.append(buf, n);
        }
    }

    void close() {
        timer_.cancel();
        error_code ignored;
        sock_.close(ignored);
    }

private:
    Socket sock_;
    asio::steady_timer timer_;
    bool timed_out_ = false;
    std::string in_;  // received, from pos_ on not yet decoded
    std::size_t pos_ = 0;
};

// Request ids: unique in this process (Dovecot logs them), never 0.
std::uint32_t next_request_id() {
    static std::atomic<std::uint32_t> counter{0};
    std::uint32_t id = ++counter;
    while (id == 0) id = ++counter;
    return id;
}

AuthVerdict verdict(AuthVerdict::Kind kind, std::string reason, std::string user = {}) {
    return AuthVerdict{kind, std::move(user), std::move(reason)};
}

}  // namespace

std::optional<DovecotAuth::Target> DovecotAuth::parse_target(std::string_view spec, std::string* error) {
    auto fail = [&](const std::string& why) -> std::optional<Target> {
        if (error) *error = "dovecot auth target \"" + escape(spec) + "\": " + why;
        return std::nullopt;
    };
    Target t;
    t.spec = spec;
    if (istarts_with(spec, "unix:")) {
        t.kind = Target::Kind::unix_socket;
        t.path = spec.substr(5);
        if (t.path.empty() || t.path[0] != '/') return fail("expected unix:/absolute/path");
        if (t.path.size() >= 108) return fail("socket path longer than 107 bytes");
        if (t.path.find('\0') != std::string::npos) return fail("NUL in the path");
        return t;
    }
    if (istarts_with(spec, "inet:")) {
        t.kind = Target::Kind::inet;
        const std::string_view hostport = spec.substr(5);
        const std::size_t colon = hostport.rfind(':');
        if (colon == std::string_view::npos) return fail("expected inet:HOST:PORT");
        const std::string_view host = hostport.substr(0, colon);
        const auto port = parse_decimal<std::uint16_t>(hostport.substr(colon + 1));
        if (!port || *port == 0) return fail("the port must be a number from 1 to 65535");
        std::optional<IpAddress> addr;
        if (iequals(host, "localhost")) addr = IpAddress::parse("127.0.0.1");
        else if (host.size() > 2 && host.front() == '[' && host.back() == ']')
            addr = IpAddress::parse(host.substr(1, host.size() - 2));
        else if (host.find(':') == std::string_view::npos) addr = IpAddress::parse(host);
        if (!addr) return fail("HOST must be a numeric address ([...] for IPv6) or localhost");
        t.endpoint = Endpoint{*addr, *port};
        return t;
    }
    return fail("expected unix:/path or inet:HOST:PORT");
}

DovecotAuth::DovecotAuth(Target t, std::chrono::seconds timeout) : target_(std::move(t)), timeout_(timeout) {}

asio::awaitable<AuthVerdict> DovecotAuth::verify(const sasl::Credentials& c, const AuthPeer& peer) {
    using Kind = AuthVerdict::Kind;
    if (c.kind != sasl::Credentials::Kind::password) co_return verdict(Kind::failed, "Dovecot checks passwords only");
    if (!c.authzid.empty() && c.authzid != c.authcid)
        co_return verdict(Kind::failed, "an authorization identity other than the user is not supported");

    dovecot::AuthRequest request;
    request.id = next_request_id();
    request.tls = peer.tls;
    request.local = peer.server;
    request.remote = peer.client;
    request.authcid = c.authcid;
    request.password = c.secret.view();
    SecretBytes auth_line;  // holds the password
    if (!dovecot::encode_auth_plain(request, auth_line))
        co_return verdict(Kind::failed, "user name or password cannot be sent with PLAIN (empty, or a NUL)");

    const std::string where = "dovecot auth " + target_.spec + ": ";
    auto channel = std::make_shared<Channel>(co_await asio::this_coro::executor);
    channel->start_deadline(timeout_);
    error_code ec;
    auto io_failure = [&](const char* step) {
        channel->close();
        const std::string why = channel->timed_out()     ? "timed out after " + std::to_string(timeout_.count()) + "s"
                                : ec == asio::error::eof ? std::string("connection closed by the server")
                                                         : ec.message();
        return verdict(Kind::temporary, where + step + ": " + why);
    };
    auto protocol_failure = [&](const std::string& why) {
        channel->close();
        return verdict(Kind::temporary, where + why);
    };

    co_await channel->connect(target_, ec);
    if (ec) co_return io_failure("connect");
    co_await channel->write(dovecot::encode_handshake(static_cast<std::uint64_t>(::getpid())), ec);
    if (ec) co_return io_failure("handshake");
    dovecot::ServerDecoder decoder;
    dovecot::ServerLine line;
    while (!decoder.handshake_done()) {
        const DecodeResult r = co_await channel->read_line(decoder, line, ec);
        if (ec) co_return io_failure("handshake");
        if (r.invalid()) co_return protocol_failure("handshake: " + std::string(r.reason));
    }
    co_await channel->write(auth_line.view(), ec);
    auth_line.wipe();
    if (ec) co_return io_failure("AUTH");
    for (;;) {
        const DecodeResult r = co_await channel->read_line(decoder, line, ec);
        if (ec) co_return io_failure("reply");
        if (r.invalid()) co_return protocol_failure("reply: " + std::string(r.reason));
        if (line.kind == dovecot::ServerLine::Kind::other) continue;  // unknown commands are ignored
        break;
    }
    channel->close();
    if (line.id != request.id)
        co_return verdict(Kind::temporary, where + "reply for request " + std::to_string(line.id) + ", sent " +
                                               std::to_string(request.id));
    const std::string* reason = line.param("reason");
    const std::string said = reason && !reason->empty() ? ": " + escape(*reason, 120) : std::string();
    switch (line.kind) {
        case dovecot::ServerLine::Kind::ok: {
            // A passdb that disables an account keeps its password and says nologin (Dovecot's
            // own login processes then refuse it); proxy/host= send the user to another server
            // that xproxyd is not. Neither is a login here.
            if (line.has("nologin") || line.has("proxy") || line.param("host"))
                co_return verdict(Kind::failed, std::string("account may not log in here (") +
                                                    (line.has("nologin") ? "nologin" : "proxy") + ")" + said);
            const std::string* user = line.param("user");
            co_return verdict(Kind::ok, {}, user && !user->empty() ? *user : c.authcid);
        }
        case dovecot::ServerLine::Kind::fail:
            if (line.has("temp") || (line.param("code") && *line.param("code") == "temp_fail"))
                co_return verdict(Kind::temporary, where + "temporary failure" + said);
            co_return verdict(Kind::failed, "authentication failed" + said);
        case dovecot::ServerLine::Kind::cont:
            co_return verdict(Kind::temporary, where + "CONT for PLAIN (a second round is never needed)");
        default: break;
    }
    XPROXY_UNREACHABLE();
}

}  // namespace xproxy::xproxyd
