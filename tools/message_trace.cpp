// message_trace.cpp: the analysis and the text of `xproxy-wire trace` (see
// message_trace.hpp).
#include "message_trace.hpp"

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::tools {

namespace {

// "<a@b>" -> "a@b"; the null path "<>" -> "".
std::string strip_angle(std::string_view v) {
    if (v.size() >= 2 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
    return std::string(v);
}

std::string source_text(const SourceInfo& s) {
    std::string out = s.client ? s.client->to_string() : std::string("(no address)");
    if (!s.helo.empty()) out += " helo=" + escape(s.helo, 80);
    if (!s.ptr_name.empty()) out += " name=" + escape(s.ptr_name, 80);
    if (!s.login.empty()) out += " login=" + escape(s.login, 80);
    if (s.tls.active()) out += " tls=" + escape(s.tls.version, 32);
    return out;
}

std::string hop_text(const ReceivedFields& r) {
    std::string out;
    if (!r.from.empty()) out += "from " + escape(r.from, 160);
    if (!r.by.empty()) out += std::string(out.empty() ? "" : " ") + "by " + escape(r.by, 120);
    if (!r.with.empty()) out += " with " + escape(r.with, 40);
    if (!r.id.empty()) out += " id " + escape(r.id, 60);
    if (!r.date.empty()) out += "; " + escape(r.date, 60);
    return out.empty() ? "(empty)" : out;
}

}  // namespace

Expected<TraceReport> trace_message(std::string_view message, const KeyRing& keys, const TraceOptions& options) {
    auto header = parse_message_header(message);
    if (!header) return Failure{"the message's header does not parse: " + header.error()};
    TraceReport rep;
    const auto& fields = header->fields;
    if (auto i = header->find("Message-ID"); i < fields.size()) rep.message_id = fields[i].value;
    if (options.sender) {
        rep.sender = *options.sender;
        rep.sender_known = true;
    } else if (auto i = header->find("Return-Path"); i < fields.size()) {
        rep.sender = strip_angle(fields[i].value);
        rep.sender_known = true;
    }
    const MessageBinding binding{TraceBinding::message_id, rep.message_id, rep.sender};
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (iequals(fields[i].name, "Received")) rep.hops.push_back(HopEntry{i, parse_received(fields[i].value)});
        if (iequals(fields[i].name, kTraceFieldName))
            rep.traces.push_back(TraceEntry{i, verify_trace_header(fields[i].value, binding, keys, options.now,
                                                                   options.max_age, options.max_future)});
    }
    if (rep.verified()) {
        for (std::size_t h = 0; h < rep.hops.size(); ++h)
            if (rep.hops[h].field > rep.traces.front().field) {
                rep.vouching_hop = h;
                break;
            }
    }
    return rep;
}

std::string format_report(const TraceReport& r) {
    std::string out;
    out += "message-id: " + (r.message_id.empty() ? std::string("(none)") : escape(r.message_id, 200)) + "\n";
    out += "envelope sender: " +
           (r.sender_known ? "<" + escape(r.sender, 200) + ">"
                           : std::string("(unknown: no Return-Path, no --sender)")) +
           "\n";
    out += "received chain (newest first): " + std::to_string(r.hops.size()) + " hops\n";
    for (std::size_t i = 0; i < r.hops.size(); ++i)
        out += "  hop " + std::to_string(i + 1) + ": " + hop_text(r.hops[i].received) + "\n";
    out += std::string(kTraceFieldName) + " fields (top first): " + std::to_string(r.traces.size()) + "\n";
    for (std::size_t i = 0; i < r.traces.size(); ++i) {
        const auto& t = r.traces[i].result;
        // Where it sits: the number of Received fields above it (hops after the signer).
        std::size_t above = 0;
        for (const auto& h : r.hops) above += h.field < r.traces[i].field ? 1u : 0u;
        out += "  " + std::to_string(i + 1) + ": result=" + to_string(t.verdict);
        if (!t.key_id.empty())
            out += " kid=" + t.key_id + " t=" + std::to_string(t.time) + " b=" + to_string(t.binding) +
                   " by=" + escape(t.by, 80);
        if (t.ok()) out += " source=" + source_text(t.source);
        else out += " reason=\"" + escape(t.reason, 120) + "\"";
        out += " (below " + std::to_string(above) + " Received)";
        if (i > 0) out += " [not the topmost: never trusted]";
        out += "\n";
    }
    if (r.verified()) {
        const auto& t = r.traces.front().result;
        out += "verified original client: " + source_text(t.source) + ", vouched for by " + escape(t.by, 80) +
               " (kid=" + t.key_id + ")";
        if (r.vouching_hop)
            out += " at hop " + std::to_string(*r.vouching_hop + 1) + " (" +
                   hop_text(r.hops[*r.vouching_hop].received) + ")";
        out += "\n";
    } else if (r.traces.empty()) {
        out += "not trusted: the message has no " + std::string(kTraceFieldName) + " field\n";
    } else {
        const auto& t = r.traces.front().result;
        out += "not trusted: the topmost " + std::string(kTraceFieldName) + " field is " + to_string(t.verdict) + " (" +
               escape(t.reason, 120) + ")";
        if (!r.sender_known) out += "; the envelope sender is unknown (give --sender)";
        out += "\n";
    }
    return out;
}

}  // namespace xproxy::tools
