// handler.cpp: request -> decision -> reply, with one log line per decision:
//   event=decision queue_id=.. instance=.. client=.. state=.. sender=".." recipient=".."
//   policy=.. reason=.. action=".."
// Every value from the request goes through escape_value(), so a client cannot
// break the line or forge a key=value pair in it.
#include "handler.hpp"

#include <ctime>

#include <xproxy/base/escape.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/wire/trace_header.hpp>

namespace xproxy::policyd {

namespace {
std::int64_t wall_clock() { return static_cast<std::int64_t>(std::time(nullptr)); }

struct DecisionMetrics {
    metrics::CounterGrid by{metrics::registry().counter("xproxy_policyd_decisions_total",
                                                        "Policy decisions by the policy that answered and its action.",
                                                        {"policy", "action"}),
                            metrics::enum_names(PolicyId::risk), metrics::enum_names(ActionKind::inject)};
    metrics::Histogram& latency = metrics::registry()
                                      .histogram("xproxy_policyd_decision_duration_seconds",
                                                 "Time from a complete request to its answer (decision and signing).")
                                      .get();
    void count(const PolicyDecision& d) const {
        by.inc(static_cast<std::size_t>(d.policy), static_cast<std::size_t>(d.kind));
    }
};

const DecisionMetrics& decision_metrics() {
    static const DecisionMetrics m;
    return m;
}
}  // namespace

void register_decision_metrics() { (void)decision_metrics(); }

PolicyHandler::PolicyHandler(const StateHolder& states, std::string peer, std::int64_t (*now)())
    : states_(states), peer_(std::move(peer)), now_(now ? now : wall_clock) {
    auto s = states_.get();
    PolicyLimits lim;
    lim.max_line = s->options.max_line;
    lim.max_request = s->options.max_request;
    parser_ = std::make_unique<PolicyRequestParser>(lim);
}

std::string PolicyHandler::decide(const PolicyRequest& r, const State& s) {
    metrics::Timer timer(decision_metrics().latency);
    PolicyInput in;
    in.state = parse_protocol_state(r.get("protocol_state"));
    in.client_address = IpAddress::parse_mta(r.get("client_address"));
    in.sender = r.get("sender");
    in.recipient = r.get("recipient");
    in.sasl_username = r.get("sasl_username");
    in.tls_protocol = r.get("encryption_protocol");
    in.tls_active = !in.tls_protocol.empty();
    in.client_cert_fingerprint = r.get("ccert_fingerprint");
    std::string_view port = r.get("server_port");
    for (const auto& p : s.options.submission_ports)
        if (port == p) in.service = ServiceKind::submission;
    if (r.get("policy_context") == "submission") in.service = ServiceKind::submission;

    const auto directory = s.current_directory();
    PolicyDecision d = xproxy::decide(in, s.config, *directory);
    decision_metrics().count(d);
    std::string header;
    if (d.kind == ActionKind::inject) {
        SourceInfo si = policy_source_info(r);
        // The policy daemon runs before Postfix has seen the Message-ID: bind the sender.
        // PREPEND takes one line: the field is sent unfolded.
        MessageBinding binding{TraceBinding::envelope, "", std::string(in.sender)};
        header = s.options.header_name + ": " + sign_trace_header(si, s.options.signer, now_(), binding, s.keys);
    }
    std::string action = d.postfix_action(header);
    if (log::enabled(log::Level::info)) {
        std::string shown = d.kind == ActionKind::inject ? "PREPEND " + s.options.header_name + ": ..." : action;
        log::info(
            "event=decision queue_id=%s instance=%s client=%s state=%s sender=\"%s\" recipient=\"%s\" "
            "policy=%s reason=%s action=\"%s\"",
            escape_value(r.get("queue_id"), 32, false).c_str(), escape_value(r.get("instance"), 64, false).c_str(),
            escape_value(r.get("client_address"), 64, false).c_str(),
            escape_value(r.get("protocol_state"), 32, false).c_str(), escape_value(in.sender, 256, true).c_str(),
            escape_value(in.recipient, 256, true).c_str(), std::string(to_string(d.policy)).c_str(),
            std::string(d.reason.empty() ? "-" : d.reason).c_str(), escape_value(shown, 300, true).c_str());
    }
    return action;
}

FeedResult PolicyHandler::feed(const char* data, std::size_t size) {
    FeedResult out;
    std::vector<PolicyRequest> reqs;
    bool ok = parser_->feed(data, size, reqs);
    auto s = states_.get();  // one configuration for this batch of requests
    for (const auto& r : reqs) {
        if (r.get("request") != "smtpd_access_policy") {
            log::warning("event=bad_request peer=%s request=\"%s\" reason=\"not request=smtpd_access_policy\"",
                         peer_.c_str(), escape_value(r.get("request"), 64, true).c_str());
            out.close = true;
            return out;
        }
        out.replies += encode_policy_reply(decide(r, *s));
    }
    if (!ok) {
        log::warning("event=bad_request peer=%s reason=\"%s\"", peer_.c_str(), parser_->error().c_str());
        out.close = true;
    }
    return out;
}

void PolicyHandler::finish(const char* why) {
    if (parser_->pending_bytes() > 0)
        log::warning("event=incomplete_request peer=%s bytes=%zu reason=\"%s\"", peer_.c_str(),
                     parser_->pending_bytes(), why);
    else log::debug("event=disconnect peer=%s reason=\"%s\"", peer_.c_str(), why);
}

std::unique_ptr<ConnectionHandler> PolicyHandlerFactory::make(const std::string& peer) {
    return std::make_unique<PolicyHandler>(states_, peer, nullptr);
}

}  // namespace xproxy::policyd
