// message_trace.hpp: what `xproxy-wire trace` reports about a delivered message: every
// X-Original-Source field (top first) with its verification, the Received chain (newest
// first), and the verified original client with the hop that vouched for it, or why there
// is none.
//
// Promises: a pure function of the message, the key ring and the clock (no I/O); the
// rule is the verifying milter's: only the topmost X-Original-Source field can vouch (a
// valid one further down is older, or was planted below it, and never counts). The
// hop that vouched is the first Received field below the trace field: the receiving MTA
// adds its Received line before its milter inserts the trace field on top. Every value
// taken from the message is escaped in the text of format_report().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/keyring.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/wire/message_header.hpp>
#include <xproxy/wire/trace_header.hpp>

namespace xproxy::tools {

struct TraceOptions {
    std::int64_t now = 0;
    std::int64_t max_age = 7 * 86400;
    std::int64_t max_future = kTraceMaxFuture;
    std::optional<std::string> sender;  // the envelope sender; else the Return-Path field
};

struct TraceEntry {
    std::size_t field = 0;  // index among all header fields, top first
    TraceVerifyResult result;
};

struct HopEntry {
    std::size_t field = 0;
    ReceivedFields received;
};

struct TraceReport {
    std::string message_id;
    std::string sender;
    bool sender_known = false;
    std::vector<TraceEntry> traces;  // top first
    std::vector<HopEntry> hops;      // newest (top) first
    // Set when the topmost trace field verifies.
    std::optional<std::size_t> vouching_hop;  // index into hops: the Received below the trace field
    bool verified() const { return !traces.empty() && traces.front().result.ok(); }
};

// The failure says why the message cannot be read (the header section does not parse).
Expected<TraceReport> trace_message(std::string_view message, const KeyRing& keys, const TraceOptions& options);

// Human-readable, one item a line; the last line says the verdict.
std::string format_report(const TraceReport& report);

}  // namespace xproxy::tools
