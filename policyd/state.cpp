// state.cpp: turn options into a ready-to-use State, checking every file.
#include "state.hpp"

#include "auth_policy.hpp"

#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/policy/risk_map.hpp>

namespace xproxy::policyd {

std::shared_ptr<const Directory> State::current_directory() const {
    static const auto empty = std::make_shared<const Directory>();
    return directory ? directory->get() : empty;
}

std::shared_ptr<const State> build_state(const Options& o, std::string* error, const State* previous) {
    auto s = std::make_shared<State>();
    s->options = o;
    auto fail = [&](std::string why) -> std::shared_ptr<const State> {
        if (error) *error = std::move(why);
        return nullptr;
    };
    if (auto on = s->config.enable(o.policies); !on) return fail(o.origins.locate("policy", "--policy: " + on.error()));
    auto trusted = CidrSet::parse(o.trusted_upstreams);
    if (!trusted) return fail(o.origins.locate("trusted-upstreams", "--trusted-upstreams: " + trusted.error()));
    s->config.trusted_upstreams = *trusted;
    if (s->config.inject) {
        if (o.keyring_file.empty()) return fail("policy inject needs --keyring");
        auto k = KeyRing::load_file(o.keyring_file);
        if (!k) return fail(k.error());
        s->keys = std::move(*k);
        s->file_paths.push_back(o.keyring_file);
    }
    const bool auth_policy = !o.auth_policy_listen.empty();
    if (auth_policy) {
        auto spec = check_auth_policy_options(o, &s->auth_policy_key);
        if (!spec) return fail(spec.error());
        if (!o.auth_policy_secret_file.empty()) s->file_paths.push_back(o.auth_policy_secret_file);
    }
    if (s->config.vdomains || s->config.deposit || auth_policy) {
        if (o.directory_file.empty())
            return fail("policies vdomains and deposit, and --auth-policy-listen, need --directory");
        if (previous && previous->directory && previous->directory->is_ldap() &&
            previous->directory->same_source(o.directory_file, o.ldap_config)) {
            s->directory = previous->directory;
        } else {
            auto d = DirectoryBackend::open(
                o.directory_file, o.ldap_config, [](LdapLogLevel level, const std::string& line) {
                    log::write(static_cast<log::Level>(level), "event=ldap message=\"" + escape_value(line, 0) + "\"");
                });
            if (!d) return fail(d.error());
            s->directory = std::move(*d);
        }
        s->file_paths.push_back(s->directory->is_ldap() ? o.ldap_config : o.directory_file);
        if (s->file_paths.back().empty()) s->file_paths.pop_back();
    }
    if (s->config.risk) {
        if (o.risk_file.empty()) return fail("policy risk needs --risk-map");
        auto r = load_and_parse(o.risk_file, kConfigFileRules, RiskMap::parse);
        if (!r) return fail(r.error());
        s->config.risk_map = std::move(*r);
        s->file_paths.push_back(o.risk_file);
    }
    return s;
}

}  // namespace xproxy::policyd
