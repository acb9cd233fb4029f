// fuzz_ldap_entry: an LDAP entry (as the server sends it) mapped to a directory record,
// then a model of such entries built into a directory and written to and read back from
// the state file's text; and the state file parser on the raw input. Input: lines
// "attribute: value" (an empty line starts the next entry). Promises checked: no crash;
// a record's kind matches its object class; the model builds a directory whose counts
// add up (used + skipped = entries); parse_state(serialize()) gives the same text back;
// a damaged state text is refused without changing the model.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <xproxy/ldap/ldap_entry.hpp>
#include <xproxy/ldap/ldap_model.hpp>

using namespace xproxy;

namespace {
void check(bool ok) {
    if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    {
        LdapModel raw;
        (void)raw.upsert(std::string(16, 'k'), "dn", LdapSchema{},
                         {{"objectClass", {"xproxyDomain"}}, {"xproxyDomainName", {"keep.example"}}});
        if (!raw.parse_state(text)) check(raw.size() == 1);
    }
    LdapSchema schema;
    LdapModel model;
    LdapAttributes attrs;
    int n = 0;
    auto flush = [&] {
        if (attrs.empty()) return;
        std::string uuid(16, '\0');
        uuid[0] = static_cast<char>(n);
        uuid[1] = static_cast<char>(n >> 8);
        const auto r = parse_ldap_entry(schema, attrs);
        if (r && r->kind == LdapKind::user) check(!r->name.empty() && r->name.find('@') != std::string::npos);
        (void)model.upsert(uuid, "entry" + std::to_string(n), schema, attrs);
        attrs.clear();
        ++n;
    };
    std::size_t pos = 0;
    while (pos <= text.size() && n < 64) {
        const std::size_t nl = text.find('\n', pos);
        const std::string_view line = text.substr(pos,
                                                  nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        if (line.empty()) {
            flush();
            continue;
        }
        const std::size_t colon = line.find(": ");
        if (colon == std::string_view::npos) continue;
        const std::string name(line.substr(0, colon));
        std::string value(line.substr(colon + 2));
        bool found = false;
        for (auto& [k, v] : attrs)
            if (k == name) {
                v.push_back(value);
                found = true;
            }
        if (!found) attrs.push_back({name, {value}});
    }
    flush();
    LdapModel::Counts c;
    const Directory d = model.build(c, nullptr);
    check(c.domains + c.users + c.mtas + c.skipped == c.entries);
    check(d.domain_count() == c.domains && d.user_count() == c.users && d.mta_count() == c.mtas);
    const std::string saved = model.serialize("fuzz", std::string("cookie"));
    LdapModel again;
    const auto st = again.parse_state(saved);
    check(st.has_value() && st->cookie == "cookie" && again.size() == model.size());
    LdapModel::Counts c2;
    (void)again.build(c2, nullptr);
    check(c2.users == c.users && c2.domains == c.domains && c2.mtas == c.mtas && c2.skipped == c.skipped);
    return 0;
}
