// depositd_smtp_injector_test: SmtpInjector against an in-process scripted SMTP server
// (Boost.Asio, on loopback or a unix socket): the exact commands and bytes sent (XCLIENT
// line, the EHLO that names the client, MAIL parameters, pipelining, trace header first,
// CRLF, dot-stuffing) and the outcome for each way the MTA can answer or fail.
#include <gtest/gtest.h>

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <unistd.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "smtp_injector.hpp"

namespace asio = boost::asio;
using namespace xproxy;
using namespace xproxy::depositd;
using Proto = asio::generic::stream_protocol;
using Acceptor = asio::basic_socket_acceptor<Proto>;

namespace {

const std::string kEhlo =
    "250-mta.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
    "250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n250 SMTPUTF8\r\n";
const std::string kTrace = "X-Original-Source: v=1; ip=192.0.2.7; port=40123;\r\n login=alice@example.org\r\n";

// What the server answers. A verb in silent_at / close_at ("EHLO", "MAIL", ..., or "BODY"
// for the message itself) makes it stop answering / close the connection there.
struct Script {
    std::string greeting = "220 mta.test ESMTP\r\n";
    std::string ehlo = kEhlo;
    std::string xclient = "220 mta.test ESMTP\r\n";
    std::string mail = "250 2.1.0 Ok\r\n";
    std::function<std::string(const std::string&)> rcpt = [](const std::string&) { return "250 2.1.5 Ok\r\n"; };
    std::string data = "354 End data with <CR><LF>.<CR><LF>\r\n";
    std::string dot = "250 2.0.0 Ok: queued as 4AbCdEf123\r\n";
    std::string silent_at;
    std::string close_at;
};

// What the server saw.
struct Seen {
    bool connected = false;
    std::vector<std::string> lines;  // commands, without CRLF
    std::string body;                // after DATA, up to and including ".\r\n"
    bool rcpt_with_mail = false;     // RCPT lines had arrived when MAIL was answered
};

asio::awaitable<void> serve(Acceptor& acc, const Script& s, Seen& seen) {
    boost::system::error_code ec;
    Proto::socket sock = co_await acc.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    seen.connected = true;
    std::string in;
    bool silent = false;
    auto say = [&](const std::string& text) -> asio::awaitable<bool> {
        if (silent) co_return true;
        boost::system::error_code wec;
        co_await asio::async_write(sock, asio::buffer(text), asio::redirect_error(asio::use_awaitable, wec));
        co_return !wec;
    };
    auto more = [&]() -> asio::awaitable<bool> {
        std::vector<char> buf(65536);
        boost::system::error_code rec;
        const std::size_t n = co_await sock.async_read_some(asio::buffer(buf),
                                                            asio::redirect_error(asio::use_awaitable, rec));
        if (rec) co_return false;
        in.append(buf.data(), n);
        co_return true;
    };
    if (!co_await say(s.greeting)) co_return;
    for (;;) {
        std::size_t lf;
        while ((lf = in.find("\r\n")) == std::string::npos)
            if (!co_await more()) co_return;
        const std::string line = in.substr(0, lf);
        in.erase(0, lf + 2);
        seen.lines.push_back(line);
        const std::string verb = line.substr(0, line.find_first_of(" :"));
        if (verb == s.close_at) co_return;
        if (verb == s.silent_at) silent = true;
        std::string reply;
        if (verb == "EHLO") reply = s.ehlo;
        else if (verb == "XCLIENT") reply = s.xclient;
        else if (verb == "MAIL") {
            seen.rcpt_with_mail = in.find("RCPT TO:") != std::string::npos;
            reply = s.mail;
        } else if (verb == "RCPT") {
            reply = s.rcpt(line.substr(9, line.size() - 10));
        } else if (verb == "RSET") reply = "250 2.0.0 Ok\r\n";
        else if (verb == "QUIT") {
            co_await say("221 2.0.0 Bye\r\n");
            co_return;
        } else if (verb == "DATA") {
            if (!co_await say(s.data)) co_return;
            if (s.data.rfind("354", 0) != 0) continue;
            std::size_t end;
            while ((end = in.find("\r\n.\r\n")) == std::string::npos && in.rfind(".\r\n", 0) != 0) {
                if (s.close_at == "BODY" && !in.empty()) co_return;
                if (!co_await more()) co_return;
            }
            end = in.rfind(".\r\n", 0) == 0 ? 0 : end + 2;
            seen.body = in.substr(0, end + 3);
            in.erase(0, end + 3);
            if (s.silent_at == "BODY") silent = true;
            reply = s.dot;
        } else reply = "502 5.5.2 Error: command not recognized\r\n";
        if (!co_await say(reply)) co_return;
    }
}

struct Injected {
    InjectResult result;
    Seen seen;
    double seconds = 0;
};

const std::string kMessage = "Subject: hi\r\n\r\nbody\r\n";

// The request views `message`: it must outlive the injection (a global, or a temporary
// of the full expression that runs it).
InjectRequest request(const std::string& message = kMessage) {
    InjectRequest r;
    r.source.client = Endpoint{*IpAddress::parse("192.0.2.7"), 40123};
    r.source.login = "alice@example.org";
    r.sender = "alice@example.org";
    r.recipients = {"bob@example.net", "carol@example.net"};
    r.trace_header = kTrace;
    r.message = message;
    return r;
}

InjectorConfig config(std::string mta = {}) {
    InjectorConfig c;
    c.mta = std::move(mta);
    c.helo_name = "deposit.test";
    c.connect_timeout = std::chrono::seconds(2);
    c.command_timeout = std::chrono::seconds(5);
    c.data_timeout = std::chrono::seconds(5);
    return c;
}

// Runs one injection against a server following `s` (on TCP loopback, or on a unix
// socket when `unix_path` is set).
Injected run(const Script& s, const InjectRequest& req, InjectorConfig cfg = config(),
             const std::string& unix_path = {}) {
    asio::io_context ioc;
    Acceptor acc(ioc);
    if (unix_path.empty()) {
        asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
        acc.open(Proto::endpoint(ep).protocol());
        acc.bind(Proto::endpoint(ep));
        acc.listen();
        asio::ip::tcp::endpoint bound;
        bound.resize(acc.local_endpoint().size());
        std::memcpy(bound.data(), acc.local_endpoint().data(), bound.size());
        if (cfg.mta.empty()) cfg.mta = "inet:127.0.0.1:" + std::to_string(bound.port());
    } else {
        ::unlink(unix_path.c_str());
        asio::local::stream_protocol::endpoint ep(unix_path);
        acc.open(Proto::endpoint(ep).protocol());
        acc.bind(Proto::endpoint(ep));
        acc.listen();
        cfg.mta = "unix:" + unix_path;
    }
    Injected out;
    asio::co_spawn(ioc, serve(acc, s, out.seen), asio::detached);
    const SmtpInjector inj(cfg);
    const auto t0 = std::chrono::steady_clock::now();
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            out.result = co_await inj.inject(ioc.get_executor(), req);
            out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (!out.seen.connected) acc.close();  // nobody will come
        },
        asio::detached);
    ioc.run_for(std::chrono::seconds(20));
    return out;
}

bool sent(const Seen& s, const std::string& prefix) {
    for (const auto& l : s.lines)
        if (l.rfind(prefix, 0) == 0) return true;
    return false;
}

}  // namespace

TEST(SmtpInjector, DialogueAndBytes) {
    // LF line ends, a line starting with ".", no final line end.
    const std::string msg = "Subject: hi\n\n.hidden\nlast";
    const std::string want_body = kTrace + "Subject: hi\r\n\r\n..hidden\r\nlast\r\n.\r\n";
    const Injected r = run(Script{}, request(msg));
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted) << r.result.text;
    EXPECT_EQ(r.result.code, 250);
    EXPECT_EQ(r.result.enhanced, "2.0.0");
    EXPECT_EQ(r.result.text, "Ok: queued as 4AbCdEf123");
    EXPECT_EQ(r.result.stage, "dot");
    EXPECT_EQ(r.result.queue_id, "4AbCdEf123");
    const std::string size = std::to_string(want_body.size() - 3);  // without the final dot
    const std::vector<std::string> want = {
        "EHLO deposit.test",
        "XCLIENT PROTO=ESMTP HELO=[UNAVAILABLE] LOGIN=alice@example.org NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=40123",
        "EHLO [192.0.2.7]",  // the client's name for Postfix's HELO, never ours
        "MAIL FROM:<alice@example.org> SIZE=" + size,
        "RCPT TO:<bob@example.net>",
        "RCPT TO:<carol@example.net>",
        "DATA",
        "QUIT",
    };
    EXPECT_EQ(r.seen.lines, want);
    EXPECT_EQ(r.seen.body, want_body);
    EXPECT_TRUE(r.seen.rcpt_with_mail) << "MAIL and RCPT not pipelined";
}

TEST(SmtpInjector, CanonicalMessageGoesAsItIs) {
    const std::string msg = "From: a@b\r\nSubject: x\r\n\r\nline one\r\nline two\r\n";
    const Injected r = run(Script{}, request(msg));
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted);
    EXPECT_EQ(r.seen.body, kTrace + msg + ".\r\n");
}

TEST(SmtpInjector, BareCrEndsALine) {
    // A lone CR is a line end (as the house's DATA decoder reads it), so no bare CR
    // reaches the MTA; a run of CRs before LF is one line end; "\r." becomes a line "..".
    const Injected r = run(Script{}, request("a\rb\r\r\nc\r.\r\nd"));
    EXPECT_EQ(r.seen.body, kTrace + "a\r\nb\r\nc\r\n..\r\nd\r\n.\r\n");
}

TEST(SmtpInjector, EightBitBody) {
    const std::string msg = "Subject: caf\xc3\xa9\r\n\r\nx\r\n";
    Injected r = run(Script{}, request(msg));
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted);
    EXPECT_TRUE(sent(
        r.seen, "MAIL FROM:<alice@example.org> SIZE=" + std::to_string(kTrace.size() + msg.size()) + " BODY=8BITMIME"));
    // Not offered: sent all the same (as Postfix does), without the parameter.
    Script no8;
    no8.ehlo = "250-mta.test\r\n250-XCLIENT ADDR PORT LOGIN HELO NAME PROTO\r\n250 PIPELINING\r\n";
    r = run(no8, request(msg));
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted);
    EXPECT_TRUE(sent(r.seen, "MAIL FROM:<alice@example.org>")) << r.seen.lines.size();
    EXPECT_FALSE(sent(r.seen, "MAIL FROM:<alice@example.org> "));
}

TEST(SmtpInjector, WithoutPipeliningWaitsForEachReply) {
    Script s;
    s.ehlo = "250-mta.test\r\n250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN\r\n250 SIZE\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted);
    EXPECT_FALSE(r.seen.rcpt_with_mail);
    EXPECT_TRUE(sent(r.seen, "RCPT TO:<carol@example.net>"));
}

TEST(SmtpInjector, RecipientTempfailAbortsAll) {
    Script s;
    s.rcpt = [](const std::string& a) {
        return a == "carol@example.net" ? "450 4.2.0 <carol@example.net>: Recipient address rejected: try later\r\n"
                                        : "250 2.1.5 Ok\r\n";
    };
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "rcpt");
    EXPECT_EQ(r.result.code, 450);
    EXPECT_EQ(r.result.enhanced, "4.2.0");
    EXPECT_EQ(r.result.text, "<carol@example.net>: Recipient address rejected: try later");
    EXPECT_FALSE(sent(r.seen, "DATA"));
    EXPECT_TRUE(sent(r.seen, "RSET"));
    EXPECT_TRUE(r.seen.body.empty());
}

TEST(SmtpInjector, RecipientRefusedIsPermanent) {
    Script s;
    s.rcpt = [](const std::string&) { return "550 5.1.1 <bob@example.net>: Recipient address rejected\r\n"; };
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::permfail);
    EXPECT_EQ(r.result.stage, "rcpt");
    EXPECT_EQ(r.result.code, 550);
    EXPECT_EQ(r.result.text, "<bob@example.net>: Recipient address rejected");  // the first refusal
    EXPECT_FALSE(sent(r.seen, "DATA"));
}

TEST(SmtpInjector, SenderRefusedWithoutPipelining) {
    Script s;
    s.ehlo = "250-mta.test\r\n250 XCLIENT NAME ADDR PORT PROTO HELO LOGIN\r\n";
    s.mail = "553 5.7.1 <alice@example.org>: Sender address rejected: not owned by user\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::permfail);
    EXPECT_EQ(r.result.stage, "mail");
    EXPECT_FALSE(sent(r.seen, "RCPT"));
}

TEST(SmtpInjector, FinalDotRefusal) {
    Script s;
    s.dot = "554-5.7.1 rejected by content filter\r\n554 5.7.1 spam score 99\r\n";
    Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::permfail);
    EXPECT_EQ(r.result.stage, "dot");
    EXPECT_EQ(r.result.code, 554);
    EXPECT_EQ(r.result.enhanced, "5.7.1");
    EXPECT_EQ(r.result.text, "rejected by content filter spam score 99");
    EXPECT_EQ(r.result.queue_id, "");
    s.dot = "451 4.3.0 Error: queue file write error\r\n";
    r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "dot");
    EXPECT_EQ(r.result.code, 451);
}

TEST(SmtpInjector, DataRefused) {
    Script s;
    s.data = "554 5.5.1 Error: no valid recipients\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::permfail);
    EXPECT_EQ(r.result.stage, "data");
    EXPECT_TRUE(r.seen.body.empty());
}

TEST(SmtpInjector, NoXclientOffered) {
    Script s;
    s.ehlo = "250-mta.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "xclient");
    EXPECT_EQ(r.result.code, 0);
    EXPECT_NE(r.result.text.find("smtpd_authorized_xclient_hosts"), std::string::npos) << r.result.text;
    EXPECT_FALSE(sent(r.seen, "MAIL"));
    EXPECT_TRUE(sent(r.seen, "QUIT"));
}

TEST(SmtpInjector, XclientWithoutLogin) {
    Script s;
    s.ehlo = "250-mta.test\r\n250 XCLIENT NAME ADDR PORT PROTO HELO\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "xclient");
    EXPECT_FALSE(sent(r.seen, "XCLIENT"));
    EXPECT_FALSE(sent(r.seen, "MAIL"));
}

TEST(SmtpInjector, XclientRefused) {
    Script s;
    s.xclient = "550 5.7.0 Error: insufficient authorization\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);  // our session is refused, not the message
    EXPECT_EQ(r.result.stage, "xclient");
    EXPECT_EQ(r.result.code, 550);
    EXPECT_EQ(r.result.text, "Error: insufficient authorization");
    EXPECT_FALSE(sent(r.seen, "MAIL"));
}

TEST(SmtpInjector, GreetingRefused) {
    Script s;
    s.greeting = "554 5.3.2 mta.test service not available\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "greeting");
    EXPECT_EQ(r.result.code, 554);
}

TEST(SmtpInjector, ServerClosesMidData) {
    Script s;
    s.close_at = "BODY";
    const std::string big(200000, 'x');
    const Injected r = run(s, request("Subject: big\r\n\r\n" + big + "\r\n"));
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "dot");
    EXPECT_EQ(r.result.code, 0);
    EXPECT_EQ(r.result.queue_id, "");
}

TEST(SmtpInjector, ServerClosesAtRcpt) {
    Script s;
    s.close_at = "RCPT";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.code, 0);
    EXPECT_NE(r.result.text.find("closed"), std::string::npos) << r.result.text;
}

TEST(SmtpInjector, OversizeReplyLine) {
    Script s;
    s.ehlo = "250-mta.test\r\n250-" + std::string(3000, 'A') + "\r\n250 XCLIENT ADDR PORT LOGIN\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "ehlo");
    EXPECT_EQ(r.result.code, 0);
    EXPECT_FALSE(sent(r.seen, "XCLIENT"));
}

TEST(SmtpInjector, TooManyReplyLines) {
    Script s;
    s.ehlo.clear();
    for (int i = 0; i < 150; ++i) s.ehlo += "250-X" + std::to_string(i) + "\r\n";
    s.ehlo += "250 XCLIENT ADDR PORT LOGIN\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "ehlo");
}

TEST(SmtpInjector, CommandTimeout) {
    Script s;
    s.silent_at = "EHLO";
    InjectorConfig c = config();
    c.command_timeout = std::chrono::seconds(1);
    const Injected r = run(s, request(), c);
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "ehlo");
    EXPECT_NE(r.result.text.find("timeout"), std::string::npos) << r.result.text;
    EXPECT_LT(r.seconds, 10.0);  // the deadline, not the test's 20 s cap
}

TEST(SmtpInjector, FinalReplyTimeout) {
    Script s;
    s.silent_at = "BODY";
    InjectorConfig c = config();
    c.data_timeout = std::chrono::seconds(1);
    const Injected r = run(s, request(), c);
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "dot");
    EXPECT_NE(r.result.text.find("timeout"), std::string::npos) << r.result.text;
    EXPECT_LT(r.seconds, 10.0);  // the deadline, not the test's 20 s cap
}

TEST(SmtpInjector, ConnectRefused) {
    // A port that was just free: nothing listens there.
    asio::io_context probe;
    asio::ip::tcp::acceptor a(probe, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto port = a.local_endpoint().port();
    a.close();
    const Injected r = run(Script{}, request(), config("inet:127.0.0.1:" + std::to_string(port)));
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "connect");
    EXPECT_EQ(r.result.code, 0);
}

TEST(SmtpInjector, BadMtaSpec) {
    const Injected r = run(Script{}, request(), config("systemd"));
    EXPECT_EQ(r.result.outcome, InjectOutcome::tempfail);
    EXPECT_EQ(r.result.stage, "connect");
    EXPECT_FALSE(r.seen.connected);
}

TEST(SmtpInjector, UnixSocket) {
    const std::string path = ::testing::TempDir() + "smtp_injector_test." + std::to_string(::getpid()) + ".sock";
    const Injected r = run(Script{}, request(), config(), path);
    ::unlink(path.c_str());
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted) << r.result.text;
    EXPECT_EQ(r.result.queue_id, "4AbCdEf123");
}

TEST(SmtpInjector, AddressesThatWouldBreakTheCommandLine) {
    struct Row {
        const char* name;
        std::string sender;
        std::vector<std::string> rcpts;
        const char* want_stage;
    };
    const Row rows[] = {
        {"CRLF in recipient", "a@b", {"x@y>\r\nRCPT TO:<evil@z"}, "rcpt"},
        {"angle bracket in sender", "a@b> SIZE=1", {"x@y"}, "mail"},
        {"NUL in recipient", "a@b", {std::string("x@y\0z", 5)}, "rcpt"},
        {"no recipient", "a@b", {}, "rcpt"},
        {"empty recipient", "a@b", {""}, "rcpt"},
    };
    for (const auto& row : rows) {
        InjectRequest req = request();
        req.sender = row.sender;
        req.recipients = row.rcpts;
        const Injected r = run(Script{}, req);
        EXPECT_EQ(r.result.outcome, InjectOutcome::permfail) << row.name;
        EXPECT_EQ(r.result.stage, row.want_stage) << row.name;
        EXPECT_FALSE(r.seen.connected) << row.name << ": nothing may reach the MTA";
    }
}

TEST(SmtpInjector, NullSenderAndClientHelo) {
    InjectRequest req = request();
    req.sender = "";
    req.source.helo = "client.example";
    const Injected r = run(Script{}, req);
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted);
    EXPECT_TRUE(sent(r.seen, "MAIL FROM:<> SIZE="));
    EXPECT_TRUE(sent(r.seen, "EHLO client.example"));
}

TEST(SmtpInjector, QueueIdNotPrintableIsDropped) {
    Script s;
    s.dot = "250 2.0.0 Ok: queued as 4Ab\x01<script>\r\n";
    const Injected r = run(s, request());
    EXPECT_EQ(r.result.outcome, InjectOutcome::accepted);
    EXPECT_EQ(r.result.queue_id, "");
    EXPECT_EQ(r.result.text, "Ok: queued as 4Ab?<script>");
}
