// smtp_injector.cpp: the SMTP dialogue of one injection; see smtp_injector.hpp.
#include "smtp_injector.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <memory>

#include <xproxy/daemon/listen.hpp>
#include <xproxy/wire/bdat.hpp>
#include <xproxy/wire/data_scan.hpp>
#include <xproxy/wire/smtp_attrs.hpp>
#include <xproxy/wire/smtp_command.hpp>
#include <xproxy/wire/xclient.hpp>

#include "smtp_connection.hpp"

namespace xproxy::depositd {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxAddress = 512;  // bytes of a path between < and >

// A name fit for EHLO: printable ASCII without space, at most 255 bytes; else "".
std::string usable_helo(std::string_view h) {
    if (h.empty() || h.size() > 255) return {};
    for (char c : h)
        if (c <= ' ' || c > '~') return {};
    return std::string(h);
}

// A path that cannot break out of "<...>" or its command line: no control byte, no
// angle bracket, bounded.
bool usable_address(std::string_view a) {
    if (a.size() > kMaxAddress) return false;
    for (char ch : a) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f || c == '<' || c == '>') return false;
    }
    return true;
}

bool eight_bit(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) return true;
    return false;
}

// The EHLO after XCLIENT names the original client: Postfix's smtpd takes the HELO name
// from it. Without a usable HELO it is the client's address literal, never our own name.
std::string client_helo(const SourceInfo& src) {
    std::string h = usable_helo(src.helo);
    if (h.empty() && src.client) h = "[" + src.client->addr.normalized().to_mta_string() + "]";
    return h;
}

asio::awaitable<void> quit_later(std::shared_ptr<SmtpConnection> c) {
    const std::string e = co_await c->write(std::chrono::seconds(2), "QUIT\r\n");
    if (e.empty()) (void)co_await c->read_reply(std::chrono::seconds(2));
    c->close();
}

// One injection's state: the connection, the result being built, and the steps.
class Dialogue {
public:
    Dialogue(const InjectorConfig& cfg, asio::any_io_executor ex)
        : cfg_(cfg), ex_(std::move(ex)), conn_(std::make_shared<SmtpConnection>(ex_)) {}

    InjectResult& result() { return res_; }

    // A failure of our own (no reply decides it): always temporary. broken: the
    // connection is unusable (closed, timed out, garbled), so no QUIT.
    void fail(std::string_view stage, std::string text, bool broken) {
        broken_ = broken_ || broken;
        res_.outcome = InjectOutcome::tempfail;
        res_.code = 0;
        res_.enhanced.clear();
        res_.text = std::move(text);
        res_.stage = std::string(stage);
    }

    // The MTA's reply decides: 4xx temporary, 5xx permanent where the message (its sender,
    // recipients or content) is refused; anything else, and a refusal of our session
    // itself (greeting, EHLO, XCLIENT), temporary.
    void refused(std::string_view stage, const smtp::SmtpReply& r, bool message_stage) {
        res_.outcome = message_stage && r.permanent() ? InjectOutcome::permfail : InjectOutcome::tempfail;
        res_.code = r.code;
        res_.enhanced = smtp::enhanced_status(r);
        res_.text = smtp::printable_text(r);
        res_.stage = std::string(stage);
    }

    // Reads one reply; false (and the result set) unless its code is `want` (or, with
    // want < 10, of that class).
    asio::awaitable<bool> expect(std::string_view stage, int want, std::chrono::seconds timeout,
                                 smtp::SmtpReply* reply = nullptr, bool message_stage = false) {
        ReplyRead r = co_await conn_->read_reply(timeout);
        if (!r.ok()) {
            fail(stage, r.error + " (waiting for the reply to " + std::string(stage) + ")", true);
            co_return false;
        }
        const bool good = want < 10 ? r.reply.code / 100 == want : r.reply.code == want;
        if (!good) refused(stage, r.reply, message_stage);
        if (reply) *reply = std::move(r.reply);
        co_return good;
    }

    asio::awaitable<bool> command(std::string_view stage, std::string_view line, int want,
                                  smtp::SmtpReply* reply = nullptr, bool message_stage = false) {
        const std::string e = co_await conn_->write(cfg_.command_timeout, line);
        if (!e.empty()) {
            fail(stage, e + " (sending " + std::string(stage) + ")", true);
            co_return false;
        }
        const bool ok = co_await expect(stage, want, cfg_.command_timeout, reply, message_stage);
        co_return ok;
    }

    asio::awaitable<bool> ehlo(const std::string& name, smtp::EhloKeywords& keywords) {
        const std::string line = "EHLO " + name + "\r\n";
        smtp::SmtpReply r;
        if (!co_await command("ehlo", line, 250, &r)) co_return false;
        keywords = smtp::parse_ehlo(r.lines);
        co_return true;
    }

    asio::awaitable<bool> open() {
        auto spec = daemon::parse_listen(cfg_.mta);
        if (!spec) {
            fail("connect", spec.error(), true);
            co_return false;
        }
        const std::string e = co_await conn_->connect(*spec, cfg_.connect_timeout);
        if (!e.empty()) {
            fail("connect", e, true);
            co_return false;
        }
        const bool ok = co_await expect("greeting", 220, cfg_.command_timeout);
        co_return ok;
    }

    asio::awaitable<bool> announce(const SourceInfo& src) {
        std::string own = usable_helo(cfg_.helo_name);
        if (own.empty()) {
            boost::system::error_code ec;  // host_name() without it throws
            own = usable_helo(asio::ip::host_name(ec));
        }
        if (own.empty()) own = "localhost";
        smtp::EhloKeywords k;
        if (!co_await ehlo(own, k)) co_return false;
        const std::string* offered = k.get("XCLIENT");
        if (!offered) {
            fail("xclient", "the MTA does not offer XCLIENT to this client (smtpd_authorized_xclient_hosts)", false);
            co_return false;
        }
        const std::set<std::string> adv = smtp::parse_ehlo_keyword(*offered);
        std::string missing;
        for (const char* a : {"ADDR", "PORT", "LOGIN"})
            if (!adv.count(a) && (std::string_view(a) != "LOGIN" || !src.login.empty()))
                missing += std::string(missing.empty() ? "" : " ") + a;
        if (!missing.empty()) {
            fail("xclient", "the MTA's XCLIENT does not take " + missing, false);
            co_return false;
        }
        const smtp::Encoded x = smtp::encode_xclient(src, adv);
        if (!x) {
            fail("xclient", "cannot announce the client: " + x.error, false);
            co_return false;
        }
        for (const auto& line : x.lines)
            if (!co_await command("xclient", line, 2)) co_return false;
        std::string helo = client_helo(src);
        if (helo.empty()) helo = own;
        const bool ok = co_await ehlo(helo, keywords_);
        co_return ok;
    }

    // MAIL and every RCPT, in one write when PIPELINING is offered. All or nothing: the
    // first refusal decides, and the transaction is reset.
    asio::awaitable<bool> envelope(const InjectRequest& req, std::uint64_t size, bool body_8bit) {
        std::string mail = "MAIL FROM:<" + req.sender + ">";
        if (keywords_.has("SIZE")) mail += " SIZE=" + std::to_string(size);
        if (body_8bit && keywords_.has("8BITMIME")) mail += " BODY=8BITMIME";
        bool utf8 = eight_bit(req.sender);
        for (const auto& r : req.recipients) utf8 = utf8 || eight_bit(r);
        if (utf8 && keywords_.has("SMTPUTF8")) mail += " SMTPUTF8";
        mail += "\r\n";
        std::vector<std::string> rcpts;
        rcpts.reserve(req.recipients.size());
        for (const auto& r : req.recipients) rcpts.push_back("RCPT TO:<" + r + ">\r\n");
        bool ok = true;
        if (keywords_.has("PIPELINING")) {
            std::string batch = mail;
            for (const auto& l : rcpts) batch += l;
            const std::string e = co_await conn_->write(cfg_.command_timeout, batch);
            if (!e.empty()) {
                fail("mail", e + " (sending MAIL)", true);
                co_return false;
            }
            for (std::size_t i = 0; i <= rcpts.size(); ++i) {
                const std::string_view stage = i == 0 ? "mail" : "rcpt";
                ReplyRead r = co_await conn_->read_reply(cfg_.command_timeout);
                if (!r.ok()) {
                    if (ok) fail(stage, r.error + " (waiting for the reply to " + std::string(stage) + ")", true);
                    broken_ = true;
                    co_return false;
                }
                if (!r.reply.positive() && ok) {
                    refused(stage, r.reply, true);
                    ok = false;
                }
            }
        } else {
            ok = co_await command("mail", mail, 2, nullptr, true);
            for (std::size_t i = 0; ok && i < rcpts.size(); ++i)
                ok = co_await command("rcpt", rcpts[i], 2, nullptr, true);
        }
        if (!ok && !broken_) {
            const std::string e = co_await conn_->write(cfg_.command_timeout, "RSET\r\n");
            if (e.empty()) (void)co_await conn_->read_reply(cfg_.command_timeout);
        }
        co_return ok;
    }

    asio::awaitable<bool> data(std::string_view header, std::string_view body) {
        if (!co_await command("data", "DATA\r\n", 354, nullptr, true)) co_return false;
        const std::string e = co_await conn_->write(cfg_.data_timeout, header, body, ".\r\n");
        if (!e.empty()) {
            fail("dot", e + " (sending the message)", true);
            co_return false;
        }
        smtp::SmtpReply r;
        if (!co_await expect("dot", 2, cfg_.data_timeout, &r, true)) co_return false;
        res_.outcome = InjectOutcome::accepted;
        res_.code = r.code;
        res_.enhanced = smtp::enhanced_status(r);
        res_.text = smtp::printable_text(r);
        res_.stage = "dot";
        res_.queue_id = smtp::queued_as(r);
        co_return true;
    }

    // QUIT without waiting for the 221 (the outcome is known), unless the connection broke.
    void finish() {
        if (broken_) conn_->close();
        else asio::co_spawn(ex_, quit_later(conn_), asio::detached);
    }

private:
    const InjectorConfig& cfg_;
    asio::any_io_executor ex_;
    std::shared_ptr<SmtpConnection> conn_;
    smtp::EhloKeywords keywords_;  // of the EHLO after XCLIENT
    InjectResult res_;
    bool broken_ = false;
};

// A request that must not reach the MTA as it is: why, or "".
std::string check_request(const InjectRequest& req, std::string& stage) {
    stage = "mail";
    if (!usable_address(req.sender)) return "the sender has a control character or angle bracket, or is too long";
    stage = "rcpt";
    if (req.recipients.empty()) return "no recipient";
    for (const auto& r : req.recipients)
        if (r.empty() || !usable_address(r))
            return "a recipient is empty, has a control character or angle bracket, or is too long";
    stage = "data";
    const std::string_view h = req.trace_header;
    if (!h.empty() && (h.size() < 2 || h.substr(h.size() - 2) != "\r\n"))
        return "the trace header does not end with CRLF";
    return {};
}

}  // namespace

asio::awaitable<InjectResult> SmtpInjector::inject(asio::any_io_executor ex, const InjectRequest& request) const {
    std::string stage;
    if (std::string why = check_request(request, stage); !why.empty()) {
        InjectResult r;
        r.outcome = InjectOutcome::permfail;
        r.text = std::move(why);
        r.stage = stage;
        co_return r;
    }
    // The wire form first: SIZE= is its length. A message already in wire form is sent
    // from the caller's buffer; else one transformed copy is made.
    const smtp::DataBodyScan scan = smtp::scan_data_body(request.message);
    std::string encoded;
    std::string_view body = request.message;
    if (!scan.canonical) {
        encoded.reserve(request.message.size() + request.message.size() / 32 + 2);
        smtp::BdatToData conv;
        conv.feed(request.message, encoded);
        conv.finish(encoded);
        body = encoded;
    }
    SourceInfo src = request.source;
    if (src.protocol.empty()) src.protocol = "ESMTP";

    Dialogue d(config_, ex);
    bool ok = co_await d.open();
    if (ok) ok = co_await d.announce(src);
    if (ok) ok = co_await d.envelope(request, request.trace_header.size() + body.size(), scan.eight_bit);
    if (ok) ok = co_await d.data(request.trace_header, body);
    d.finish();
    co_return d.result();
}

}  // namespace xproxy::depositd
