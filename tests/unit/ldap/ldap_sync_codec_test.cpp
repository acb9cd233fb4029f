// ldap_sync_codec_test: RFC 4533 values, byte by byte (ldap_sync_codec.hpp).
#include <gtest/gtest.h>

#include <xproxy/ldap/ldap_sync_codec.hpp>

using namespace xproxy;

namespace {

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int c : b) s += static_cast<char>(c);
    return s;
}
const std::string kUuid = bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});

TEST(LdapSyncCodec, SyncState) {
    // SEQUENCE { ENUMERATED 1 (add), OCTET STRING uuid, OCTET STRING "ck" }
    const std::string v = bytes({0x30, 0x19, 0x0a, 0x01, 0x01, 0x04, 0x10}) + kUuid + bytes({0x04, 0x02, 'c', 'k'});
    auto s = decode_sync_state(v);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->state, SyncState::add);
    EXPECT_EQ(s->uuid, kUuid);
    EXPECT_EQ(s->cookie, "ck");
    // without cookie, state delete
    const std::string d = bytes({0x30, 0x15, 0x0a, 0x01, 0x03, 0x04, 0x10}) + kUuid;
    auto s2 = decode_sync_state(d);
    ASSERT_TRUE(s2);
    EXPECT_EQ(s2->state, SyncState::remove);
    EXPECT_FALSE(s2->cookie);
    // refused: a state out of range, a short UUID, every strict prefix
    EXPECT_FALSE(decode_sync_state(bytes({0x30, 0x15, 0x0a, 0x01, 0x04, 0x04, 0x10}) + kUuid));
    EXPECT_FALSE(decode_sync_state(bytes({0x30, 0x14, 0x0a, 0x01, 0x01, 0x04, 0x0f}) + kUuid.substr(1)));
    for (std::size_t n = 0; n < v.size(); ++n) EXPECT_FALSE(decode_sync_state(v.substr(0, n))) << n;
}

TEST(LdapSyncCodec, SyncInfo) {
    auto c = decode_sync_info(bytes({0x80, 0x03, 'a', 'b', 'c'}));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->kind, SyncInfoValue::Kind::new_cookie);
    EXPECT_EQ(c->cookie, "abc");
    // refreshPresent { cookie "x", refreshDone FALSE }
    auto p = decode_sync_info(bytes({0xa2, 0x06, 0x04, 0x01, 'x', 0x01, 0x01, 0x00}));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, SyncInfoValue::Kind::refresh_present);
    EXPECT_FALSE(p->refresh_done);
    // refreshDelete {} : refreshDone defaults to TRUE
    auto d = decode_sync_info(bytes({0xa1, 0x00}));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->kind, SyncInfoValue::Kind::refresh_delete);
    EXPECT_TRUE(d->refresh_done);
    // syncIdSet { refreshDeletes TRUE, SET { uuid, uuid } }
    const std::string ids = bytes({0xa3, 0x29, 0x01, 0x01, 0xff, 0x31, 0x24, 0x04, 0x10}) + kUuid +
                            bytes({0x04, 0x10}) + kUuid;
    auto i = decode_sync_info(ids);
    ASSERT_TRUE(i);
    EXPECT_EQ(i->kind, SyncInfoValue::Kind::id_set);
    EXPECT_TRUE(i->refresh_deletes);
    EXPECT_EQ(i->uuids.size(), 2u);
    EXPECT_FALSE(decode_sync_info(bytes({0xa4, 0x00})));
    for (std::size_t n = 0; n < ids.size(); ++n) EXPECT_FALSE(decode_sync_info(ids.substr(0, n))) << n;
}

TEST(LdapSyncCodec, SyncDoneAndRequest) {
    auto d = decode_sync_done(bytes({0x30, 0x06, 0x04, 0x01, 'q', 0x01, 0x01, 0xff}));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->cookie, "q");
    EXPECT_TRUE(d->refresh_deletes);
    // SEQUENCE { ENUMERATED 3 (refreshAndPersist) [, OCTET STRING cookie] }
    EXPECT_EQ(encode_sync_request(std::nullopt), bytes({0x30, 0x03, 0x0a, 0x01, 0x03}));
    EXPECT_EQ(encode_sync_request(std::string("ck")), bytes({0x30, 0x07, 0x0a, 0x01, 0x03, 0x04, 0x02, 'c', 'k'}));
}

}  // namespace
