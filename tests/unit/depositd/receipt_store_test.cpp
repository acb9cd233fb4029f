// receipt_store_test: receipts only for their identity, until they expire, within the
// bound; ids of 22 base64url characters that differ.
#include <gtest/gtest.h>

#include <set>

#include "receipt_store.hpp"

using namespace xproxy::depositd;
using namespace std::chrono_literals;

namespace {

const auto t0 = ReceiptStore::Clock::time_point{} + 1000h;

TEST(ReceiptStore, OwnerOnlyUntilExpiry) {
    ReceiptStore s(10, 60s);
    s.put("id1", "alice", "JWS1", t0);
    EXPECT_EQ(s.get("id1", "alice", t0 + 1s), "JWS1");
    EXPECT_EQ(s.get("id1", "bob", t0 + 1s), std::nullopt);
    EXPECT_EQ(s.get("id2", "alice", t0 + 1s), std::nullopt);
    EXPECT_EQ(s.get("id1", "alice", t0 + 60s), std::nullopt);
    EXPECT_EQ(s.size(), 0u);
}

TEST(ReceiptStore, Bounded) {
    ReceiptStore s(2, 60s);
    s.put("a", "alice", "A", t0);
    s.put("b", "alice", "B", t0);
    s.put("c", "alice", "C", t0);
    EXPECT_EQ(s.size(), 2u);
    EXPECT_EQ(s.get("a", "alice", t0), std::nullopt) << "the oldest made room";
    EXPECT_EQ(s.get("c", "alice", t0), "C");
}

TEST(ReceiptStore, Ids) {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        const std::string id = ReceiptStore::new_id();
        ASSERT_EQ(id.size(), 22u);
        for (char c : id) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << id;
        seen.insert(id);
    }
    EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
