// ldap_sync_codec.hpp: the values of RFC 4533's controls and intermediate message, the
// bytes an LDAP server sends during content synchronisation (BER, decoded with liblber).
//
// Promises: pure functions (bytes in, value or nullopt out: no I/O, no logging); never
// throw, never read past the value; an entryUUID is exactly 16 bytes or the value is
// refused; a value with bytes after its end is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xproxy {

// Sync State Control (1.3.6.1.4.1.4203.1.9.1.2), on each entry.
enum class SyncState : std::uint8_t { present = 0, add = 1, modify = 2, remove = 3 };
struct SyncStateValue {
    SyncState state = SyncState::present;
    std::string uuid;                   // 16 bytes
    std::optional<std::string> cookie;  // when the server sent one
};
std::optional<SyncStateValue> decode_sync_state(std::string_view value);

// Sync Info Message (intermediate response 1.3.6.1.4.1.4203.1.9.1.4).
struct SyncInfoValue {
    enum class Kind : std::uint8_t { new_cookie, refresh_delete, refresh_present, id_set };
    Kind kind = Kind::new_cookie;
    std::optional<std::string> cookie;
    bool refresh_done = true;        // refresh_delete, refresh_present
    bool refresh_deletes = false;    // id_set: true = these entries are gone, false = present
    std::vector<std::string> uuids;  // id_set, 16 bytes each
};
std::optional<SyncInfoValue> decode_sync_info(std::string_view value);

// Sync Done Control (1.3.6.1.4.1.4203.1.9.1.3), on the search result.
struct SyncDoneValue {
    std::optional<std::string> cookie;
    bool refresh_deletes = false;
};
std::optional<SyncDoneValue> decode_sync_done(std::string_view value);

// The value of a Sync Request Control asking for refreshAndPersist from `cookie` (none:
// a full refresh).
std::string encode_sync_request(const std::optional<std::string>& cookie);

}  // namespace xproxy
