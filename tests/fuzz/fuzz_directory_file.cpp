// fuzz_directory_file: parse_directory on arbitrary text, checking its promises: no
// crash or read past the text; a refusal names the line ("line N: ..."); an accepted
// text describes a directory in which every domain, user, alias, login, certificate and
// home MTA is found again (names in upper case too), a user found by a login may send as
// it, the access decision agrees with the states and services, and format_directory()
// writes a text that parses to a directory formatting the same. Every word of the input
// is also used as a lookup key, which must not crash whatever it holds.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <xproxy/base/text.hpp>
#include <xproxy/policy/access_decision.hpp>
#include <xproxy/policy/directory_file.hpp>

using namespace xproxy;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void check_directory(const Directory& d) {
    check(d.loaded());
    for (std::uint32_t i = 0; i < d.domain_count(); ++i) {
        const DomainInfo dom = d.domain_at(i);
        const auto again = d.find_domain(xproxy::to_upper(dom.name));
        check(again && again->id == i);
    }
    for (std::uint32_t i = 0; i < d.user_count(); ++i) {
        const UserInfo u = d.user_at(i);
        const std::string address = std::string(u.local_part) + "@" + std::string(u.domain);
        const auto again = d.find_address(xproxy::to_upper(address));
        check(again && again->id == i && again->domain_id == u.domain_id);
        check(d.login_may_send_as(address, u));
        const auto by_login = d.find_by_login(xproxy::to_upper(address));
        check(by_login && by_login->id == i);
        // The access decision agrees with the states and services of the user and domain.
        const DomainInfo dom = d.domain_at(u.domain_id);
        const bool may = state_allows_access(dom.state) && dom.services.has(Service::submission) &&
                         state_allows_access(u.state);
        check(decide_access(d, u, Service::submission).allowed() == may);
        const std::string_view home = d.home_of(u);
        check(home == (u.home.empty() ? d.domain_at(u.domain_id).home : u.home));
    }
    for (std::uint32_t i = 0; i < d.mta_count(); ++i) {
        const MtaInfo m = d.mta_at(i);
        const auto again = d.find_mta(xproxy::to_upper(m.name));
        check(again && again->name == m.name && again->destinations.data() == m.destinations.data());
        check(!m.destinations.empty() && m.destinations.size() <= kMaxMtaDestinations);
        check(m.tls_name.empty() || m.tls == MtaTls::may || m.tls == MtaTls::encrypt || m.tls == MtaTls::verify);
    }
    d.for_each_extra([&](Directory::Extra kind, std::uint32_t user, std::string_view value) {
        const UserInfo u = d.user_at(user);
        switch (kind) {
            case Directory::Extra::alias: {
                const auto found = d.find_user(d.domain_at(u.domain_id), xproxy::to_upper(value));
                check(found && found->id == user);
                break;
            }
            case Directory::Extra::login: {
                check(d.login_may_send_as(xproxy::to_upper(value), u));
                // Another user when ambiguous or when the login is another's address.
                const auto found = d.find_by_login(xproxy::to_upper(value));
                check(!found || d.login_may_send_as(value, *found));
                break;
            }
            case Directory::Extra::fingerprint: {
                const auto found = d.find_by_fingerprint(xproxy::to_upper(value));
                check(found && found->id == user);
                break;
            }
        }
    });
}

void probe(const Directory& d, std::string_view text) {
    std::size_t words = 0;
    std::size_t i = 0;
    while (i < text.size() && words < 64) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) ++i;
        std::size_t j = i;
        while (j < text.size() && text[j] != ' ' && text[j] != '\t' && text[j] != '\n') ++j;
        const std::string_view w = text.substr(i, j - i);
        const std::size_t eq = w.find('=');
        const std::string_view v = eq == std::string_view::npos ? w : w.substr(eq + 1);
        (void)d.find_domain(v);
        (void)d.find_address(v);
        (void)d.find_by_fingerprint(v);
        (void)d.find_by_login(v);
        (void)d.find_mta(v);
        if (d.user_count() > 0) (void)d.login_may_send_as(v, d.user_at(0));
        ++words;
        i = j;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto d = parse_directory(text);
    if (!d) {
        check(d.error().starts_with("line "));
        return 0;
    }
    check_directory(*d);
    probe(*d, text);
    const std::string written = format_directory(*d);
    const auto again = parse_directory(written);
    check(again.has_value());
    check(again->domain_count() == d->domain_count() && again->user_count() == d->user_count() &&
          again->alias_count() == d->alias_count() && again->mta_count() == d->mta_count());
    check(format_directory(*again) == written);
    return 0;
}
