// expiry_order.hpp: the tables of the deposit daemon that keep entries for a fixed time
// (idempotency.hpp, receipt_store.hpp) list their keys in the order they were added, which
// is the order they expire in; drop_expired() removes the expired ones from the front.
//
// Promises: amortised O(1) per entry; a key in `order` whose entry is gone already is
// skipped; stops at the first entry that has not expired (Entry::expires > now).
#pragma once

namespace xproxy::depositd {

template <class Entries, class Order, class TimePoint>
void drop_expired(Entries& entries, Order& order, TimePoint now) {
    while (!order.empty()) {
        auto it = entries.find(order.front());
        if (it != entries.end() && it->second.expires > now) break;
        if (it != entries.end()) entries.erase(it);
        order.pop_front();
    }
}

}  // namespace xproxy::depositd
