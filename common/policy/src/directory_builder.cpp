// directory_builder.cpp: DirectoryBuilder (directory.hpp): validates names and
// attributes, refuses duplicates, and fills the layout of directory_internal.hpp. A
// failed add changes nothing.
#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "directory_internal.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/base/ip.hpp>
#include <xproxy/policy/directory.hpp>

namespace xproxy {

namespace {

// A name for an error message: escaped, at most 80 characters.
std::string printable(std::string_view s) { return escape(s, 80); }

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
        const bool ok = c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '-' || c == '_' || c == '.';
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

}  // namespace

// Home MTA names (home= values as written, MTA entry names lower case) -> index into
// Impl::homes; index 0 is "none".
struct DirectoryBuilder::Interner {
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::uint16_t, Hash, std::equal_to<>> ids;
    std::string_view last;
    std::uint16_t last_id = 0;

    // The index of `name` (0 when empty), added to `homes` when new; false when it would
    // be one name too many.
    bool intern(std::string_view name, std::vector<std::string>& homes, std::uint16_t& id, std::string* error) {
        id = 0;
        if (name.empty()) return true;
        if (name == last) {
            id = last_id;
            return true;
        }
        auto it = ids.find(name);
        if (it == ids.end()) {
            if (homes.size() > kMaxHomes) {
                *error = "more than 65535 different home MTAs";
                return false;
            }
            it = ids.emplace(std::string(name), static_cast<std::uint16_t>(homes.size())).first;
            homes.emplace_back(name);
        }
        id = it->second;
        last = it->first;
        last_id = id;
        return true;
    }
};

DirectoryBuilder::DirectoryBuilder()
    : impl_(std::make_unique<Directory::Impl>()), homes_(std::make_unique<Interner>()) {}
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
        !valid_text(d.postmaster, error, "postmaster") || !valid_text(d.home, error, "home"))
        return false;
    if (m.find_domain_slot(d.name)) {
        *error = "domain " + printable(d.name) + " is already defined";
        return false;
    }
    if (m.domains.size() >= 0xFFFFFFF0u || m.arena.size() > 0xF0000000u) {
        *error = "directory too large";
        return false;
    }
    std::uint16_t home_id = 0;
    if (!homes_->intern(d.home, m.homes, home_id, error)) return false;
    DomainRec r{};
    r.name_off = m.append(d.name, true);
    r.name_len = static_cast<std::uint32_t>(d.name.size());
    r.hash = hash_key(0, m.text(r.name_off, r.name_len));
    r.admin_off = m.append(d.admin, false);
    r.admin_len = static_cast<std::uint8_t>(d.admin.size());
    r.postmaster_off = m.append(d.postmaster, false);
    r.postmaster_len = static_cast<std::uint8_t>(d.postmaster.size());
    r.users = 0;
    r.services = d.services;
    r.home = home_id;
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

    std::uint16_t home_id = 0;
    if (!homes_->intern(home, m.homes, home_id, error)) return false;

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
        const std::uint64_t oh = hash_key(0, f);
        Slot* owner = m.owner_index.find(oh, 0, f, m.arena.data());
        const std::uint32_t off = owner ? owner->off : m.append(f, false);
        if (owner) owner->value = kSeveralUsers;  // another user lists it: not this user's repeat
        else m.owner_index.insert(oh, off, f.size(), 0, user_id, m.domain_hash_of());
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

bool DirectoryBuilder::add_mta(const MtaInfo& mta, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    Directory::Impl& m = *impl_;
    if (mta.name.empty()) {
        *error = "mta name is empty";
        return false;
    }
    if (!valid_text(mta.name, error, "mta name")) return false;
    const std::string who = "mta " + printable(mta.name);
    if (mta.destinations.empty()) {
        *error = who + " has no destinations";
        return false;
    }
    if (mta.destinations.size() > kMaxMtaDestinations) {
        *error = who + " has more than 16 destinations";
        return false;
    }
    for (const MtaEndpoint& e : mta.destinations) {
        if (e.port == 0) {
            *error = who + ": destination " + Endpoint{e.address, e.port}.to_string() + " has port 0";
            return false;
        }
    }
    if (!mta.tls_name.empty() && mta.tls != MtaTls::may && mta.tls != MtaTls::encrypt && mta.tls != MtaTls::verify) {
        *error = who + ": tls-name needs tls=may, encrypt or verify";
        return false;
    }
    if (!valid_text(mta.tls_name, error, "tls-name")) return false;
    if (m.find_mta_slot(mta.name)) {
        *error = who + " is already defined";
        return false;
    }
    if (m.mtas.size() >= 0xFFFFFFF0u || m.arena.size() > 0xF0000000u) {
        *error = "directory too large";
        return false;
    }
    char buf[255];
    const std::string_view folded = fold(mta.name, buf, sizeof buf);
    std::uint16_t home_id = 0;
    if (!homes_->intern(folded, m.homes, home_id, error)) return false;

    MtaRec r{};
    r.name_off = m.append(folded, false);
    r.name_len = static_cast<std::uint8_t>(folded.size());
    r.first = static_cast<std::uint32_t>(m.endpoints.size());
    r.count = static_cast<std::uint8_t>(mta.destinations.size());
    r.tls_name_off = m.append(mta.tls_name, false);
    r.tls_name_len = static_cast<std::uint8_t>(mta.tls_name.size());
    r.encoding = mta.encoding;
    r.tls = mta.tls;
    for (const MtaEndpoint& e : mta.destinations) m.endpoints.push_back({e.address.normalized(), e.port});
    const auto id = static_cast<std::uint32_t>(m.mtas.size());
    m.mtas.push_back(r);
    m.mta_index.insert(hash_key(0, folded), r.name_off, r.name_len, 0, id, m.domain_hash_of());
    return true;
}

Directory DirectoryBuilder::build() {
    auto impl = std::exchange(impl_, std::make_unique<Directory::Impl>());
    impl->arena.shrink_to_fit();
    impl->domains.shrink_to_fit();
    impl->users.shrink_to_fit();
    impl->mtas.shrink_to_fit();
    impl->endpoints.shrink_to_fit();
    impl->loaded = true;
    homes_ = std::make_unique<Interner>();
    return Directory(std::move(impl));
}

}  // namespace xproxy
