// directory_file.cpp: parser and writer of the directory file (directory_file.hpp).
//
// One pass over the text: a pre-count of "domain" and "user" lines sizes the tables,
// then each line is split into words (string_views) and handed to DirectoryBuilder,
// which validates names and refuses duplicates. The first error stops parsing. An mta
// line may come anywhere: nothing checks that a home= names one.
#include <xproxy/base/escape.hpp>
#include <xproxy/base/ip.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/policy/directory_file.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

namespace xproxy {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Quotes a word of the file for an error message (escaped, at most 64 characters).
std::string quoted(std::string_view s) { return "'" + escape(s, 64) + "'"; }

std::string unknown_state(std::string_view value) {
    return "unknown state " + quoted(value) + " (want active, inactive, disabled, deleted, hold or overquota)";
}

// The words of one line; a word beginning with '#' ends the line.
class Words {
public:
    explicit Words(std::string_view line) : rest_(line) {}
    bool next(std::string_view& word) {
        std::size_t i = 0;
        while (i < rest_.size() && is_blank(rest_[i])) ++i;
        if (i == rest_.size() || rest_[i] == '#') return false;
        std::size_t j = i;
        while (j < rest_.size() && !is_blank(rest_[j])) ++j;
        word = rest_.substr(i, j - i);
        rest_ = rest_.substr(j);
        return true;
    }

private:
    std::string_view rest_;
};

std::optional<bool> parse_bool(std::string_view v) {
    if (v == "yes" || v == "true" || v == "on" || v == "1") return true;
    if (v == "no" || v == "false" || v == "off" || v == "0") return false;
    return std::nullopt;
}

// Calls add(item) for each comma-separated item of `list`; false on an empty item.
template <typename F>
bool split_list(std::string_view list, F&& add) {
    while (true) {
        const std::size_t comma = list.find(',');
        const std::string_view item = list.substr(0, comma);
        if (item.empty()) return false;
        if (!add(item)) return false;
        if (comma == std::string_view::npos) return true;
        list = list.substr(comma + 1);
    }
}

class Parser {
public:
    Expected<Directory> run(std::string_view text);

private:
    bool fail(std::string_view message) {
        error_ = "line " + std::to_string(line_no_) + ": ";
        error_ += message;
        return false;
    }
    bool line(std::string_view text);
    // The name=value words after a line's name: on(key, value, once) for each, where
    // once(seen) refuses a single-valued attribute given twice. An empty value or a word
    // without '=' is an error. False when a word or `on` failed (the error is set).
    template <typename On>
    bool attributes(Words& words, On&& on);
    bool domain_line(Words& words);
    bool user_line(Words& words);
    bool mta_line(Words& words);

    DirectoryBuilder builder_;
    UserExtras extras_;
    std::vector<MtaEndpoint> destinations_;
    std::size_t line_no_ = 0;
    std::string error_;
};

void count_records(std::string_view text, std::size_t& domains, std::size_t& users) {
    domains = users = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t i = pos;
        while (i < text.size() && is_blank(text[i])) ++i;
        const std::string_view head = text.substr(i, 7);
        if (head.starts_with("user") && head.size() > 4 && is_blank(head[4])) ++users;
        else if (head.starts_with("domain") && head.size() > 6 && is_blank(head[6])) ++domains;
        const void* nl = std::memchr(text.data() + i, '\n', text.size() - i);
        if (!nl) break;
        pos = static_cast<std::size_t>(static_cast<const char*>(nl) - text.data()) + 1;
    }
}

Expected<Directory> Parser::run(std::string_view text) {
    std::size_t domains = 0, users = 0;
    count_records(text, domains, users);
    builder_.reserve(domains, users, text.size() / 4);
    std::size_t pos = 0;
    bool ok = true;
    while (ok && pos < text.size()) {
        ++line_no_;
        const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
        const std::size_t end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - text.data()) : text.size();
        std::string_view l = text.substr(pos, end - pos);
        pos = end + 1;
        if (l.size() > kMaxDirectoryLine) {
            ok = fail("line longer than " + std::to_string(kMaxDirectoryLine) + " bytes");
            break;
        }
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        ok = line(l);
    }
    if (!ok) return Failure{error_};
    return builder_.build();
}

bool Parser::line(std::string_view text) {
    Words words(text);
    std::string_view keyword;
    if (!words.next(keyword)) return true;  // blank or comment
    if (keyword == "domain") return domain_line(words);
    if (keyword == "user") return user_line(words);
    if (keyword == "mta") return mta_line(words);
    return fail("unknown keyword " + quoted(keyword) + " (want domain, user or mta)");
}

template <typename On>
bool Parser::attributes(Words& words, On&& on) {
    std::string_view word;
    while (words.next(word)) {
        const std::size_t eq = word.find('=');
        if (eq == std::string_view::npos) return fail("expected name=value, got " + quoted(word));
        const std::string_view key = word.substr(0, eq), value = word.substr(eq + 1);
        if (value.empty()) return fail("attribute " + std::string(key) + " has an empty value");
        auto once = [&](bool& seen) {
            if (seen) return fail("attribute " + std::string(key) + " given twice");
            seen = true;
            return true;
        };
        if (!on(key, value, once)) return false;
    }
    return true;
}

bool Parser::domain_line(Words& words) {
    DomainInfo d;
    if (!words.next(d.name)) return fail("domain line without a domain name");
    bool seen_state = false, seen_services = false, seen_tls = false, seen_admin = false, seen_pm = false,
         seen_home = false;
    const bool ok = attributes(words, [&](std::string_view key, std::string_view value, auto& once) {
        if (key == "state") {
            if (!once(seen_state)) return false;
            const auto s = parse_entry_state(value);
            if (!s) return fail(unknown_state(value));
            d.state = *s;
        } else if (key == "services") {
            if (!once(seen_services)) return false;
            d.services = ServiceSet{};
            if (value == "none") return true;
            std::string_view bad;
            if (!split_list(value, [&](std::string_view item) {
                    const auto s = parse_service(item);
                    if (!s) bad = item;
                    else d.services.add(*s);
                    return s.has_value();
                }))
                return fail(bad.empty()
                                ? "empty item in services=" + quoted(value)
                                : "unknown service " + quoted(bad) +
                                      " (want smtp, submission, lmtp, imap, imaps, pop3, pop3s, webmail or none)");
        } else if (key == "require_tls") {
            if (!once(seen_tls)) return false;
            const auto b = parse_bool(value);
            if (!b) return fail("require_tls=" + quoted(value) + " is not yes or no");
            d.require_tls = *b;
        } else if (key == "admin") {
            if (!once(seen_admin)) return false;
            d.admin = value;
        } else if (key == "postmaster") {
            if (!once(seen_pm)) return false;
            d.postmaster = value;
        } else if (key == "home") {
            if (!once(seen_home)) return false;
            d.home = value;
        } else {
            return fail("unknown domain attribute " + quoted(key) +
                        " (want state, services, require_tls, admin, postmaster or home)");
        }
        return true;
    });
    if (!ok) return false;
    std::string why;
    if (!builder_.add_domain(d, &why)) return fail(why);
    return true;
}

bool Parser::user_line(Words& words) {
    std::string_view address;
    if (!words.next(address)) return fail("user line without an address");
    EntryState state = EntryState::active;
    std::string_view home;
    bool seen_state = false, seen_home = false;
    extras_.clear();
    const bool ok = attributes(words, [&](std::string_view key, std::string_view value, auto& once) {
        std::vector<std::string_view>* list = nullptr;
        if (key == "state") {
            if (!once(seen_state)) return false;
            const auto s = parse_entry_state(value);
            if (!s) return fail(unknown_state(value));
            state = *s;
        } else if (key == "home") {
            if (!once(seen_home)) return false;
            home = value;
        } else if (key == "alias") {
            list = &extras_.aliases;
        } else if (key == "login") {
            list = &extras_.logins;
        } else if (key == "cert") {
            list = &extras_.fingerprints;
        } else {
            return fail("unknown user attribute " + quoted(key) + " (want state, home, alias, login or cert)");
        }
        if (list && !split_list(value, [&](std::string_view item) {
                list->push_back(item);
                return true;
            }))
            return fail("empty item in " + std::string(key) + "=" + quoted(value));
        return true;
    });
    if (!ok) return false;
    std::string why;
    if (!builder_.add_user(address, state, home, extras_, &why)) return fail(why);
    return true;
}

bool Parser::mta_line(Words& words) {
    MtaInfo mta;
    if (!words.next(mta.name)) return fail("mta line without a name");
    bool seen_dest = false, seen_encoding = false, seen_tls = false, seen_tls_name = false;
    destinations_.clear();
    const bool ok = attributes(words, [&](std::string_view key, std::string_view value, auto& once) {
        if (key == "destinations") {
            if (!once(seen_dest)) return false;
            std::string why;
            if (!split_list(value, [&](std::string_view item) {
                    if (destinations_.size() == kMaxMtaDestinations) {
                        why = "destinations= lists more than 16 addresses";
                        return false;
                    }
                    auto e = parse_mta_destination(item);
                    if (!e) why = e.error();
                    else destinations_.push_back(*e);
                    return e.has_value();
                }))
                return fail(why.empty() ? "empty item in destinations=" + quoted(value) : why);
        } else if (key == "encoding") {
            if (!once(seen_encoding)) return false;
            const auto e = parse_mta_encoding(value);
            if (!e) return fail("unknown encoding " + quoted(value) + " (want auto, xproxy, xclient or proxy-v2)");
            mta.encoding = *e;
        } else if (key == "tls") {
            if (!once(seen_tls)) return false;
            const auto t = parse_mta_tls(value);
            if (!t) return fail("unknown tls " + quoted(value) + " (want none, may, encrypt or verify)");
            mta.tls = *t;
        } else if (key == "tls-name") {
            if (!once(seen_tls_name)) return false;
            mta.tls_name = value;
        } else {
            return fail("unknown mta attribute " + quoted(key) + " (want destinations, encoding, tls or tls-name)");
        }
        return true;
    });
    if (!ok) return false;
    if (!seen_dest) return fail("mta " + escape(mta.name, 64) + " without destinations=");
    mta.destinations = destinations_;
    std::string why;
    if (!builder_.add_mta(mta, &why)) return fail(why);
    return true;
}

}  // namespace

// One item of destinations=: a.b.c.d[:PORT] or [IPv6][:PORT], port 1..65535 (default 25).
Expected<MtaEndpoint> parse_mta_destination(std::string_view item) {
    auto bad = [&] {
        return Failure{"destinations=: " + quoted(item) +
                       ": want a numeric address (IPv4 or [IPv6]) with an optional :PORT"};
    };
    std::string_view host = item, port;
    bool has_port = false;
    if (item.starts_with('[')) {
        const std::size_t close = item.find(']');
        if (close == std::string_view::npos) return bad();
        host = item.substr(1, close - 1);
        const std::string_view rest = item.substr(close + 1);
        if (host.find(':') == std::string_view::npos) return bad();  // brackets are for IPv6
        if (!rest.empty()) {
            if (rest[0] != ':') return bad();
            has_port = true;
            port = rest.substr(1);
        }
    } else {
        const std::size_t colon = item.find(':');
        if (colon != std::string_view::npos) {
            has_port = true;
            host = item.substr(0, colon);
            port = item.substr(colon + 1);
            if (port.find(':') != std::string_view::npos) return bad();  // IPv6 without brackets
        }
    }
    const auto address = IpAddress::parse(host);
    if (!address) return bad();
    MtaEndpoint e;
    e.address = *address;
    if (has_port) {
        const auto p = parse_decimal<std::uint16_t>(port);
        if (!p || *p == 0) return Failure{"destinations=: " + quoted(item) + ": the port must be 1 to 65535"};
        e.port = *p;
    }
    return e;
}

Expected<Directory> parse_directory(std::string_view text) {
    Parser p;
    return p.run(text);
}

std::string format_directory(const Directory& d) {
    const auto users = static_cast<std::uint32_t>(d.user_count());
    const auto domains = static_cast<std::uint32_t>(d.domain_count());
    struct Extras {
        std::vector<std::string_view> alias, login, cert;
    };
    std::vector<Extras> extras(users);
    d.for_each_extra([&](Directory::Extra kind, std::uint32_t user, std::string_view value) {
        auto& list = kind == Directory::Extra::alias   ? extras[user].alias
                     : kind == Directory::Extra::login ? extras[user].login
                                                       : extras[user].cert;
        list.push_back(value);
    });
    auto write_list = [](std::string& out, std::string_view name, std::vector<std::string_view>& list) {
        if (list.empty()) return;
        std::sort(list.begin(), list.end());  // a canonical order: the directory keeps none
        out += name;
        for (std::size_t i = 0; i < list.size(); ++i) {
            if (i) out += ',';
            out += list[i];
        }
    };
    // Users grouped by domain, in the order they were added.
    std::vector<std::uint32_t> start(domains + 1, 0), order(users);
    for (std::uint32_t u = 0; u < users; ++u) ++start[d.user_at(u).domain_id + 1];
    for (std::uint32_t i = 0; i < domains; ++i) start[i + 1] += start[i];
    {
        std::vector<std::uint32_t> next(start.begin(), start.end() - 1);
        for (std::uint32_t u = 0; u < users; ++u) order[next[d.user_at(u).domain_id]++] = u;
    }
    std::string out;
    for (std::uint32_t i = 0; i < d.mta_count(); ++i) {
        const MtaInfo m = d.mta_at(i);
        out += "mta ";
        out += m.name;
        out += " destinations=";
        for (std::size_t k = 0; k < m.destinations.size(); ++k) {
            if (k) out += ',';
            out += Endpoint{m.destinations[k].address, m.destinations[k].port}.to_string();
        }
        out += " encoding=";
        out += to_string(m.encoding);
        if (m.tls != MtaTls::unset) (out += " tls=") += to_string(m.tls);
        if (!m.tls_name.empty()) (out += " tls-name=") += m.tls_name;
        out += '\n';
    }
    for (std::uint32_t i = 0; i < domains; ++i) {
        const DomainInfo dom = d.domain_at(i);
        out += "domain ";
        out += dom.name;
        out += " state=";
        out += to_string(dom.state);
        out += " services=";
        out += dom.services.to_string();
        out += dom.require_tls ? " require_tls=yes" : " require_tls=no";
        if (!dom.admin.empty()) (out += " admin=") += dom.admin;
        if (!dom.postmaster.empty()) (out += " postmaster=") += dom.postmaster;
        if (!dom.home.empty()) (out += " home=") += dom.home;
        out += '\n';
        for (std::uint32_t k = start[i]; k < start[i + 1]; ++k) {
            const UserInfo u = d.user_at(order[k]);
            out += "user ";
            ((out += u.local_part) += '@') += u.domain;
            out += " state=";
            out += to_string(u.state);
            if (!u.home.empty()) (out += " home=") += u.home;
            Extras& x = extras[u.id];
            write_list(out, " alias=", x.alias);
            write_list(out, " login=", x.login);
            write_list(out, " cert=", x.cert);
            out += '\n';
        }
    }
    return out;
}

}  // namespace xproxy
