// relay_metrics.hpp: xproxyd's metrics of the relay (the series behind --metrics, see
// xproxy/daemon/metrics.hpp and doc/metrics.md): downstream replies by stage and class,
// fail-overs, unrouted transactions, spilled bytes, downstream pool look-ups and the
// latency of the final reply.
//
// Promises: every series exists from the first call of register_relay_metrics() (a
// dashboard sees 0, not "no data"); each count is one relaxed atomic add, no lock; no
// label carries an address, a user or a domain.
#pragma once

#include <cstdint>

#include "conn.hpp"
#include <xproxy/daemon/metrics.hpp>

namespace xproxy::xproxyd {

enum class RelayStage : std::uint8_t { mail, rcpt, data, bdat };

void register_relay_metrics();
// A downstream's reply (or its failure: class "failed") to MAIL, RCPT or the end of the
// message.
void count_reply(RelayStage stage, const Reply& r);
// A destination lost mid-transaction and the transaction moved to the next (ok) or not.
void count_failover(bool ok);
// A transaction accepted with no destination available (451 at DATA unless one returns).
void count_unrouted();
// Bytes of message bodies written to spill files; a new spill file.
void count_spill_bytes(std::uint64_t n);
void count_spill_file();
// A look-up in the pool of parked downstream connections.
void count_pool_lookup(bool hit);
// From the client's end of data to the downstream's final reply.
metrics::Histogram& final_reply_seconds();

}  // namespace xproxy::xproxyd
