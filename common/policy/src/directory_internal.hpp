// directory_internal.hpp: the in-memory layout of a Directory, shared by the lookups
// (directory.cpp) and the builder (directory_builder.cpp). Not part of the API.
//
// Layout (sized for 100,000 domains and 1,000,000 users, about 75 bytes per user):
// every name lives once, lower case, in one text arena; records refer to it by offset.
// Six open-addressing hash tables (linear probing, load factor <= 0.7) map a name to
// a record index; a 16-byte slot holds the key's arena offset, length, scope and value,
// and 24 bits of its hash, so a probe touches one slot and, on a tag match, the text:
//   domains  (domain name)                -> domain id
//   names    (local part) in a domain id  -> user id   (primary names and aliases)
//   logins   (login) of a user id         -> user id   (existence answers "may send as")
//   owners   (login), scope 0             -> user id, or kSeveralUsers (find_by_login)
//   certs    (fingerprint hex)            -> user id
//   mtas     (MTA name)                   -> MTA index
// The hash of a local part is mixed with the hash of its domain's name (not its id), so
// a lookup of local@domain computes both hashes first and fetches both slots at once.
// A login's text is stored once, shared by its slots in logins and owners.
// Home MTA names are interned: a user and a domain store a 16-bit index. An MTA entry
// keeps its destinations in one array of endpoints, a slice each.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/policy/directory.hpp>

namespace xproxy::directory_detail {

constexpr std::array<unsigned char, 256> make_lower() {
    std::array<unsigned char, 256> t{};
    for (unsigned i = 0; i < 256; ++i) t[i] = static_cast<unsigned char>(i >= 'A' && i <= 'Z' ? i + ('a' - 'A') : i);
    return t;
}
inline constexpr std::array<unsigned char, 256> kLower = make_lower();

// Lower-cases `in` into `buf` (capacity `cap`); empty view when `in` is empty or longer.
inline std::string_view fold(std::string_view in, char* buf, std::size_t cap) {
    if (in.empty() || in.size() > cap) return {};
    for (std::size_t i = 0; i < in.size(); ++i) buf[i] = static_cast<char>(kLower[static_cast<unsigned char>(in[i])]);
    return {buf, in.size()};
}

inline std::uint64_t mix(std::uint64_t h) {
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return h;
}

// Hash of a folded name within a scope (a domain's hash, a user id, or 0).
inline std::uint64_t hash_key(std::uint64_t scope, std::string_view folded) {
    return mix(std::hash<std::string_view>{}(folded) ^ ((scope + 1) * 0x9E3779B97F4A7C15ull));
}

struct Slot {
    std::uint32_t tag_len;  // hash bits 40..63 << 8 | length; 0 = empty (names are never empty)
    std::uint32_t off;      // arena offset of the folded name
    std::uint32_t scope;    // domain id (names), user id (logins), 0 (domains, certs)
    std::uint32_t value;    // domain id or user id
};
static_assert(sizeof(Slot) == 16);

inline std::uint32_t tag_len(std::uint64_t h, std::size_t len) {
    return static_cast<std::uint32_t>((h >> 40) << 8) | static_cast<std::uint32_t>(len);
}

// Open-addressing map from (scope, folded name) to a value; names live in an external
// arena. The caller supplies the hash of each key, and on growth a function that
// recomputes the hash of a stored slot.
class KeyTable {
public:
    std::size_t size() const { return size_; }
    std::size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }
    const std::vector<Slot>& slots() const { return slots_; }

    template <typename HashOf>
    void reserve(std::size_t n, HashOf&& hash_of) {
        std::size_t cap = 16;
        while (cap * 7 < n * 10) cap *= 2;
        if (cap > slots_.size()) rehash(cap, hash_of);
    }

    void prefetch(std::uint64_t h) const {
        if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_]);
    }

    // The first slot whose tag and length match, whatever its scope: what find() will
    // most likely return, known before the scope is, so its data can be fetched early.
    const Slot* candidate(std::uint64_t h, std::size_t len) const {
        if (slots_.empty() || len > 255) return nullptr;
        const std::uint32_t want = tag_len(h, len);
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.tag_len == 0) return nullptr;
            if (s.tag_len == want) return &s;
        }
    }

    const Slot* find(std::uint64_t h, std::uint32_t scope, std::string_view folded, const char* arena) const {
        if (slots_.empty() || folded.size() > 255) return nullptr;
        const std::uint32_t want = tag_len(h, folded.size());
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.tag_len == 0) return nullptr;
            if (s.tag_len == want && s.scope == scope && std::memcmp(arena + s.off, folded.data(), folded.size()) == 0)
                return &s;
        }
    }
    Slot* find(std::uint64_t h, std::uint32_t scope, std::string_view folded, const char* arena) {
        return const_cast<Slot*>(std::as_const(*this).find(h, scope, folded, arena));
    }

    // The name must already be in the arena at [off, off+len), folded; len in 1..255.
    template <typename HashOf>
    void insert(std::uint64_t h, std::uint32_t off, std::size_t len, std::uint32_t scope, std::uint32_t value,
                HashOf&& hash_of) {
        if ((size_ + 1) * 10 > slots_.size() * 7) rehash(slots_.empty() ? 16 : slots_.size() * 2, hash_of);
        place(h, Slot{tag_len(h, len), off, scope, value});
        ++size_;
    }

private:
    void place(std::uint64_t h, const Slot& s) {
        std::size_t i = h & mask_;
        while (slots_[i].tag_len != 0) i = (i + 1) & mask_;
        slots_[i] = s;
    }

    template <typename HashOf>
    void rehash(std::size_t cap, HashOf&& hash_of) {
        std::vector<Slot> old(cap, Slot{0, 0, 0, 0});
        old.swap(slots_);
        mask_ = cap - 1;
        for (const Slot& s : old)
            if (s.tag_len != 0) place(hash_of(s), s);
    }

    std::vector<Slot> slots_;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
};

struct DomainRec {
    std::uint64_t hash;  // hash_key(0, name): the scope of its local parts' hashes
    std::uint32_t name_off, name_len;
    std::uint32_t admin_off, postmaster_off;
    std::uint32_t users;
    ServiceSet services;
    std::uint16_t home;                      // index into homes; 0 = none
    std::uint8_t admin_len, postmaster_len;  // <= 255
    EntryState state;
    bool require_tls;
};
static_assert(sizeof(DomainRec) == 40);

struct UserRec {
    std::uint32_t name_off;  // primary local part
    std::uint32_t domain;
    std::uint16_t home;     // index into homes; 0 = none
    std::uint8_t name_len;  // <= kMaxLocalPartLength
    EntryState state;
};
static_assert(sizeof(UserRec) == 12);

inline constexpr std::size_t kMaxHomes = 65535;

// The value of an owners slot whose login several users list.
inline constexpr std::uint32_t kSeveralUsers = 0xFFFFFFFFu;

struct MtaRec {
    std::uint32_t name_off;
    std::uint32_t first;  // index of its first destination in endpoints
    std::uint32_t tls_name_off;
    std::uint8_t name_len, tls_name_len;
    std::uint8_t count;  // destinations, 1..kMaxMtaDestinations
    MtaEncoding encoding;
    MtaTls tls;
};

// Writes the normalised form of a fingerprint (lower-case hex, no ':') into
// out[kMaxFingerprintHex]; returns its length, or 0 when `text` is not a fingerprint.
std::size_t normalize_fp(std::string_view text, char* out);

}  // namespace xproxy::directory_detail

namespace xproxy {

using namespace directory_detail;

struct Directory::Impl {
    std::string arena;
    std::vector<DomainRec> domains;
    std::vector<UserRec> users;
    std::vector<std::string> homes{std::string()};
    bool loaded = false;  // set by DirectoryBuilder::build()
    std::vector<MtaRec> mtas;
    std::vector<MtaEndpoint> endpoints;
    KeyTable domain_index, name_index, login_index, owner_index, cert_index, mta_index;

    std::string_view text(std::uint32_t off, std::uint32_t len) const { return {arena.data() + off, len}; }
    std::string_view text(const Slot& s) const { return {arena.data() + s.off, s.tag_len & 0xFF}; }

    // Rehash functions of the tables: domain_hash_of() serves every table of scope 0.
    auto domain_hash_of() const {
        return [this](const Slot& s) { return hash_key(0, text(s)); };
    }
    auto name_hash_of() const {
        return [this](const Slot& s) { return hash_key(domains[s.scope].hash, text(s)); };
    }
    auto login_hash_of() const {
        return [this](const Slot& s) { return hash_key(s.scope, text(s)); };
    }

    DomainInfo domain_info(std::uint32_t id) const {
        const DomainRec& d = domains[id];
        DomainInfo out;
        out.name = text(d.name_off, d.name_len);
        out.state = d.state;
        out.services = d.services;
        out.require_tls = d.require_tls;
        out.admin = text(d.admin_off, d.admin_len);
        out.postmaster = text(d.postmaster_off, d.postmaster_len);
        out.home = homes[d.home];
        out.id = id;
        out.user_count = d.users;
        return out;
    }

    UserInfo user_info(std::uint32_t id) const {
        const UserRec& u = users[id];
        const DomainRec& d = domains[u.domain];
        UserInfo out;
        out.local_part = text(u.name_off, u.name_len);
        out.domain = text(d.name_off, d.name_len);
        out.state = u.state;
        out.home = homes[u.home];
        out.id = id;
        out.domain_id = u.domain;
        return out;
    }

    MtaInfo mta_info(std::uint32_t i) const {
        const MtaRec& r = mtas[i];
        MtaInfo out;
        out.name = text(r.name_off, r.name_len);
        out.destinations = std::span<const MtaEndpoint>(endpoints.data() + r.first, r.count);
        out.encoding = r.encoding;
        out.tls = r.tls;
        out.tls_name = text(r.tls_name_off, r.tls_name_len);
        return out;
    }

    const Slot* find_mta_slot(std::string_view name) const {
        char buf[255];
        const std::string_view f = fold(name, buf, sizeof buf);
        return f.empty() ? nullptr : mta_index.find(hash_key(0, f), 0, f, arena.data());
    }

    const Slot* find_domain_slot(std::string_view name) const {
        char buf[kMaxDomainLength];
        const std::string_view f = fold(name, buf, sizeof buf);
        return f.empty() ? nullptr : domain_index.find(hash_key(0, f), 0, f, arena.data());
    }

    const Slot* find_name_slot(std::uint32_t domain, std::string_view local) const {
        char buf[kMaxLocalPartLength];
        const std::string_view f = fold(local, buf, sizeof buf);
        return f.empty() ? nullptr : name_index.find(hash_key(domains[domain].hash, f), domain, f, arena.data());
    }

    // Both slots of local@domain. Memory is read in two rounds instead of five: first both
    // slots, then (prefetched together) both names and the domain and user records.
    std::pair<const Slot*, const Slot*> find_both(std::string_view local, std::string_view domain) const {
        char dbuf[kMaxDomainLength], lbuf[kMaxLocalPartLength];
        const std::string_view fd = fold(domain, dbuf, sizeof dbuf);
        if (fd.empty()) return {nullptr, nullptr};
        const std::uint64_t dh = hash_key(0, fd);
        domain_index.prefetch(dh);
        const std::string_view fl = fold(local, lbuf, sizeof lbuf);
        const std::uint64_t nh = fl.empty() ? 0 : hash_key(dh, fl);
        if (!fl.empty()) name_index.prefetch(nh);
        if (const Slot* c = domain_index.candidate(dh, fd.size())) {
            __builtin_prefetch(arena.data() + c->off);
            __builtin_prefetch(&domains[c->value]);
        }
        if (const Slot* c = fl.empty() ? nullptr : name_index.candidate(nh, fl.size())) {
            __builtin_prefetch(arena.data() + c->off);
            __builtin_prefetch(&users[c->value]);
        }
        const Slot* d = domain_index.find(dh, 0, fd, arena.data());
        if (!d || fl.empty()) return {d, nullptr};
        return {d, name_index.find(nh, d->value, fl, arena.data())};
    }

    std::uint32_t append(std::string_view s, bool lower) {
        const auto off = static_cast<std::uint32_t>(arena.size());
        arena.append(s);
        if (lower)
            for (std::size_t i = off; i < arena.size(); ++i)
                arena[i] = static_cast<char>(kLower[static_cast<unsigned char>(arena[i])]);
        return off;
    }
};

}  // namespace xproxy
