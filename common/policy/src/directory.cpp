// directory.cpp: lookups in the in-memory virtual-domain directory (directory.hpp),
// and the names of states, services and MTA settings. The layout is in
// directory_internal.hpp.
#include <xproxy/policy/directory.hpp>

#include <array>
#include <cstring>

#include "directory_internal.hpp"

namespace xproxy {

namespace directory_detail {

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

}  // namespace directory_detail

// ---- names of states and services ----

std::string_view to_string(EntryState s) {
    switch (s) {
        case EntryState::active: return "active";
        case EntryState::inactive: return "inactive";
        case EntryState::disabled: return "disabled";
        case EntryState::deleted: return "deleted";
        case EntryState::hold: return "hold";
        case EntryState::overquota: return "overquota";
    }
    return "?";
}

std::optional<EntryState> parse_entry_state(std::string_view text) {
    char buf[16];
    const std::string_view t = fold(text, buf, sizeof buf);
    if (t == "active") return EntryState::active;
    if (t == "inactive") return EntryState::inactive;
    if (t == "disabled") return EntryState::disabled;
    if (t == "deleted" || t == "removed") return EntryState::deleted;
    if (t == "hold") return EntryState::hold;
    if (t == "overquota") return EntryState::overquota;
    return std::nullopt;
}

namespace {
constexpr std::array<std::string_view, kServiceCount> kServiceNames = {"smtp",  "submission", "lmtp",  "imap",
                                                                       "imaps", "pop3",       "pop3s", "webmail"};
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

namespace {
constexpr std::array<std::string_view, 4> kEncodingNames = {"auto", "xproxy", "xclient", "proxy-v2"};
constexpr std::array<std::string_view, 5> kTlsNames = {"", "none", "may", "encrypt", "verify"};

// The index of `text` (any case) in `names`, from `first` on.
template <std::size_t N>
std::optional<std::size_t> find_name(const std::array<std::string_view, N>& names, std::string_view text,
                                     std::size_t first) {
    char buf[16];
    const std::string_view t = fold(text, buf, sizeof buf);
    if (t.empty()) return std::nullopt;
    for (std::size_t i = first; i < N; ++i)
        if (t == names[i]) return i;
    return std::nullopt;
}
}  // namespace

std::string_view to_string(MtaEncoding e) { return kEncodingNames[static_cast<std::size_t>(e)]; }
std::string_view to_string(MtaTls t) { return kTlsNames[static_cast<std::size_t>(t)]; }

std::optional<MtaEncoding> parse_mta_encoding(std::string_view text) {
    const auto i = find_name(kEncodingNames, text, 0);
    if (!i) return std::nullopt;
    return static_cast<MtaEncoding>(*i);
}

std::optional<MtaTls> parse_mta_tls(std::string_view text) {
    const auto i = find_name(kTlsNames, text, 1);
    if (!i) return std::nullopt;
    return static_cast<MtaTls>(*i);
}

std::optional<std::string> normalize_fingerprint(std::string_view text) {
    char buf[kMaxFingerprintHex];
    const std::size_t n = normalize_fp(text, buf);
    if (n == 0) return std::nullopt;
    return std::string(buf, n);
}

Directory::Directory() : impl_(std::make_unique<Impl>()) {}
Directory::Directory(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Directory::~Directory() = default;
Directory::Directory(Directory&&) noexcept = default;
Directory& Directory::operator=(Directory&&) noexcept = default;

bool Directory::loaded() const { return impl_ && impl_->loaded; }

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

std::optional<UserInfo> Directory::find_by_login(std::string_view login) const {
    if (login.find('@') != std::string_view::npos)
        if (auto u = find_address(login)) return u;
    char buf[kMaxLoginLength];
    const std::string_view f = fold(login, buf, sizeof buf);
    if (f.empty()) return std::nullopt;
    const Slot* s = impl_->owner_index.find(hash_key(0, f), 0, f, impl_->arena.data());
    if (!s || s->value == kSeveralUsers) return std::nullopt;
    return impl_->user_info(s->value);
}

std::optional<MtaInfo> Directory::find_mta(std::string_view name) const {
    const Slot* s = impl_->find_mta_slot(name);
    if (!s) return std::nullopt;
    return impl_->mta_info(s->value);
}

std::string_view Directory::home_of(const UserInfo& user) const {
    if (!user.home.empty()) return user.home;
    if (user.domain_id >= impl_->domains.size()) return {};
    return impl_->homes[impl_->domains[user.domain_id].home];
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
MtaInfo Directory::mta_at(std::uint32_t i) const { return impl_->mta_info(i); }
std::size_t Directory::mta_count() const { return impl_->mtas.size(); }

std::size_t Directory::memory_bytes() const {
    const Impl& m = *impl_;
    std::size_t n = sizeof(Impl) + m.arena.capacity() + m.domains.capacity() * sizeof(DomainRec) +
                    m.users.capacity() * sizeof(UserRec) + m.homes.capacity() * sizeof(std::string) +
                    m.mtas.capacity() * sizeof(MtaRec) + m.endpoints.capacity() * sizeof(MtaEndpoint);
    for (const auto& h : m.homes) n += h.capacity() > 15 ? h.capacity() + 1 : 0;
    for (const KeyTable* t :
         {&m.domain_index, &m.name_index, &m.login_index, &m.owner_index, &m.cert_index, &m.mta_index})
        n += t->memory_bytes();
    return n;
}

}  // namespace xproxy
