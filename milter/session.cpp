// session.cpp: the inject and verify logic of xproxy-milter (see session.hpp).
#include "session.hpp"

#include <algorithm>
#include <cstdio>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/metrics.hpp>

namespace xproxy::milter {

namespace {

// Macros that belong to one message; all others live as long as the connection.
bool message_macro(std::string_view name) {
    static constexpr std::string_view kMsg[] = {"i",         "mail_addr", "mail_host",  "mail_mailer",
                                                "rcpt_addr", "rcpt_host", "rcpt_mailer"};
    return std::find(std::begin(kMsg), std::end(kMsg), name) != std::end(kMsg);
}

std::string_view strip_braces(std::string_view name) {
    if (name.size() >= 2 && name.front() == '{' && name.back() == '}') return name.substr(1, name.size() - 2);
    return name;
}

// The null sender as MTAs pass it: "<>" from smtpd, "" from Postfix's cleanup.
bool null_sender(std::string_view s) {
    s = trim(s, kBlanks);
    return s.empty() || s == "<>";
}

// A host name worth recording: not empty, not "unknown", not a bracketed address.
bool usable_name(std::string_view n) { return !n.empty() && n != "unknown" && n.front() != '['; }

// The outcomes of set_summary(), in the order of the messages_total grid.
constexpr std::string_view kOutcomes[] = {"injected", "kept",   "error",    "missing",  "invalid",
                                          "blocked",  "policy", "verified", "rejected", "rcpt_rejected"};

// The milter's metrics; every series exists from the start.
struct SessionMetrics {
    metrics::CounterGrid decisions{
        metrics::registry().counter("xproxy_milter_decisions_total",
                                    "Policy decisions (MAIL, RCPT, verified end of message) by policy and action.",
                                    {"policy", "action"}),
        metrics::enum_names(PolicyId::risk), metrics::enum_names(ActionKind::inject)};
    metrics::Histogram& decision_seconds =
        metrics::registry().histogram("xproxy_milter_decision_duration_seconds", "Time of one policy decision.").get();
    metrics::CounterGrid verify{
        metrics::registry().counter("xproxy_milter_header_verify_total",
                                    "Topmost X-Original-Source headers verified, by mode and outcome (missing: none).",
                                    {"mode", "outcome"}),
        {"inject", "verify"},
        outcome_names()};
    metrics::CounterGrid messages{metrics::registry().counter("xproxy_milter_messages_total",
                                                              "Messages by mode and outcome.", {"mode", "outcome"}),
                                  {"inject", "verify"},
                                  {std::begin(kOutcomes), std::end(kOutcomes)}};

    static std::vector<std::string> outcome_names() {
        auto v = metrics::enum_names(TraceVerdict::future);
        v.emplace_back("missing");
        return v;
    }
};

const SessionMetrics& session_metrics() {
    static const SessionMetrics m;
    return m;
}

PolicyDecision decide_counted(const PolicyInput& in, const PolicyConfig& config, const Directory& dir) {
    const auto& m = session_metrics();
    metrics::Timer timer(m.decision_seconds);
    PolicyDecision d = decide(in, config, dir);
    m.decisions.inc(static_cast<std::size_t>(d.policy), static_cast<std::size_t>(d.kind));
    return d;
}

// A verdict, or (nullopt) no header at all.
void count_verify(Mode mode, std::optional<TraceVerdict> v) {
    auto missing = static_cast<std::size_t>(TraceVerdict::future) + 1;
    session_metrics().verify.inc(static_cast<std::size_t>(mode), v ? static_cast<std::size_t>(*v) : missing);
}

}  // namespace

const char* to_string(Mode m) { return m == Mode::inject ? "inject" : "verify"; }

const char* to_string(FailAction a) {
    switch (a) {
        case FailAction::accept: return "accept";
        case FailAction::tempfail: return "tempfail";
        case FailAction::reject: return "reject";
    }
    return "?";
}

std::optional<Mode> parse_mode(std::string_view text) {
    if (text == "inject") return Mode::inject;
    if (text == "verify") return Mode::verify;
    return std::nullopt;
}

std::optional<FailAction> parse_fail_action(std::string_view text) {
    if (text == "accept") return FailAction::accept;
    if (text == "tempfail") return FailAction::tempfail;
    if (text == "reject") return FailAction::reject;
    return std::nullopt;
}

void register_metrics() { (void)session_metrics(); }

Session::Session(std::shared_ptr<const Config> config) : config_(std::move(config)) {}

void Session::connect(std::string_view hostname, std::optional<Endpoint> peer) {
    peer_ = peer;
    if (peer_) peer_->addr = peer_->addr.normalized();
    hostname_ = std::string(hostname);
}

void Session::set_macro(std::string_view name, std::string_view value) {
    name = strip_braces(name);
    if (name.empty()) return;
    auto& map = message_macro(name) ? msg_macros_ : conn_macros_;
    map.insert_or_assign(std::string(name), std::string(value));
}

std::string Session::macro(std::string_view name) const {
    name = strip_braces(name);
    if (auto it = msg_macros_.find(name); it != msg_macros_.end()) return it->second;
    if (auto it = conn_macros_.find(name); it != conn_macros_.end()) return it->second;
    return {};
}

void Session::helo(std::string_view name) { helo_ = std::string(name); }

Reply Session::mail_from(std::string_view sender) {
    // A new MAIL starts a new message even if the MTA sent no abort before it; the MAIL
    // stage macros the adapter just set for this message stay.
    msg_ = Message{};
    summary_.clear();
    msg_.sender = std::string(sender);
    if (config_->mode != Mode::inject || !config_->policy.any()) return {};
    const auto directory = config_->current_directory();
    auto d = decide_counted(policy_input(ProtocolState::mail), config_->policy, *directory);
    auto r = policy_reply(d);
    if (!r.is_cont()) set_summary("rejected", std::string(to_string(d.policy)) + ":" + std::string(d.reason), nullptr);
    return r;
}

Reply Session::rcpt_to(std::string_view recipient) {
    msg_.recipients.emplace_back(recipient);
    if (config_->mode != Mode::inject || !config_->policy.any()) return {};
    auto in = policy_input(ProtocolState::rcpt);
    in.recipient = recipient;
    const auto directory = config_->current_directory();
    auto d = decide_counted(in, config_->policy, *directory);
    note_hold(d);
    auto r = policy_reply(d);
    if (!r.is_cont()) {
        msg_.recipients.pop_back();
        set_summary("rcpt_rejected", std::string(to_string(d.policy)) + ":" + std::string(d.reason), nullptr);
    }
    return r;
}

void Session::header(std::string_view name, std::string_view value) {
    if (iequals(name, kTraceFieldName)) {
        msg_.trace_values.emplace_back(value);
    } else if (iequals(name, kResultFieldName)) {
        ++msg_.result_count;
    } else if (iequals(name, "Message-ID") && !msg_.message_id_seen) {
        msg_.message_id = std::string(value);
        msg_.message_id_seen = true;
    }
}

void Session::abort() {
    msg_ = Message{};
    msg_macros_.clear();
}

PolicyInput Session::policy_input(ProtocolState state) const {
    PolicyInput in;
    in.state = state;
    if (peer_) {
        in.client_address = peer_->addr;
    } else {
        in.client_address = IpAddress::parse_mta(macro("client_addr"));
    }
    in.sender = msg_.sender;
    auto login = conn_macros_.find("auth_authen");
    if (login != conn_macros_.end()) in.sasl_username = login->second;
    auto tls = conn_macros_.find("tls_version");
    if (tls != conn_macros_.end() && !tls->second.empty()) {
        in.tls_active = true;
        in.tls_protocol = tls->second;
    }
    auto port = conn_macros_.find("daemon_port");
    if (port != conn_macros_.end())
        for (const auto& p : config_->submission_ports)
            if (port->second == p) in.service = ServiceKind::submission;
    return in;
}

Reply Session::policy_reply(const PolicyDecision& d) const {
    if (d.kind != ActionKind::reject && d.kind != ActionKind::defer) return {};
    auto kind = d.code >= 500 ? Reply::Kind::reject : Reply::Kind::tempfail;
    return Reply::make(kind, std::to_string(d.code), std::string(d.status), d.smtp_text());
}

// A hold decision holds the whole message (as Postfix's HOLD does): the first reason is
// kept, applied at end of message.
void Session::note_hold(const PolicyDecision& d) {
    if (d.kind != ActionKind::hold || !msg_.hold.empty()) return;
    msg_.hold = "<" + d.address + ">: " + d.text;
    msg_.hold_reason = std::string(to_string(d.policy)) + ":" + std::string(d.reason);
}

Reply Session::fail_reply(FailAction a, const char* why) const {
    switch (a) {
        case FailAction::accept: return {};
        case FailAction::tempfail:
            return Reply::make(Reply::Kind::tempfail, "451", "4.7.1", std::string("Original source ") + why);
        case FailAction::reject:
            return Reply::make(Reply::Kind::reject, "550", "5.7.1", std::string("Original source ") + why);
    }
    return {};
}

SourceInfo Session::build_source(std::int64_t now) const {
    SourceInfo s;
    if (peer_) {
        s.client = peer_;
        if (s.client->port == 0)
            if (auto p = parse_decimal<std::uint16_t>(macro("client_port"))) s.client->port = *p;
    } else if (auto a = IpAddress::parse_mta(macro("client_addr"))) {
        s.client = Endpoint{a->normalized(), parse_decimal<std::uint16_t>(macro("client_port")).value_or(0)};
    }
    if (auto a = IpAddress::parse_mta(macro("daemon_addr")))
        s.server = Endpoint{a->normalized(), parse_decimal<std::uint16_t>(macro("daemon_port")).value_or(0)};
    s.helo = helo_;
    if (std::string n = macro("client_name"); usable_name(n)) s.ptr_name = n;
    else if (usable_name(hostname_)) s.ptr_name = hostname_;
    s.tls.version = macro("tls_version");
    if (s.tls.active()) {
        s.tls.cipher = macro("cipher");
        s.tls.bits = parse_decimal<unsigned>(macro("cipher_bits")).value_or(0);
        s.tls.peer_subject = macro("cert_subject");
        s.tls.peer_issuer = macro("cert_issuer");
    }
    s.login = macro("auth_authen");
    // Sendmail's {r} names the protocol; Postfix has no such macro, and TLS or AUTH imply
    // EHLO, so ESMTPS / ESMTPA / ESMTPSA can be told; plain sessions leave it unknown.
    if (std::string r = macro("r"); !r.empty()) s.protocol = r;
    else if (s.tls.active() || !s.login.empty())
        s.protocol = std::string("ESMTP") + (s.tls.active() ? "S" : "") + (s.login.empty() ? "" : "A");
    s.session_id = macro("i");
    s.time = now;
    return s;
}

void Session::remove_all(std::vector<HeaderEdit>& edits, std::size_t keep_index) const {
    // Highest index first, so removing one field never shifts the index of the next.
    for (std::size_t i = msg_.trace_values.size(); i >= 1; --i) {
        if (i - 1 == keep_index) continue;
        edits.push_back(HeaderEdit{HeaderEdit::Kind::remove, std::string(kTraceFieldName), static_cast<int>(i), {}});
    }
    // A result header that came with the message is someone else's claim: whoever reads
    // ours must never find a forged "pass" next to (or instead of) it.
    for (std::size_t i = msg_.result_count; i >= 1; --i)
        edits.push_back(HeaderEdit{HeaderEdit::Kind::remove, std::string(kResultFieldName), static_cast<int>(i), {}});
}

EomResult Session::end_of_message(std::int64_t now) {
    source_ = SourceInfo{};
    EomResult r = config_->mode == Mode::inject ? inject(now) : verify(now);
    if (!r.reply.is_cont()) {
        r.edits.clear();
    } else if (!msg_.hold.empty()) {
        r.hold = msg_.hold;
        summary_ += " hold=" + msg_.hold_reason;
    }
    return r;
}

EomResult Session::inject(std::int64_t now) {
    EomResult out;
    MessageBinding binding{TraceBinding::message_id, msg_.message_id, msg_.sender};
    std::optional<IpAddress> peer_ip = peer_ ? std::optional<IpAddress>(peer_->addr)
                                             : IpAddress::parse_mta(macro("client_addr"));
    bool trusted = peer_ip && config_->trusted_upstreams.contains(*peer_ip);
    if (trusted && !msg_.trace_values.empty()) {
        // Only the topmost header speaks for the upstream: an older one further down may be
        // a replay that the upstream itself would have refused.
        auto v = verify_trace_header(msg_.trace_values[0], binding, config_->keys, now, config_->max_age,
                                     config_->max_future);
        count_verify(config_->mode, v.verdict);
        if (v.ok()) {
            remove_all(out.edits, 0);
            set_summary("kept", "removed=" + std::to_string(msg_.trace_values.size() - 1), &v.source);
            return out;
        }
    }
    source_ = build_source(now);
    if (!msg_.message_id_seen || msg_.message_id.find_first_not_of(" \t\r\n") == std::string::npos)
        binding.kind = TraceBinding::envelope;
    std::string value = sign_trace_header(source_, config_->signer, now, binding, config_->keys);
    if (value.empty()) {
        out.reply = Reply::make(Reply::Kind::tempfail, "451", "4.3.0", "Cannot sign the trace header");
        set_summary("error", "sign_failed", &source_);
        return out;
    }
    remove_all(out.edits, msg_.trace_values.size());
    std::string field = format_field(value, "\n");
    std::string body = field.substr(kTraceFieldName.size() + 2);  // after "X-Original-Source: "
    out.edits.push_back(HeaderEdit{HeaderEdit::Kind::insert, std::string(kTraceFieldName), 0, std::move(body)});
    set_summary("injected", "removed=" + std::to_string(msg_.trace_values.size()) + " b=" + to_string(binding.kind),
                &source_);
    return out;
}

EomResult Session::verify(std::int64_t now) {
    EomResult out;
    MessageBinding binding{TraceBinding::message_id, msg_.message_id, msg_.sender};
    // The topmost header decides: the hop in front of us put it there. A header further
    // down is older (or planted below ours by the client) and never counts, even when it
    // verifies, or a replayed header could vouch for a message whose own one fails.
    std::optional<TraceVerifyResult> good;
    std::size_t good_index = msg_.trace_values.size();
    std::string first_failure;
    if (!msg_.trace_values.empty()) {
        auto v = verify_trace_header(msg_.trace_values[0], binding, config_->keys, now, config_->max_age,
                                     config_->max_future);
        count_verify(config_->mode, v.verdict);
        if (v.ok()) {
            good = std::move(v);
            good_index = 0;
        } else {
            first_failure = to_string(v.verdict);
        }
    }
    if (msg_.trace_values.empty()) count_verify(config_->mode, std::nullopt);
    remove_all(out.edits, config_->keep_header ? good_index : msg_.trace_values.size());
    auto record = [&](std::string value) {
        if (config_->result_header)
            out.edits.push_back(
                HeaderEdit{HeaderEdit::Kind::insert, std::string(kResultFieldName), 0, std::move(value)});
    };
    if (!good) {
        bool missing = msg_.trace_values.empty();
        const char* verdict = missing ? "none" : first_failure.c_str();
        bool bounce = null_sender(msg_.sender);
        FailAction action = !missing ? config_->on_invalid : bounce ? config_->on_missing_bounce : config_->on_missing;
        out.reply = fail_reply(action, missing ? "missing" : "not verified");
        record(std::string(missing ? "none" : "fail") + " (" + verdict + "); by=" + config_->signer);
        set_summary(missing ? "missing" : "invalid",
                    std::string("verdict=") + verdict + " action=" + to_string(action) +
                        (missing && bounce ? " null_sender=1" : ""),
                    nullptr);
        return out;
    }
    source_ = good->source;
    const std::string ip = source_.client ? source_.client->addr.to_string() : std::string("unknown");
    if (source_.client && config_->block_list.contains(source_.client->addr)) {
        out.reply = Reply::make(Reply::Kind::reject, "550", "5.7.1", "Original client [" + ip + "] is blocked");
        set_summary("blocked", "kid=" + good->key_id, &source_);
        return out;
    }
    if (config_->policy.any()) {
        PolicyInput in;
        in.client_address = source_.client ? std::optional<IpAddress>(source_.client->addr) : std::nullopt;
        in.sender = msg_.sender;
        in.sasl_username = source_.login;
        in.tls_active = source_.tls.active();
        in.tls_protocol = source_.tls.version;
        in.trusted_upstream = false;  // the original client, not the hop in front of us
        if (source_.server)
            for (const auto& p : config_->submission_ports)
                if (std::to_string(source_.server->port) == p) in.service = ServiceKind::submission;
        in.state = ProtocolState::mail;
        const auto directory = config_->current_directory();  // one directory for the whole message
        auto d = decide_counted(in, config_->policy, *directory);
        for (std::size_t i = 0;
             d.kind != ActionKind::reject && d.kind != ActionKind::defer && i < msg_.recipients.size(); ++i) {
            in.state = ProtocolState::rcpt;
            in.recipient = msg_.recipients[i];
            d = decide_counted(in, config_->policy, *directory);
            note_hold(d);
        }
        if (auto r = policy_reply(d); !r.is_cont()) {
            out.reply = std::move(r);
            set_summary("policy", std::string(to_string(d.policy)) + ":" + std::string(d.reason), &source_);
            return out;
        }
    }
    record("pass ip=" + ip + "; kid=" + good->key_id + "; signer=" + escape(good->by, 64) + "; by=" + config_->signer);
    set_summary("verified", "kid=" + good->key_id + " b=" + to_string(good->binding), &source_);
    return out;
}

void Session::set_summary(std::string_view outcome, std::string_view detail, const SourceInfo* original) {
    auto known = std::find(std::begin(kOutcomes), std::end(kOutcomes), outcome);
    session_metrics().messages.inc(static_cast<std::size_t>(config_->mode),
                                   static_cast<std::size_t>(known - std::begin(kOutcomes)));
    std::string orig = "-";
    if (original && original->client) {
        orig = original->client->to_string();
        if (!original->login.empty()) orig += " login=\"" + escape_value(original->login, 64) + "\"";
    }
    std::string peer = peer_ ? peer_->to_string() : ("\"" + escape_value(macro("client_addr"), 64) + "\"");
    summary_ = "event=message queue_id=" + escape_value(macro("i"), 32, false) + " mode=" + to_string(config_->mode) +
               " client=" + peer + " original=" + orig + " sender=\"" + escape_value(msg_.sender) +
               "\" outcome=" + std::string(outcome) + " " + escape(detail, 200);
}

}  // namespace xproxy::milter
