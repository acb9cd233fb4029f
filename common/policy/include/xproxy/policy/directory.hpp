// directory.hpp: the virtual-domain directory (doc/design.md, "Virtual domains") held in memory.
//
// A hosted domain has a state (doc/directory.md, "States and services"), an administrator, a
// postmaster, a set of allowed services, a TLS requirement for its senders, a default
// home MTA, and users. A user (a mailbox) has a local part, a state, a home MTA, alias
// local parts in the same domain, SASL login names that may send as it, and
// client-certificate fingerprints. A home MTA is a name; an MTA entry of that name says
// where the MTA is (destinations in failover order) and how to talk to it (the encoding
// of the client's original source, TLS): submission relays a user's mail there.
//
// Promises:
// - Names are compared without regard to ASCII case: domains (DNS names) and local
//   parts alike. Stored names are lower case; two users whose local parts differ only
//   in case are the same user (the builder refuses the second one). Bytes >= 0x80
//   (SMTPUTF8) are compared as they are.
// - A built Directory is immutable: every const lookup is safe from any number of
//   threads and allocates nothing. Lookups cost one or two hash probes (< 1 us with
//   1,000,000 users; bench/directory_bench.cpp).
// - At most 65,535 different home MTA names (MTA entries and home= values together);
//   names are at most 255 bytes. MTA names are compared without regard to ASCII case.
// - Reload = build a new Directory, then DirectoryCache::replace(); readers keep the
//   snapshot they hold until they drop it.
// - Nothing here throws on bad input: the builder answers false with a message.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/ip.hpp>

namespace xproxy {

// The status of a domain or a user, in the vocabulary of the Sun/Oracle messaging schema
// (inetDomainStatus, mailDomainStatus, inetUserStatus, mailUserStatus):
//   active    - normal;
//   inactive  - temporarily suspended: mail deferred, no login;
//   disabled  - administratively disabled: mail refused for good, no login;
//   deleted   - gone (or awaiting purge): mail refused for good, no login;
//   hold      - mail accepted but held (the MTA's hold queue), no login;
//   overquota - mailbox (or domain) full: mail deferred; login and sending still allowed.
// What each one answers is in doc/directory.md.
enum class EntryState : std::uint8_t { active, inactive, disabled, deleted, hold, overquota };
inline constexpr std::size_t kEntryStateCount = 6;

// "active", "inactive", "disabled", "deleted", "hold", "overquota".
std::string_view to_string(EntryState s);
// Any case. "removed" (an entry whose mailbox is already purged and which awaits removal
// from the directory) is read as deleted.
std::optional<EntryState> parse_entry_state(std::string_view text);

// Several status values of one entry, or of a domain and then its user, combined into
// one: the first that is not active wins, in the order given (the precedence of the
// messaging schema: domain status, domain mail status, user status, user mail status).
// Empty or all active: active.
constexpr EntryState combine_states(std::initializer_list<EntryState> states) {
    for (EntryState s : states)
        if (s != EntryState::active) return s;
    return EntryState::active;
}

// The services a domain may use (doc/design.md, "Virtual domains": SMTP, IMAP, POP3 ...).
// smtp       - the domain receives mail (RCPT to its addresses);
// submission - its users may send mail as authenticated clients;
// the others are carried for the access servers and not used by the policy engine.
enum class Service : std::uint8_t { smtp, submission, lmtp, imap, imaps, pop3, pop3s, webmail };
inline constexpr std::size_t kServiceCount = 8;

std::string_view to_string(Service s);
std::optional<Service> parse_service(std::string_view text);  // case-insensitive

class ServiceSet {
public:
    constexpr ServiceSet() = default;
    constexpr ServiceSet(std::initializer_list<Service> list) {
        for (Service s : list) add(s);
    }
    constexpr void add(Service s) { bits_ = static_cast<std::uint16_t>(bits_ | bit(s)); }
    constexpr bool has(Service s) const { return (bits_ & bit(s)) != 0; }
    constexpr bool empty() const { return bits_ == 0; }
    std::string to_string() const;  // "smtp,submission"; "none" when empty
    friend constexpr bool operator==(ServiceSet, ServiceSet) = default;

private:
    static constexpr std::uint16_t bit(Service s) { return static_cast<std::uint16_t>(1u << static_cast<unsigned>(s)); }
    std::uint16_t bits_ = 0;
};

// The services of a domain line that names none.
inline constexpr ServiceSet kDefaultServices{Service::smtp, Service::submission};

// Size limits, enforced by the builder. A lookup with a longer name finds nothing.
inline constexpr std::size_t kMaxDomainLength = 253;    // RFC 1035 presentation form
inline constexpr std::size_t kMaxLocalPartLength = 64;  // RFC 5321 4.5.3.1.1
inline constexpr std::size_t kMaxLoginLength = 255;
inline constexpr std::size_t kMaxFingerprintHex = 128;  // SHA-512
inline constexpr std::size_t kMinFingerprintHex = 32;   // MD5 (Postfix before 3.6)

// A domain as the builder receives it and as lookups return it. Views returned by a
// Directory point into it and live as long as it does.
struct DomainInfo {
    std::string_view name;  // lower case
    EntryState state = EntryState::active;
    ServiceSet services = kDefaultServices;
    bool require_tls = false;      // its users may only send over TLS
    std::string_view admin;        // free text (an address), may be empty
    std::string_view postmaster;   // address reports go to, may be empty
    std::string_view home;         // default home MTA of its users, may be empty
    std::uint32_t id = 0;          // index, set by lookups
    std::uint32_t user_count = 0;  // set by lookups
};

struct UserInfo {
    std::string_view local_part;  // lower case, the primary name (not the alias looked up)
    std::string_view domain;      // lower case
    EntryState state = EntryState::active;
    std::string_view home;        // its own home MTA (home=), may be empty; see Directory::home_of
    std::uint32_t id = 0;         // index, set by lookups
    std::uint32_t domain_id = 0;  // set by lookups
};

// How the client's original source is carried to a home MTA. automatic: XPROXY when the
// MTA advertises it after EHLO, else XCLIENT (never PROXY v2, which must be chosen before
// connecting).
enum class MtaEncoding : std::uint8_t { automatic, xproxy, xclient, proxy_v2 };
// TLS towards a home MTA. unset: the consumer's rule applies (none when every destination
// is a loopback address, verify otherwise).
enum class MtaTls : std::uint8_t { unset, none, may, encrypt, verify };

std::string_view to_string(MtaEncoding e);                             // "auto", "xproxy", "xclient", "proxy-v2"
std::string_view to_string(MtaTls t);                                  // "" (unset), "none", "may", "encrypt", "verify"
std::optional<MtaEncoding> parse_mta_encoding(std::string_view text);  // case-insensitive
std::optional<MtaTls> parse_mta_tls(std::string_view text);            // case-insensitive; never unset

struct MtaEndpoint {
    IpAddress address;
    std::uint16_t port = 25;
    friend bool operator==(const MtaEndpoint&, const MtaEndpoint&) = default;
};
inline constexpr std::size_t kMaxMtaDestinations = 16;

// A home MTA as the builder receives it and as lookups return it.
struct MtaInfo {
    std::string_view name;                      // lower case
    std::span<const MtaEndpoint> destinations;  // failover order, 1..16
    MtaEncoding encoding = MtaEncoding::automatic;
    MtaTls tls = MtaTls::unset;
    std::string_view tls_name;  // name to verify the certificate against, may be empty
};

// What the builder needs for one user besides the UserInfo fields.
struct UserExtras {
    std::vector<std::string_view> aliases;       // local parts in the same domain
    std::vector<std::string_view> logins;        // SASL user names that may send as this user
    std::vector<std::string_view> fingerprints;  // client certificate digests (hex, ':' allowed)
    void clear() {
        aliases.clear();
        logins.clear();
        fingerprints.clear();
    }
};

// Fingerprint text -> lower-case hex without separators, or nullopt when it is not
// 32..128 hex digits (pairs may be separated by ':'). "AB:cd:..." and "abcd..." agree.
std::optional<std::string> normalize_fingerprint(std::string_view text);

class Directory {
public:
    // An empty directory that is *not loaded* (what a DirectoryCache holds before the
    // first load); every directory DirectoryBuilder::build() makes is loaded, even empty.
    Directory();
    ~Directory();
    Directory(Directory&&) noexcept;
    Directory& operator=(Directory&&) noexcept;
    Directory(const Directory&) = delete;
    Directory& operator=(const Directory&) = delete;

    // False for a default-constructed (or moved-from) directory: nobody could load it, so
    // "not found" means nothing. The engine then answers a tempfail, never "unknown".
    bool loaded() const;

    // The hosted domain `name` (any case), or nullopt.
    std::optional<DomainInfo> find_domain(std::string_view name) const;
    // The user whose local part or alias is `local_part` (any case) in that domain.
    std::optional<UserInfo> find_user(const DomainInfo& domain, std::string_view local_part) const;
    // Both halves of local@domain at once (the two hash probes overlap in memory): the
    // domain if hosted, and the user if the domain is hosted and has that local part.
    struct AddressLookup {
        std::optional<DomainInfo> domain;
        std::optional<UserInfo> user;
    };
    AddressLookup lookup(std::string_view local_part, std::string_view domain) const;
    // "local@domain" split at the last '@'; nullopt when the domain or user is unknown.
    std::optional<UserInfo> find_address(std::string_view address) const;
    // The user a client-certificate fingerprint is mapped to (any accepted spelling).
    std::optional<UserInfo> find_by_fingerprint(std::string_view fingerprint) const;
    // True when SASL login `login` may send as `user`: it is one of the user's login=
    // names (any case), or it is an address (primary or alias) of that same user.
    bool login_may_send_as(std::string_view login, const UserInfo& user) const;
    // The user a SASL login authenticates as: the user whose address (primary or alias,
    // local@domain, any case) the login is; else the one user whose login= lists it (any
    // case); nullopt when none, or when several users list it and it is not an address.
    std::optional<UserInfo> find_by_login(std::string_view login) const;

    // The home MTA `name` (any case), or nullopt when no MTA entry has that name.
    std::optional<MtaInfo> find_mta(std::string_view name) const;
    // The home MTA name of a user: its own home=, else its domain's home=; empty: none.
    // The name may have no MTA entry (a label kept for routing): find_mta() says.
    std::string_view home_of(const UserInfo& user) const;

    // Calls fn(kind, user id, value) for every alias, login and fingerprint, in no
    // particular order (values lower case; fingerprints normalised).
    enum class Extra : std::uint8_t { alias, login, fingerprint };
    void for_each_extra(const std::function<void(Extra, std::uint32_t, std::string_view)>& fn) const;

    DomainInfo domain_at(std::uint32_t id) const;  // id < domain_count()
    UserInfo user_at(std::uint32_t id) const;      // id < user_count()
    MtaInfo mta_at(std::uint32_t i) const;         // i < mta_count(), in the order added

    std::size_t domain_count() const;
    std::size_t user_count() const;
    std::size_t alias_count() const;
    std::size_t mta_count() const;
    // Bytes held by the directory (arena, records and hash tables), for sizing.
    std::size_t memory_bytes() const;

    struct Impl;

private:
    friend class DirectoryBuilder;
    explicit Directory(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Builds a Directory. Domains must be added before their users; MTAs at any time (a
// home= may name an MTA added later, or none). Names are validated
// (domain: letters, digits, '-', '_', '.', bytes >= 0x80, no empty label; local part:
// RFC 5322 atext and '.', bytes >= 0x80) and stored lower case.
class DirectoryBuilder {
public:
    DirectoryBuilder();
    ~DirectoryBuilder();
    DirectoryBuilder(const DirectoryBuilder&) = delete;
    DirectoryBuilder& operator=(const DirectoryBuilder&) = delete;

    // Sizes the tables ahead (a hint; more may be added).
    void reserve(std::size_t domains, std::size_t users, std::size_t text_bytes = 0);

    // Each returns false and sets *error (a sentence without a line number) when the
    // entry is malformed or a duplicate; the builder is unchanged then.
    bool add_domain(const DomainInfo& domain, std::string* error);
    // `address` is local@domain; the domain must have been added.
    bool add_user(std::string_view address, EntryState state, std::string_view home, const UserExtras& extras,
                  std::string* error);
    // A home MTA: name (stored lower case, unique in any case), 1..16 destinations with a
    // port other than 0 (v4-mapped IPv6 stored as IPv4), tls_name only with tls may,
    // encrypt or verify.
    bool add_mta(const MtaInfo& mta, std::string* error);

    std::size_t domain_count() const;
    std::size_t user_count() const;

    // The finished directory; the builder is empty afterwards.
    Directory build();

private:
    std::unique_ptr<Directory::Impl> impl_;
    struct Interner;
    std::unique_ptr<Interner> homes_;
};

// The snapshot readers use; replace() publishes a new one atomically (doc/design.md's
// "directory cache"). A reader keeps its shared_ptr for one request.
class DirectoryCache {
public:
    DirectoryCache() : current_(std::make_shared<const Directory>()) {}
    std::shared_ptr<const Directory> get() const { return current_.load(std::memory_order_acquire); }
    void replace(std::shared_ptr<const Directory> next) { current_.store(std::move(next), std::memory_order_release); }

private:
    std::atomic<std::shared_ptr<const Directory>> current_;
};

}  // namespace xproxy
