// xproxyd_dovecot_auth_test: DovecotAuth, the password check against Dovecot's auth
// service. The target syntax; every path to a verdict against a scripted server on
// loopback (TCP and a unix socket): OK with and without user=, FAIL, FAIL temp, CONT, a
// reply for another request, malformed lines, a server that closes or never answers,
// a handshake without PLAIN or from the auth-master socket (the password is never sent
// then); what the request carries; and, when the dovecot binary is installed, a real
// Dovecot 2.3 started from the test: PLAIN ok and failed, a TAB and a CR in a user name.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <xproxy/base/base64.hpp>

#include "dovecot_auth.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;
using namespace std::chrono_literals;
using namespace std::string_literals;
using Kind = AuthVerdict::Kind;

namespace {

const std::string kGreeting =
    "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t2\nCOOKIE\t00ff\nDONE\n";

sasl::Credentials creds(std::string user, std::string_view password, std::string authzid = {}) {
    sasl::Credentials c;
    c.authcid = std::move(user);
    c.authzid = std::move(authzid);
    c.secret.assign(password.data(), password.size());
    return c;
}

AuthPeer peer() {
    return AuthPeer{Endpoint{*IpAddress::parse("192.0.2.7"), 40000}, Endpoint{*IpAddress::parse("127.0.0.1"), 587},
                    true};
}

// What the scripted server does, and what it saw.
struct Script {
    enum class Mode { normal, close_at_connect, close_after_greeting, close_after_auth, silent } mode = Mode::normal;
    std::string greeting = kGreeting;
    std::string reply;  // after the AUTH line; "{id}" becomes the request's id
    // seen
    std::string handshake;
    std::string auth_line;
};

std::string request_id(const std::string& auth_line) {
    const std::size_t a = auth_line.find('\t') + 1;
    return auth_line.substr(a, auth_line.find('\t', a) - a);
}

template <class Stream>
asio::awaitable<std::string> read_until_lines(Stream& s, std::string& buf, std::size_t lines, error_code& ec) {
    for (;;) {
        std::size_t seen = 0, pos = 0;
        while (seen < lines && (pos = buf.find('\n', pos)) != std::string::npos) ++seen, ++pos;
        if (seen == lines) {
            std::string out = buf.substr(0, pos);
            buf.erase(0, pos);
            co_return out;
        }
        char tmp[1024];
        const std::size_t n = co_await s.async_read_some(asio::buffer(tmp),
                                                         asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return std::string();
        buf.append(tmp, n);
    }
}

template <class Acceptor>
asio::awaitable<void> serve(Acceptor& acceptor, Script& script) {
    auto s = co_await acceptor.async_accept(asio::use_awaitable);
    if (script.mode == Script::Mode::close_at_connect) co_return;
    error_code ec;
    std::string buf;
    script.handshake = co_await read_until_lines(s, buf, 2, ec);
    if (ec) co_return;
    co_await asio::async_write(s, asio::buffer(script.greeting), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || script.mode == Script::Mode::close_after_greeting) co_return;
    script.auth_line = co_await read_until_lines(s, buf, 1, ec);
    if (ec || script.mode == Script::Mode::close_after_auth) co_return;
    if (script.mode != Script::Mode::silent) {
        std::string reply = script.reply;
        for (std::size_t at; (at = reply.find("{id}")) != std::string::npos;)
            reply.replace(at, 4, request_id(script.auth_line));
        co_await asio::async_write(s, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
    }
    char tmp[256];  // until the client closes
    while (!ec) co_await s.async_read_some(asio::buffer(tmp), asio::redirect_error(asio::use_awaitable, ec));
}

AuthVerdict run_verify(asio::io_context& io, DovecotAuth& auth, const sasl::Credentials& c) {
    AuthVerdict out;
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            out = co_await auth.verify(c, peer());
            done = true;
        },
        asio::detached);
    io.run();
    EXPECT_TRUE(done);
    return out;
}

// verify() against a scripted server on 127.0.0.1 (or a unix socket).
AuthVerdict against(Script& script, const sasl::Credentials& c, bool unix_socket = false) {
    asio::io_context io;
    DovecotAuth::Target t;
    std::string path;
    if (unix_socket) {
        path = "/tmp/xproxy-dovecot-test-" + std::to_string(::getpid()) + ".sock";
        ::unlink(path.c_str());
        asio::local::stream_protocol::acceptor acceptor(io, asio::local::stream_protocol::endpoint(path));
        t = *DovecotAuth::parse_target("unix:" + path, nullptr);
        asio::co_spawn(io, serve(acceptor, script), asio::detached);
        DovecotAuth auth(t, 2s);
        AuthVerdict v = run_verify(io, auth, c);
        ::unlink(path.c_str());
        return v;
    }
    asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    t = *DovecotAuth::parse_target("inet:127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()), nullptr);
    asio::co_spawn(io, serve(acceptor, script), asio::detached);
    DovecotAuth auth(t, 2s);
    return run_verify(io, auth, c);
}

TEST(DovecotAuthTarget, Syntax) {
    struct Row {
        const char* spec;
        bool want_ok;
        const char* want;  // path, or address:port, or a piece of the error
    };
    const Row rows[] = {
        {"unix:/var/spool/postfix/private/auth", true, "/var/spool/postfix/private/auth"},
        {"UNIX:/run/dovecot/auth-client", true, "/run/dovecot/auth-client"},
        {"inet:127.0.0.1:12345", true, "127.0.0.1:12345"},
        {"inet:localhost:12345", true, "127.0.0.1:12345"},
        {"inet:[::1]:12345", true, "[::1]:12345"},
        {"inet:192.0.2.1:1", true, "192.0.2.1:1"},
        {"unix:relative/auth", false, "absolute"},
        {"unix:", false, "absolute"},
        {"/run/dovecot/auth-client", false, "expected unix:/path or inet:HOST:PORT"},
        {"inet:127.0.0.1", false, "inet:HOST:PORT"},
        {"inet:127.0.0.1:0", false, "1 to 65535"},
        {"inet:127.0.0.1:65536", false, "1 to 65535"},
        {"inet:127.0.0.1:+25", false, "1 to 65535"},
        {"inet:dovecot.example:12345", false, "numeric address"},
        {"inet:::1:12345", false, "numeric address"},
        {"inet::12345", false, "numeric address"},
        {"tcp:127.0.0.1:1", false, "expected unix:/path"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.spec);
        std::string error;
        const auto t = DovecotAuth::parse_target(r.spec, &error);
        ASSERT_EQ(t.has_value(), r.want_ok) << error;
        if (!r.want_ok) {
            EXPECT_NE(error.find(r.want), std::string::npos) << error;
            continue;
        }
        EXPECT_EQ(t->spec, r.spec);
        const std::string got = t->kind == DovecotAuth::Target::Kind::unix_socket ? t->path : t->endpoint.to_string();
        EXPECT_EQ(got, r.want);
    }
    std::string long_path = "unix:/" + std::string(107, 'a');
    EXPECT_FALSE(DovecotAuth::parse_target(long_path, nullptr));
}

TEST(DovecotAuth, Verdicts) {
    using M = Script::Mode;
    struct Row {
        const char* what;
        M mode;
        std::string greeting, reply;
        Kind want_kind;
        std::string want_user;    // ok
        std::string want_reason;  // a piece of it
        bool want_auth_sent;
    };
    const std::string g = kGreeting;
    const std::vector<Row> rows = {
        {"ok with user=", M::normal, g, "OK\t{id}\tuser=alice@example.com\n", Kind::ok, "alice@example.com", "", true},
        {"ok without user=", M::normal, g, "OK\t{id}\n", Kind::ok, "alice", "", true},
        {"ok with an escaped user=", M::normal, g, "OK\t{id}\tuser=a\001tb\001rc\n", Kind::ok, "a\tb\rc", "", true},
        {"unknown line first", M::normal, g, "NOTICE\tx\nOK\t{id}\tuser=u\n", Kind::ok, "u", "", true},
        // A disabled account, or one served by another server: never a login here.
        {"ok with nologin", M::normal, g, "OK\t{id}\tuser=alice\tnologin\treason=disabled\n", Kind::failed, "",
         "may not log in here (nologin): disabled", true},
        {"ok with proxy", M::normal, g, "OK\t{id}\tuser=alice\tproxy\thost=192.0.2.9\n", Kind::failed, "",
         "may not log in here (proxy)", true},
        {"ok with host=", M::normal, g, "OK\t{id}\tuser=alice\thost=192.0.2.9\n", Kind::failed, "",
         "may not log in here (proxy)", true},
        {"fail", M::normal, g, "FAIL\t{id}\tuser=alice\n", Kind::failed, "", "authentication failed", true},
        {"fail with reason", M::normal, g, "FAIL\t{id}\treason=Password\001nexpired\n", Kind::failed, "",
         "authentication failed: Password\\x0aexpired", true},
        {"fail temp", M::normal, g, "FAIL\t{id}\ttemp\treason=db down\n", Kind::temporary, "",
         "temporary failure: db down", true},
        {"fail code=temp_fail", M::normal, g, "FAIL\t{id}\tcode=temp_fail\n", Kind::temporary, "", "temporary failure",
         true},
        {"cont", M::normal, g, "CONT\t{id}\t\n", Kind::temporary, "", "CONT for PLAIN", true},
        {"another id", M::normal, g, "OK\t999999999\tuser=mallory\n", Kind::temporary, "",
         "reply for request 999999999", true},
        {"malformed reply", M::normal, g, "OK\n", Kind::temporary, "", "reply: malformed line", true},
        {"handshake line in a reply", M::normal, g, "MECH\tPLAIN\n", Kind::temporary, "", "after DONE", true},
        {"closed before the reply", M::close_after_auth, g, "", Kind::temporary, "",
         "reply: connection closed by the server", true},
        {"closed at connect", M::close_at_connect, g, "", Kind::temporary, "", "handshake: ", false},
        {"closed after greeting", M::close_after_greeting, g, "", Kind::temporary, "", "reply: connection closed",
         false},
        {"never answers", M::silent, g, "", Kind::temporary, "", "reply: timed out after 2s", true},
        {"no PLAIN", M::normal, "VERSION\t1\t2\nMECH\tLOGIN\nSPID\t1\nDONE\n", "", Kind::temporary, "",
         "does not offer PLAIN", false},
        {"auth-master socket", M::normal, "VERSION\t1\t2\nSPID\t1\n", "", Kind::temporary, "", "auth-master", false},
        {"major version 2", M::normal, "VERSION\t2\t0\nMECH\tPLAIN\nDONE\n", "", Kind::temporary, "",
         "another major version", false},
        {"greeting too long", M::normal, "VERSION\t1\t2\nCOOKIE\t" + std::string(9000, 'f') + "\n", "", Kind::temporary,
         "", "longer than 8192", false},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        Script s;
        s.mode = r.mode;
        s.greeting = r.greeting;
        s.reply = r.reply;
        if (r.mode == M::close_after_greeting) s.greeting = g;
        const AuthVerdict v = against(s, creds("alice", "s3cret!"));
        EXPECT_EQ(v.kind, r.want_kind) << v.reason;
        if (r.want_kind == Kind::ok) {
            EXPECT_EQ(v.user, r.want_user);
        }
        EXPECT_NE(v.reason.find(r.want_reason), std::string::npos) << v.reason;
        EXPECT_EQ(v.reason.find("s3cret"), std::string::npos);
        EXPECT_EQ(!s.auth_line.empty(), r.want_auth_sent) << s.auth_line;
        if (r.mode != M::close_at_connect) {
            EXPECT_EQ(s.handshake, "VERSION\t1\t2\nCPID\t" + std::to_string(::getpid()) + "\n");
        }
    }
}

TEST(DovecotAuth, WhatTheRequestCarries) {
    Script s;
    s.reply = "OK\t{id}\tuser=alice\n";
    const AuthVerdict v = against(s, creds("alice", "pa\tss"), true);  // over a unix socket
    ASSERT_EQ(v.kind, Kind::ok) << v.reason;
    const std::string id = request_id(s.auth_line);
    EXPECT_EQ(s.auth_line, "AUTH\t" + id +
                               "\tPLAIN\tservice=smtp\tnologin\tno-penalty\tsecured=tls\tlip=127.0.0.1\trip=192.0.2.7"
                               "\tlport=587\trport=40000\tresp=" +
                               base64_encode("\0alice\0pa\tss"s) + "\n");
    // ids differ from one check to the next
    Script s2;
    s2.reply = "OK\t{id}\n";
    ASSERT_EQ(against(s2, creds("alice", "x")).kind, Kind::ok);
    EXPECT_NE(request_id(s2.auth_line), id);
}

TEST(DovecotAuth, RefusedWithoutAsking) {
    Script s;
    s.reply = "OK\t{id}\tuser=root\n";
    // a client asking to act as someone else
    asio::io_context io;
    DovecotAuth auth(*DovecotAuth::parse_target("inet:127.0.0.1:9", nullptr), 2s);
    AuthVerdict v = run_verify(io, auth, creds("alice", "pw", "root"));
    EXPECT_EQ(v.kind, Kind::failed);
    EXPECT_NE(v.reason.find("authorization identity"), std::string::npos);
    // not a password
    sasl::Credentials token = creds("alice", "tok");
    token.kind = sasl::Credentials::Kind::bearer_token;
    io.restart();
    v = run_verify(io, auth, token);
    EXPECT_EQ(v.kind, Kind::failed);
    // the same authzid as the authcid is the user itself
    Script same;
    same.reply = "OK\t{id}\n";
    EXPECT_EQ(against(same, creds("alice", "pw", "alice")).kind, Kind::ok);
}

TEST(DovecotAuth, ConnectRefusedIsTemporary) {
    asio::io_context io;
    std::uint16_t port = 0;
    {
        asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        port = a.local_endpoint().port();
    }  // closed: nobody listens there now
    DovecotAuth auth(*DovecotAuth::parse_target("inet:127.0.0.1:" + std::to_string(port), nullptr), 2s);
    AuthVerdict v = run_verify(io, auth, creds("alice", "pw"));
    EXPECT_EQ(v.kind, Kind::temporary);
    EXPECT_NE(v.reason.find("connect: "), std::string::npos) << v.reason;
    DovecotAuth missing(*DovecotAuth::parse_target("unix:/nonexistent/xproxy-auth", nullptr), 2s);
    io.restart();
    v = run_verify(io, missing, creds("alice", "pw"));
    EXPECT_EQ(v.kind, Kind::temporary);
    EXPECT_NE(v.reason.find("unix:/nonexistent/xproxy-auth: connect: "), std::string::npos) << v.reason;
}

// A real Dovecot (dovecot -F) in a private directory: a passwd-file passdb with user
// names holding a TAB and a CR (auth_username_chars empty allows them), an auth-client
// unix listener and a loopback inet listener. Stopped by its PID.
class RealDovecot {
public:
    static std::string binary() {
        for (const char* p : {"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"})
            if (::access(p, X_OK) == 0) return p;
        return {};
    }

    explicit RealDovecot(const std::string& bin) {
        char tmpl[] = "/tmp/xproxy-dovecot-XXXXXX";
        if (!::mkdtemp(tmpl)) return;
        dir_ = tmpl;
        ::chmod(dir_.c_str(), 0755);  // dovecot's unprivileged processes reach base_dir
        std::filesystem::create_directories(dir_ + "/run");
        std::filesystem::create_directories(dir_ + "/state");
        write("passwd",
              "alice@example.com:{PLAIN}alice-secret\n"
              "tab\tuser:{PLAIN}tab-secret\n"
              "cr\ruser:{PLAIN}cr-secret\n"
              // An account disabled the way Dovecot's passdbs do it: the password still
              // checks, the reply says nologin.
              "disabled@example.com:{PLAIN}disabled-secret::::::nologin reason=disabled\n");
        {
            asio::io_context io;
            asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
            port_ = a.local_endpoint().port();
        }
        write("dovecot.conf",
              "protocols =\n"
              "base_dir = " +
                  dir_ +
                  "/run\n"
                  "state_dir = " +
                  dir_ +
                  "/state\n"
                  "log_path = " +
                  dir_ +
                  "/dovecot.log\n"
                  "ssl = no\n"
                  "auth_mechanisms = plain login\n"
                  "auth_failure_delay = 0\n"
                  "auth_username_chars =\n"
                  "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u " +
                  dir_ +
                  "/passwd\n}\n"
                  "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}\n"
                  "service auth {\n"
                  "  unix_listener auth-xproxy {\n    mode = 0600\n  }\n"
                  "  inet_listener auth-inet {\n    address = 127.0.0.1\n    port = " +
                  std::to_string(port_) + "\n  }\n}\n");
        const std::string conf = dir_ + "/dovecot.conf", out = dir_ + "/stderr";
        pid_ = ::fork();
        if (pid_ == 0) {
            if (std::freopen(out.c_str(), "w", stderr) == nullptr) ::_exit(126);
            ::execl(bin.c_str(), "dovecot", "-F", "-c", conf.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~RealDovecot() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }

    // Waits until both listeners accept connections.
    bool ready() {
        for (int i = 0; i < 200; ++i) {
            asio::io_context io;
            error_code e1, e2;
            asio::local::stream_protocol::socket u(io);
            u.connect(asio::local::stream_protocol::endpoint(socket_path()), e1);
            asio::ip::tcp::socket t(io);
            t.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), e2);
            if (!e1 && !e2) return true;
            if (pid_ <= 0 || ::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }
    std::string socket_path() const { return dir_ + "/run/auth-xproxy"; }
    std::uint16_t port() const { return port_; }
    std::string log() const {
        std::string out;
        for (const char* f : {"/stderr", "/dovecot.log"}) {
            std::ifstream in(dir_ + f);
            out += std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        return out;
    }

private:
    void write(const char* name, const std::string& text) {
        std::ofstream(dir_ + "/" + name) << text;
        ::chmod((dir_ + "/" + name).c_str(), 0644);
    }
    std::string dir_;
    pid_t pid_ = -1;
    std::uint16_t port_ = 0;
};

TEST(DovecotAuthReal, PlainOkFailedAndEscapedUserNames) {
    const std::string bin = RealDovecot::binary();
    if (bin.empty()) GTEST_SKIP() << "the dovecot binary is not installed (apt install dovecot-core): not tested";
    RealDovecot dovecot(bin);
    ASSERT_TRUE(dovecot.ready()) << "dovecot did not start:\n" << dovecot.log();
    DovecotAuth unix_auth(*DovecotAuth::parse_target("unix:" + dovecot.socket_path(), nullptr), 10s);
    DovecotAuth inet_auth(*DovecotAuth::parse_target("inet:127.0.0.1:" + std::to_string(dovecot.port()), nullptr), 10s);
    struct Row {
        const char* what;
        DovecotAuth* auth;
        std::string user, password;
        Kind want_kind;
        std::string want_user;
    };
    const Row rows[] = {
        {"ok", &unix_auth, "alice@example.com", "alice-secret", Kind::ok, "alice@example.com"},
        {"ok over inet", &inet_auth, "alice@example.com", "alice-secret", Kind::ok, "alice@example.com"},
        {"wrong password", &unix_auth, "alice@example.com", "alice-secreT", Kind::failed, ""},
        {"unknown user", &unix_auth, "nobody@example.com", "alice-secret", Kind::failed, ""},
        {"TAB in the user name", &unix_auth, "tab\tuser", "tab-secret", Kind::ok, "tab\tuser"},
        {"CR in the user name", &inet_auth, "cr\ruser", "cr-secret", Kind::ok, "cr\ruser"},
        {"TAB user, wrong password", &unix_auth, "tab\tuser", "cr-secret", Kind::failed, ""},
        {"an account with nologin", &unix_auth, "disabled@example.com", "disabled-secret", Kind::failed, ""},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        asio::io_context io;
        const AuthVerdict v = run_verify(io, *r.auth, creds(r.user, r.password));
        EXPECT_EQ(v.kind, r.want_kind) << v.reason << "\n" << dovecot.log();
        if (r.want_kind == Kind::ok) {
            EXPECT_EQ(v.user, r.want_user);
        }
        EXPECT_EQ(v.reason.find(r.password), std::string::npos);
    }
    // several checks at once on one thread, each on its own connection
    asio::io_context io;
    int ok = 0;
    for (int i = 0; i < 8; ++i)
        asio::co_spawn(
            io,
            [&, i]() -> asio::awaitable<void> {
                const auto v = co_await unix_auth.verify(creds("alice@example.com", i % 2 ? "alice-secret" : "wrong"),
                                                         peer());
                if (v.kind == (i % 2 ? Kind::ok : Kind::failed)) ++ok;
            },
            asio::detached);
    io.run();
    EXPECT_EQ(ok, 8);
}

}  // namespace
