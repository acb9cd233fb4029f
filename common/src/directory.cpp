// directory.cpp: the in-memory virtual-domain directory and its builder.
//
// Layout (sized for 100,000 domains and 1,000,000 users, about 75 bytes per user):
// every name lives once, lower case, in one text arena; records refer to it by offset.
// Four open-addressing hash tables (linear probing, load factor <= 0.7) map a name to
// a record index; a 16-byte slot holds the key's arena offset, length, scope and value,
// and 24 bits of its hash, so a probe touches one slot and, on a tag match, the text:
//   domains  (domain name)                -> domain id
//   names    (local part) in a domain id  -> user id   (primary names and aliases)
//   logins   (login) of a user id         -> user id   (existence answers "may send as")
//   certs    (fingerprint hex)            -> user id
// The hash of a local part is mixed with the hash of its domain's name (not its id), so
// find_address() computes both hashes first and fetches both slots from memory at once.
// Home MTAs are interned: a user stores a 16-bit index.
#include "xproxy/directory.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <utility>

namespace xproxy {

namespace {

constexpr std::array<unsigned char, 256> make_lower() {
    std::array<unsigned char, 256> t{};
    for (unsigned i = 0; i < 256; ++i)
        t[i] = static_cast<unsigned char>(i >= 'A' && i <= 'Z' ? i + ('a' - 'A') : i);
    return t;
}
constexpr std::array<unsigned char, 256> kLower = make_lower();

// Lower-cases `in` into `buf` (capacity `cap`); empty view when `in` is empty or longer.
std::string_view fold(std::string_view in, char* buf, std::size_t cap) {
    if (in.empty() || in.size() > cap) return {};
    for (std::size_t i = 0; i < in.size(); ++i)
        buf[i] = static_cast<char>(kLower[static_cast<unsigned char>(in[i])]);
    return {buf, in.size()};
}

std::uint64_t mix(std::uint64_t h) {
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return h;
}

// Hash of a folded name within a scope (a domain's hash, a user id, or 0).
std::uint64_t hash_key(std::uint64_t scope, std::string_view folded) {
    return mix(std::hash<std::string_view>{}(folded) ^ ((scope + 1) * 0x9E3779B97F4A7C15ull));
}

struct Slot {
    std::uint32_t tag_len;  // hash bits 40..63 << 8 | length; 0 = empty (names are never empty)
    std::uint32_t off;      // arena offset of the folded name
    std::uint32_t scope;    // domain id (names), user id (logins), 0 (domains, certs)
    std::uint32_t value;    // domain id or user id
};
static_assert(sizeof(Slot) == 16);

std::uint32_t tag_len(std::uint64_t h, std::size_t len) {
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
            if (s.tag_len == want && s.scope == scope &&
                std::memcmp(arena + s.off, folded.data(), folded.size()) == 0)
                return &s;
        }
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
    std::uint32_t admin_off, admin_len;
    std::uint32_t postmaster_off, postmaster_len;
    std::uint32_t users;
    ServiceSet services;
    EntryState state;
    bool require_tls;
};

struct UserRec {
    std::uint32_t name_off;  // primary local part
    std::uint32_t domain;
    std::uint16_t home;      // index into homes; 0 = none
    std::uint8_t name_len;   // <= kMaxLocalPartLength
    EntryState state;
};
static_assert(sizeof(UserRec) == 12);

constexpr std::size_t kMaxHomes = 65535;

// A name for an error message: control bytes as \xNN, at most 80 bytes.
std::string printable(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    const std::size_t n = s.size() > 80 ? 80 : s.size();
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f || c == '\\') {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    if (n < s.size()) out += "...";
    return out;
}

bool is_atext(unsigned char c) {
    if (c >= 0x80) return true;  // SMTPUTF8
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::strchr("!#$%&'*+-/=?^_`{|}~.", c) != nullptr && c != 0;
}

bool valid_local_part(std::string_view s, std::string* error, std::string_view what) {
    if (s.empty()) {
        *error = std::string(what) + " is empty";
        return false;
    }
    if (s.size() > kMaxLocalPartLength) {
        *error = std::string(what) + " is longer than 64 bytes";
        return false;
    }
    for (char c : s) {
        if (!is_atext(static_cast<unsigned char>(c))) {
            *error = std::string(what) + " '" + printable(s) + "' contains a character not allowed in a local part";
            return false;
        }
    }
    return true;
}

bool valid_domain(std::string_view s, std::string* error) {
    if (s.empty()) {
        *error = "domain name is empty";
        return false;
    }
    if (s.size() > kMaxDomainLength) {
        *error = "domain name is longer than 253 bytes";
        return false;
    }
    char prev = '.';
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const bool ok = c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) {
            *error = "domain name '" + printable(s) + "' contains a character not allowed in a domain name";
            return false;
        }
        if (c == '.' && prev == '.') {
            *error = "domain name '" + printable(s) + "' has an empty label";
            return false;
        }
        prev = ch;
    }
    if (prev == '.') {
        *error = "domain name '" + printable(s) + "' ends with a dot";
        return false;
    }
    return true;
}

// Free text kept as is (admin, postmaster, home): printable, no white space.
bool valid_text(std::string_view s, std::string* error, std::string_view what) {
    if (s.size() > 255) {
        *error = std::string(what) + " is longer than 255 bytes";
        return false;
    }
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c == 0x7f) {
            *error = std::string(what) + " contains white space or a control character";
            return false;
        }
    }
    return true;
}

// Writes the normalised fingerprint into out[kMaxFingerprintHex]; returns its length, or
// 0 when `text` is not a fingerprint.
std::size_t normalize_fp(std::string_view text, char* out) {
    std::size_t n = 0;
    std::size_t run = 0;  // hex digits since the last ':'
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == ':') {
            if (run != 2 || i + 1 == text.size()) return 0;
            run = 0;
            continue;
        }
        const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex || n == kMaxFingerprintHex) return 0;
        out[n++] = static_cast<char>(kLower[c]);
        ++run;
    }
    if (n < kMinFingerprintHex || n % 2 != 0) return 0;
    // Colons are either between every pair or absent.
    if (text.size() != n && text.size() != n + n / 2 - 1) return 0;
    return n;
}

}  // namespace

// ---- names of states and services ----

std::string_view to_string(EntryState s) {
    switch (s) {
    case EntryState::active: return "active";
    case EntryState::inactive: return "inactive";
    case EntryState::deleted: return "deleted";
    }
    return "?";
}

std::optional<EntryState> parse_entry_state(std::string_view text) {
    char buf[16];
    const std::string_view t = fold(text, buf, sizeof buf);
    if (t == "active") return EntryState::active;
    if (t == "inactive") return EntryState::inactive;
    if (t == "deleted") return EntryState::deleted;
    return std::nullopt;
}

namespace {
constexpr std::array<std::string_view, kServiceCount> kServiceNames = {
    "smtp", "submission", "lmtp", "imap", "imaps", "pop3", "pop3s", "webmail"};
}

std::string_view to_string(Service s) { return kServiceNames[static_cast<std::size_t>(s)]; }

std::optional<Service> parse_service(std::string_view text) {
    char buf[16];
    const std::string_view t = fold(text, buf, sizeof buf);
    for (std::size_t i = 0; i < kServiceNames.size(); ++i)
        if (t == kServiceNames[i]) return static_cast<Service>(i);
    return std::nullopt;
}

std::string ServiceSet::to_string() const {
    std::string out;
    for (std::size_t i = 0; i < kServiceCount; ++i) {
        if (!has(static_cast<Service>(i))) continue;
        if (!out.empty()) out += ',';
        out += kServiceNames[i];
    }
    return out.empty() ? "none" : out;
}

std::optional<std::string> normalize_fingerprint(std::string_view text) {
    char buf[kMaxFingerprintHex];
    const std::size_t n = normalize_fp(text, buf);
    if (n == 0) return std::nullopt;
    return std::string(buf, n);
}

// ---- Directory ----

struct Directory::Impl {
    std::string arena;
    std::vector<DomainRec> domains;
    std::vector<UserRec> users;
    std::vector<std::string> homes{std::string()};
    KeyTable domain_index, name_index, login_index, cert_index;

    std::string_view text(std::uint32_t off, std::uint32_t len) const { return {arena.data() + off, len}; }
    std::string_view text(const Slot& s) const { return {arena.data() + s.off, s.tag_len & 0xFF}; }

    // Rehash functions of the four tables.
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

Directory::Directory() : impl_(std::make_unique<Impl>()) {}
Directory::Directory(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Directory::~Directory() = default;
Directory::Directory(Directory&&) noexcept = default;
Directory& Directory::operator=(Directory&&) noexcept = default;

std::optional<DomainInfo> Directory::find_domain(std::string_view name) const {
    const Slot* s = impl_->find_domain_slot(name);
    if (!s) return std::nullopt;
    return impl_->domain_info(s->value);
}

std::optional<UserInfo> Directory::find_user(const DomainInfo& domain, std::string_view local_part) const {
    if (domain.id >= impl_->domains.size()) return std::nullopt;
    const Slot* s = impl_->find_name_slot(domain.id, local_part);
    if (!s) return std::nullopt;
    return impl_->user_info(s->value);
}

Directory::AddressLookup Directory::lookup(std::string_view local_part, std::string_view domain) const {
    const auto [d, u] = impl_->find_both(local_part, domain);
    AddressLookup out;
    if (d) out.domain = impl_->domain_info(d->value);
    if (u) out.user = impl_->user_info(u->value);
    return out;
}

std::optional<UserInfo> Directory::find_address(std::string_view address) const {
    const std::size_t at = address.rfind('@');
    if (at == std::string_view::npos) return std::nullopt;
    const auto [d, u] = impl_->find_both(address.substr(0, at), address.substr(at + 1));
    if (!u) return std::nullopt;
    return impl_->user_info(u->value);
}

std::optional<UserInfo> Directory::find_by_fingerprint(std::string_view fingerprint) const {
    char buf[kMaxFingerprintHex];
    const std::size_t n = normalize_fp(fingerprint, buf);
    if (n == 0) return std::nullopt;
    const std::string_view f(buf, n);
    const Slot* s = impl_->cert_index.find(hash_key(0, f), 0, f, impl_->arena.data());
    if (!s) return std::nullopt;
    return impl_->user_info(s->value);
}

bool Directory::login_may_send_as(std::string_view login, const UserInfo& user) const {
    if (login.empty() || user.id >= impl_->users.size()) return false;
    if (login.find('@') != std::string_view::npos) {
        const auto u = find_address(login);
        if (u && u->id == user.id) return true;
    }
    char buf[kMaxLoginLength];
    const std::string_view f = fold(login, buf, sizeof buf);
    return !f.empty() && impl_->login_index.find(hash_key(user.id, f), user.id, f, impl_->arena.data()) != nullptr;
}

void Directory::for_each_extra(const std::function<void(Extra, std::uint32_t, std::string_view)>& fn) const {
    const Impl& m = *impl_;
    for (const Slot& s : m.name_index.slots())
        if (s.tag_len != 0 && m.users[s.value].name_off != s.off) fn(Extra::alias, s.value, m.text(s));
    for (const Slot& s : m.login_index.slots())
        if (s.tag_len != 0) fn(Extra::login, s.value, m.text(s));
    for (const Slot& s : m.cert_index.slots())
        if (s.tag_len != 0) fn(Extra::fingerprint, s.value, m.text(s));
}

DomainInfo Directory::domain_at(std::uint32_t id) const { return impl_->domain_info(id); }
UserInfo Directory::user_at(std::uint32_t id) const { return impl_->user_info(id); }
std::size_t Directory::domain_count() const { return impl_->domains.size(); }
std::size_t Directory::user_count() const { return impl_->users.size(); }
std::size_t Directory::alias_count() const { return impl_->name_index.size() - impl_->users.size(); }

std::size_t Directory::memory_bytes() const {
    const Impl& m = *impl_;
    std::size_t n = sizeof(Impl) + m.arena.capacity() + m.domains.capacity() * sizeof(DomainRec) +
                    m.users.capacity() * sizeof(UserRec) + m.homes.capacity() * sizeof(std::string);
    for (const auto& h : m.homes) n += h.capacity() > 15 ? h.capacity() + 1 : 0;
    return n + m.domain_index.memory_bytes() + m.name_index.memory_bytes() + m.login_index.memory_bytes() +
           m.cert_index.memory_bytes();
}

// ---- DirectoryBuilder ----

struct DirectoryBuilder::Interner {
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::uint16_t, Hash, std::equal_to<>> ids;
    std::string_view last;
    std::uint16_t last_id = 0;
};

DirectoryBuilder::DirectoryBuilder() : impl_(std::make_unique<Directory::Impl>()), homes_(std::make_unique<Interner>()) {}
DirectoryBuilder::~DirectoryBuilder() = default;

void DirectoryBuilder::reserve(std::size_t domains, std::size_t users, std::size_t text_bytes) {
    Directory::Impl& m = *impl_;
    m.domains.reserve(domains);
    m.users.reserve(users);
    m.arena.reserve(text_bytes);
    m.domain_index.reserve(domains, m.domain_hash_of());
    m.name_index.reserve(users + users / 8, m.name_hash_of());  // room for some aliases
}

std::size_t DirectoryBuilder::domain_count() const { return impl_->domains.size(); }
std::size_t DirectoryBuilder::user_count() const { return impl_->users.size(); }

bool DirectoryBuilder::add_domain(const DomainInfo& d, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    Directory::Impl& m = *impl_;
    if (!valid_domain(d.name, error) || !valid_text(d.admin, error, "admin") ||
        !valid_text(d.postmaster, error, "postmaster"))
        return false;
    if (m.find_domain_slot(d.name)) {
        *error = "domain " + printable(d.name) + " is already defined";
        return false;
    }
    if (m.domains.size() >= 0xFFFFFFF0u || m.arena.size() > 0xF0000000u) {
        *error = "directory too large";
        return false;
    }
    DomainRec r{};
    r.name_off = m.append(d.name, true);
    r.name_len = static_cast<std::uint32_t>(d.name.size());
    r.hash = hash_key(0, m.text(r.name_off, r.name_len));
    r.admin_off = m.append(d.admin, false);
    r.admin_len = static_cast<std::uint32_t>(d.admin.size());
    r.postmaster_off = m.append(d.postmaster, false);
    r.postmaster_len = static_cast<std::uint32_t>(d.postmaster.size());
    r.users = 0;
    r.services = d.services;
    r.state = d.state;
    r.require_tls = d.require_tls;
    const auto id = static_cast<std::uint32_t>(m.domains.size());
    m.domains.push_back(r);
    m.domain_index.insert(r.hash, r.name_off, r.name_len, 0, id, m.domain_hash_of());
    return true;
}

bool DirectoryBuilder::add_user(std::string_view address, EntryState state, std::string_view home,
                                const UserExtras& extras, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    Directory::Impl& m = *impl_;
    const std::size_t at = address.rfind('@');
    if (at == std::string_view::npos) {
        *error = "user '" + printable(address) + "' is not of the form local@domain";
        return false;
    }
    const std::string_view local = address.substr(0, at);
    const std::string_view domain = address.substr(at + 1);
    if (!valid_local_part(local, error, "local part") || !valid_text(home, error, "home")) return false;
    const Slot* ds = m.find_domain_slot(domain);
    if (!ds) {
        *error = "domain '" + printable(domain) + "' of user " + printable(address) +
                 " is not defined (a domain line must come before its users)";
        return false;
    }
    const std::uint32_t domain_id = ds->value;

    // Validate everything before changing anything.
    auto taken = [&](std::string_view name, std::size_t upto) {
        if (m.find_name_slot(domain_id, name)) return true;
        char a[kMaxLocalPartLength], b[kMaxLocalPartLength];
        const std::string_view fa = fold(name, a, sizeof a);
        if (fold(local, b, sizeof b) == fa) return true;
        for (std::size_t i = 0; i < upto; ++i)
            if (fold(extras.aliases[i], b, sizeof b) == fa) return true;
        return false;
    };
    if (m.find_name_slot(domain_id, local)) {
        *error = "user " + printable(address) + " is already defined (as a user or an alias)";
        return false;
    }
    for (std::size_t i = 0; i < extras.aliases.size(); ++i) {
        const std::string_view a = extras.aliases[i];
        if (!valid_local_part(a, error, "alias")) return false;
        if (taken(a, i)) {
            *error = "alias " + printable(a) + "@" + printable(domain) + " is already defined";
            return false;
        }
    }
    for (std::string_view l : extras.logins) {
        if (l.empty() || l.size() > kMaxLoginLength || l.find(',') != std::string_view::npos) {
            *error = "login '" + printable(l) + "' is empty, longer than 255 bytes or contains a comma";
            return false;
        }
        if (!valid_text(l, error, "login")) return false;
    }
    char fp[kMaxFingerprintHex], fp2[kMaxFingerprintHex];
    for (std::size_t i = 0; i < extras.fingerprints.size(); ++i) {
        const std::size_t n = normalize_fp(extras.fingerprints[i], fp);
        if (n == 0) {
            *error = "cert '" + printable(extras.fingerprints[i]) +
                     "' is not a fingerprint (32 to 128 hex digits, pairs optionally separated by ':')";
            return false;
        }
        const std::string_view f(fp, n);
        bool dup = m.cert_index.find(hash_key(0, f), 0, f, m.arena.data()) != nullptr;
        for (std::size_t j = 0; j < i && !dup; ++j)
            dup = std::string_view(fp2, normalize_fp(extras.fingerprints[j], fp2)) == f;
        if (dup) {
            *error = "cert " + std::string(f) + " is already mapped to a user";
            return false;
        }
    }
    if (m.users.size() >= 0xFFFFFFF0u || m.arena.size() > 0xF0000000u) {
        *error = "directory too large";
        return false;
    }

    // Home MTA, interned.
    std::uint16_t home_id = 0;
    if (!home.empty()) {
        Interner& in = *homes_;
        if (home == in.last) {
            home_id = in.last_id;
        } else {
            auto it = in.ids.find(home);
            if (it == in.ids.end()) {
                if (m.homes.size() > kMaxHomes) {
                    *error = "more than 65535 different home MTAs";
                    return false;
                }
                it = in.ids.emplace(std::string(home), static_cast<std::uint16_t>(m.homes.size())).first;
                m.homes.emplace_back(home);
            }
            home_id = it->second;
            in.last = it->first;
            in.last_id = home_id;
        }
    }

    const std::uint64_t dhash = m.domains[domain_id].hash;
    const auto user_id = static_cast<std::uint32_t>(m.users.size());
    UserRec u{};
    u.name_off = m.append(local, true);
    u.name_len = static_cast<std::uint8_t>(local.size());
    u.domain = domain_id;
    u.home = home_id;
    u.state = state;
    m.users.push_back(u);
    m.domains[domain_id].users++;
    m.name_index.insert(hash_key(dhash, m.text(u.name_off, u.name_len)), u.name_off, u.name_len, domain_id, user_id,
                        m.name_hash_of());
    for (std::string_view a : extras.aliases) {
        const std::uint32_t off = m.append(a, true);
        const auto len = static_cast<std::uint32_t>(a.size());
        m.name_index.insert(hash_key(dhash, m.text(off, len)), off, len, domain_id, user_id, m.name_hash_of());
    }
    for (std::string_view l : extras.logins) {
        char buf[kMaxLoginLength];
        const std::string_view f = fold(l, buf, sizeof buf);
        const std::uint64_t h = hash_key(user_id, f);
        if (m.login_index.find(h, user_id, f, m.arena.data())) continue;  // repeated
        const std::uint32_t off = m.append(f, false);
        m.login_index.insert(h, off, f.size(), user_id, user_id, m.login_hash_of());
    }
    for (std::string_view c : extras.fingerprints) {
        const std::size_t n = normalize_fp(c, fp);
        const std::string_view f(fp, n);
        const std::uint32_t off = m.append(f, false);
        m.cert_index.insert(hash_key(0, f), off, n, 0, user_id, m.domain_hash_of());
    }
    return true;
}

Directory DirectoryBuilder::build() {
    auto impl = std::exchange(impl_, std::make_unique<Directory::Impl>());
    impl->arena.shrink_to_fit();
    impl->domains.shrink_to_fit();
    impl->users.shrink_to_fit();
    homes_ = std::make_unique<Interner>();
    return Directory(std::move(impl));
}

}  // namespace xproxy
