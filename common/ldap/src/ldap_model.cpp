// ldap_model.cpp: entries by UUID, the directory built from them, the state file's text
// (ldap_model.hpp).
//
// State file, one record a line, tokens separated by one space; a string token is '.'
// followed by escape_value() of the bytes (so it holds no space, no newline and may be
// empty), a number is decimal, a UUID lower-case hex:
//   xproxy-ldap-state 2
//   source .TEXT
//   cookie .BYTES | cookie -
//   ok UUID .DN KIND .NAME STATE SERVICES TLS .ADMIN .POSTMASTER .HOME
//      N .ALIAS.. N .LOGIN.. N .CERT.. N .DESTINATION.. ENCODING MTA_TLS .TLS_NAME
//   bad UUID .DN .WHY
//   end COUNT
// STATE is the state's name (active, inactive, disabled, deleted, hold, overquota).
// Version 1 wrote a number of three states (0 active, 1 inactive, 2 deleted) and had
// read disabled, hold and overquota as inactive: such a file is refused as a whole (the
// sync then refreshes fully), never read with the states of this version.
#include <algorithm>
#include <vector>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/ldap/ldap_model.hpp>
#include <xproxy/policy/directory_file.hpp>

namespace xproxy {

namespace {

constexpr std::string_view kStateHeader = "xproxy-ldap-state 2";

std::string hex(std::string_view bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::optional<std::string> unhex(std::string_view s) {
    if (s.size() % 2) return std::nullopt;
    auto v = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    std::string out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        const int hi = v(s[i]), lo = v(s[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
    }
    return out;
}

class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}
    Writer& word(std::string_view w) {
        sep();
        out_ += w;
        return *this;
    }
    Writer& text(std::string_view s) {
        sep();
        out_ += '.';
        out_ += escape_value(s, 0, false);
        return *this;
    }
    Writer& number(std::size_t n) { return word(std::to_string(n)); }
    template <typename List>
    Writer& list(const List& items) {
        number(items.size());
        for (const auto& i : items) text(i);
        return *this;
    }
    void end() {
        out_ += '\n';
        first_ = true;
    }

private:
    void sep() {
        if (!first_) out_ += ' ';
        first_ = false;
    }
    std::string& out_;
    bool first_ = true;
};

class Reader {
public:
    explicit Reader(std::string_view line) : rest_(line) {}
    bool word(std::string_view& w) {
        if (rest_.empty()) return false;
        const std::size_t sp = rest_.find(' ');
        w = rest_.substr(0, sp);
        rest_ = sp == std::string_view::npos ? std::string_view() : rest_.substr(sp + 1);
        return !w.empty();
    }
    bool text(std::string& out) {
        std::string_view w;
        if (!word(w) || w[0] != '.') return false;
        auto u = unescape(w.substr(1));
        if (!u) return false;
        out = std::move(*u);
        return true;
    }
    template <typename T>
    bool number(T& out, T max) {
        std::string_view w;
        if (!word(w)) return false;
        const auto n = parse_decimal<T>(w, max);
        if (!n) return false;
        out = *n;
        return true;
    }
    bool list(std::vector<std::string>& out) {
        std::size_t n = 0;
        if (!number<std::size_t>(n, 1u << 16)) return false;
        out.resize(n);
        for (auto& s : out)
            if (!text(s)) return false;
        return true;
    }
    bool done() const { return rest_.empty(); }

private:
    std::string_view rest_;
};

void write_record(Writer& w, const LdapRecord& r) {
    w.number(static_cast<std::size_t>(r.kind)).text(r.name).word(to_string(r.state));
    w.word(r.services.to_string()).number(r.require_tls ? 1 : 0).text(r.admin).text(r.postmaster).text(r.home);
    w.list(r.aliases).list(r.logins).list(r.fingerprints);
    std::vector<std::string> dests;
    for (const auto& d : r.destinations) dests.push_back(Endpoint{d.address, d.port}.to_string());
    w.list(dests).number(static_cast<std::size_t>(r.encoding)).number(static_cast<std::size_t>(r.tls)).text(r.tls_name);
}

bool read_record(Reader& rd, LdapRecord& r) {
    unsigned kind = 0, tls_required = 0, encoding = 0, tls = 0;
    std::string_view state, services;
    std::vector<std::string> dests;
    if (!rd.number(kind, 3u) || kind == 0 || !rd.text(r.name) || !rd.word(state) || !rd.word(services) ||
        !rd.number(tls_required, 1u) || !rd.text(r.admin) || !rd.text(r.postmaster) || !rd.text(r.home) ||
        !rd.list(r.aliases) || !rd.list(r.logins) || !rd.list(r.fingerprints) || !rd.list(dests) ||
        !rd.number(encoding, 3u) || !rd.number(tls, 4u) || !rd.text(r.tls_name))
        return false;
    const auto parsed_state = parse_entry_state(state);
    if (!parsed_state || state != to_string(*parsed_state)) return false;  // only the names written
    r.kind = static_cast<LdapKind>(kind);
    r.state = *parsed_state;
    r.require_tls = tls_required != 0;
    r.encoding = static_cast<MtaEncoding>(encoding);
    r.tls = static_cast<MtaTls>(tls);
    r.services = ServiceSet{};
    if (services != "none") {
        std::string_view rest = services;
        while (!rest.empty()) {
            const std::size_t comma = rest.find(',');
            const auto s = parse_service(rest.substr(0, comma));
            if (!s) return false;
            r.services.add(*s);
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
    }
    for (const auto& d : dests) {
        auto e = parse_mta_destination(d);
        if (!e) return false;
        r.destinations.push_back(*e);
    }
    return true;
}

}  // namespace

bool LdapModel::upsert(const std::string& uuid, std::string dn, const LdapSchema& schema,
                       const LdapAttributes& attributes) {
    auto record = parse_ldap_entry(schema, attributes);
    if (record && record->kind == LdapKind::other) {
        erase(uuid);
        return false;
    }
    upsert_record(uuid, std::move(dn), std::move(record));
    return true;
}

std::string LdapModel::order_key(const std::string& uuid, const Entry& e) {
    // kind first (refused entries, domains, MTAs, users: the builder's order), then the
    // name as the builder compares it, then the DN and the UUID (unique).
    std::string key;
    if (!e.record) {
        key = "0";
    } else {
        key = e.record->kind == LdapKind::domain ? "1" : e.record->kind == LdapKind::mta ? "2" : "3";
        key += to_lower(e.record->name);
    }
    key += '\0';
    key += e.dn;
    key += '\0';
    key += uuid;
    return key;
}

void LdapModel::upsert_record(const std::string& uuid, std::string dn, Expected<LdapRecord> record) {
    auto [it, added] = entries_.try_emplace(uuid);
    Entry& e = it->second;
    if (!added) order_.erase(order_key(uuid, e));
    e.dn = std::move(dn);
    if (record) {
        e.record = std::move(*record);
        e.error.clear();
    } else {
        e.record.reset();
        e.error = record.error();
    }
    order_.emplace(order_key(uuid, e), &e);
}

bool LdapModel::erase(const std::string& uuid) {
    const auto it = entries_.find(uuid);
    if (it == entries_.end()) return false;
    order_.erase(order_key(uuid, it->second));
    entries_.erase(it);
    return true;
}

std::size_t LdapModel::retain(const std::unordered_set<std::string>& keep) {
    std::size_t removed = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (keep.count(it->first)) {
            ++it;
        } else {
            order_.erase(order_key(it->first, it->second));
            it = entries_.erase(it);
            ++removed;
        }
    }
    return removed;
}

Directory LdapModel::build(Counts& counts, const SkipFn& skipped) {
    counts = Counts{};
    counts.entries = entries_.size();
    // The order index holds the entries in the builder's order already: no sort here.
    std::vector<Entry*> domains, users, mtas;
    users.reserve(entries_.size());
    std::size_t text = 0;
    auto report = [&](Entry& e) {
        ++counts.skipped;
        if (e.reported != e.error) {
            e.reported = e.error;
            if (skipped) skipped(e.dn, e.error);
        }
    };
    for (auto& [key, entry] : order_) {
        Entry& e = *entry;
        if (!e.record) {
            report(e);
            continue;
        }
        e.error.clear();
        text += e.record->name.size() + 16;
        switch (e.record->kind) {
            case LdapKind::domain: domains.push_back(&e); break;
            case LdapKind::user: users.push_back(&e); break;
            case LdapKind::mta: mtas.push_back(&e); break;
            case LdapKind::other: break;
        }
    }

    DirectoryBuilder b;
    b.reserve(domains.size(), users.size(), text);
    std::string why;
    for (Entry* e : domains) {
        const LdapRecord& r = *e->record;
        DomainInfo d;
        d.name = r.name;
        d.state = r.state;
        d.services = r.services;
        d.require_tls = r.require_tls;
        d.admin = r.admin;
        d.postmaster = r.postmaster;
        d.home = r.home;
        if (b.add_domain(d, &why)) ++counts.domains;
        else e->error = why;
    }
    for (Entry* e : mtas) {
        const LdapRecord& r = *e->record;
        MtaInfo m;
        m.name = r.name;
        m.destinations = r.destinations;
        m.encoding = r.encoding;
        m.tls = r.tls;
        m.tls_name = r.tls_name;
        if (b.add_mta(m, &why)) ++counts.mtas;
        else e->error = why;
    }
    UserExtras extras;
    for (Entry* e : users) {
        const LdapRecord& r = *e->record;
        extras.clear();
        for (const auto& a : r.aliases) extras.aliases.emplace_back(a);
        for (const auto& l : r.logins) extras.logins.emplace_back(l);
        for (const auto& f : r.fingerprints) extras.fingerprints.emplace_back(f);
        if (b.add_user(r.name, r.state, r.home, extras, &why)) ++counts.users;
        else e->error = why;
    }
    for (std::vector<Entry*>* list : {&domains, &mtas, &users})
        for (Entry* e : *list)
            if (!e->error.empty()) report(*e);
            else e->reported.clear();
    return b.build();
}

std::string LdapModel::serialize(std::string_view source, const std::optional<std::string>& cookie) const {
    std::string out;
    out += kStateHeader;
    out += '\n';
    Writer w(out);
    w.word("source").text(source).end();
    if (cookie) w.word("cookie").text(*cookie).end();
    else w.word("cookie").word("-").end();
    for (const auto& [uuid, e] : entries_) {
        if (e.record) {
            w.word("ok").word(hex(uuid)).text(e.dn);
            write_record(w, *e.record);
        } else {
            w.word("bad").word(hex(uuid)).text(e.dn).text(e.error);
        }
        w.end();
    }
    w.word("end").number(entries_.size()).end();
    return out;
}

Expected<LdapModel::State> LdapModel::parse_state(std::string_view text) {
    std::unordered_map<std::string, Entry> entries;
    State st;
    std::size_t pos = 0, line_no = 0;
    bool ended = false;
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) return Failure{"the last line is cut"};
        const std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        const auto bad = [&] { return Failure{"line " + std::to_string(line_no) + " is damaged"}; };
        if (ended) return bad();
        if (line_no == 1) {
            if (line != kStateHeader) return Failure{"not a state file of this version"};
            continue;
        }
        Reader rd(line);
        std::string_view kind;
        if (!rd.word(kind)) return bad();
        if (line_no == 2) {
            if (kind != "source" || !rd.text(st.source) || !rd.done()) return bad();
            continue;
        }
        if (line_no == 3) {
            if (kind != "cookie") return bad();
            std::string_view w;
            Reader copy = rd;
            if (copy.word(w) && w == "-" && copy.done()) continue;
            std::string c;
            if (!rd.text(c) || !rd.done()) return bad();
            st.cookie = std::move(c);
            continue;
        }
        if (kind == "end") {
            std::size_t n = 0;
            if (!rd.number<std::size_t>(n, SIZE_MAX) || !rd.done() || n != entries.size()) return bad();
            ended = true;
            continue;
        }
        std::string_view uuid_hex;
        if ((kind != "ok" && kind != "bad") || !rd.word(uuid_hex)) return bad();
        auto uuid = unhex(uuid_hex);
        if (!uuid || uuid->size() != 16 || entries.count(*uuid)) return bad();
        Entry e;
        if (!rd.text(e.dn)) return bad();
        if (kind == "ok") {
            LdapRecord r;
            if (!read_record(rd, r)) return bad();
            e.record = std::move(r);
        } else if (!rd.text(e.error) || e.error.empty()) {
            return bad();
        }
        if (!rd.done()) return bad();
        entries.emplace(std::move(*uuid), std::move(e));
    }
    if (!ended) return Failure{"the file is cut (no end line)"};
    entries_ = std::move(entries);
    order_.clear();
    for (auto& [uuid, e] : entries_) order_.emplace(order_key(uuid, e), &e);
    return st;
}

}  // namespace xproxy
