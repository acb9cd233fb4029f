// ldap_model.hpp: the LDAP directory as the sync keeps it: entries by entryUUID (a rename
// keeps its UUID and changes its DN), each with its DN (for logs) and its parsed record
// or the reason it was refused. build() turns the model into an immutable Directory.
//
// Promises:
// - build() adds domains first (by name), then MTAs (by name), then users (by address):
//   the same model builds the same directory, whatever order the changes came in, and
//   of two entries that claim one name the same one always wins.
// - An entry the parser or the DirectoryBuilder refuses is skipped: counted, and reported
//   to `skipped` once per entry and reason (not again at every rebuild).
// - serialize()/parse_state() write and read the model with its sync cookie (the state
//   file): parse_state(serialize(m)) is m; a damaged text is refused as a whole, never
//   half loaded. No secret is in it.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <xproxy/base/result.hpp>
#include <xproxy/ldap/ldap_entry.hpp>
#include <xproxy/policy/directory.hpp>

namespace xproxy {

class LdapModel {
public:
    struct Entry {
        std::string dn;
        std::optional<LdapRecord> record;  // nullopt: refused by the parser
        std::string error;                 // why refused (parser or builder); empty when used
        std::string reported;              // the error last reported
    };
    struct Counts {
        std::size_t entries = 0, domains = 0, users = 0, mtas = 0, skipped = 0;
    };

    // Adds or replaces the entry `uuid` from its attributes; false when it is of none of
    // the directory's classes (then any entry of that UUID is removed: its class changed).
    bool upsert(const std::string& uuid, std::string dn, const LdapSchema& schema, const LdapAttributes& attributes);
    void upsert_record(const std::string& uuid, std::string dn, Expected<LdapRecord> record);
    bool erase(const std::string& uuid);  // true when it was there
    bool contains(const std::string& uuid) const { return entries_.count(uuid) != 0; }
    // Removes every entry whose UUID is not in `keep`; the number removed.
    std::size_t retain(const std::unordered_set<std::string>& keep);
    void clear() {
        order_.clear();
        entries_.clear();
    }
    std::size_t size() const { return entries_.size(); }

    using SkipFn = std::function<void(const std::string& dn, const std::string& why)>;
    // The directory of the model; counts of what went in and what was skipped.
    Directory build(Counts& counts, const SkipFn& skipped);

    // The state file's text: a header, `source` (what the model was read from), the
    // cookie, then one line per entry.
    std::string serialize(std::string_view source, const std::optional<std::string>& cookie) const;
    struct State {
        std::string source;
        std::optional<std::string> cookie;
    };
    // Replaces the model by the one in `text`.
    Expected<State> parse_state(std::string_view text);

    LdapModel() = default;
    LdapModel(const LdapModel&) = delete;
    LdapModel& operator=(const LdapModel&) = delete;
    LdapModel(LdapModel&&) = default;  // the index's pointers stay valid: map nodes do not move
    LdapModel& operator=(LdapModel&&) = default;

private:
    static std::string order_key(const std::string& uuid, const Entry& e);
    std::unordered_map<std::string, Entry> entries_;
    // The entries in the order build() adds them (kept up to date by every change, so a
    // rebuild needs no sort).
    std::map<std::string, Entry*> order_;
};

}  // namespace xproxy
