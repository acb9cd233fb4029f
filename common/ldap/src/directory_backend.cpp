// directory_backend.cpp: the directory named by --directory (directory_backend.hpp).
#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/ldap/directory_backend.hpp>
#include <xproxy/policy/directory_file.hpp>

namespace xproxy {

namespace {

Expected<std::shared_ptr<const Directory>> load_file(const std::string& path) {
    auto d = load_and_parse(path, kConfigFileRules, parse_directory);
    if (!d) return Failure{d.error()};
    return std::make_shared<const Directory>(std::move(*d));
}

std::string counts(const Directory& d) {
    return std::to_string(d.domain_count()) + " domains, " + std::to_string(d.user_count()) + " users, " +
           std::to_string(d.mta_count()) + " home MTAs";
}

}  // namespace

Expected<std::unique_ptr<DirectoryBackend>> DirectoryBackend::open(const std::string& spec,
                                                                   const std::string& ldap_config, LdapLogFn log) {
    std::unique_ptr<DirectoryBackend> b(new DirectoryBackend());
    b->spec_ = spec;
    b->log_ = std::move(log);
    if (!is_ldap_url(spec)) {
        if (!ldap_config.empty())
            return Failure{"--ldap-config is for a --directory ldap://, ldaps:// or ldapi:// URL"};
        auto d = load_file(spec);
        if (!d) return Failure{d.error()};
        b->cache_.replace(std::move(*d));
        return b;
    }
    b->ldap_config_path_ = ldap_config;
    if (!ldap_config.empty()) {
        auto text = load_text_file(ldap_config, kConfigFileRules);
        if (!text) return Failure{"--ldap-config: " + text.error()};
        b->ldap_config_text_ = std::move(*text);
    }
    auto settings = parse_ldap_settings(spec, b->ldap_config_text_);
    if (!settings) {
        const std::string& e = settings.error();
        return Failure{e.starts_with("line ") ? ldap_config + ":" + e.substr(5) : e};
    }
    if (!settings->bind_dn.empty())
        if (auto pw = read_bind_password(settings->bind_pw_file, nullptr); !pw)
            return Failure{"bind_pw_file: " + pw.error()};
    b->settings_ = std::make_unique<LdapSettings>(*settings);
    b->sync_ = std::make_unique<LdapDirectorySync>(*settings, b->cache_, b->log_);
    return b;
}

std::unique_ptr<DirectoryBackend> DirectoryBackend::fixed(std::shared_ptr<const Directory> directory) {
    std::unique_ptr<DirectoryBackend> b(new DirectoryBackend());
    b->cache_.replace(std::move(directory));
    return b;
}

DirectoryBackend::~DirectoryBackend() { stop(); }

bool DirectoryBackend::same_source(const std::string& spec, const std::string& ldap_config) const {
    if (spec != spec_ || ldap_config != ldap_config_path_) return false;
    if (!is_ldap() || ldap_config.empty()) return true;
    auto text = load_text_file(ldap_config, kConfigFileRules);
    return text && *text == ldap_config_text_;
}

void DirectoryBackend::start() {
    if (sync_) sync_->start();
}

void DirectoryBackend::stop() {
    if (sync_) sync_->stop();
}

Expected<void> DirectoryBackend::reload() {
    if (is_ldap() || spec_.empty()) return {};  // changes arrive by themselves; or fixed()
    auto d = load_file(spec_);
    if (!d) return Failure{d.error()};
    cache_.replace(std::move(*d));
    return {};
}

Expected<std::string> DirectoryBackend::check() {
    if (!is_ldap()) return "directory " + escape(spec_, 200) + " (" + counts(*get()) + ")";
    LdapSettings s = *settings_;
    s.state_file.clear();  // the running daemon's file: neither read nor written here
    DirectoryCache cache;
    LdapDirectorySync probe(s, cache, log_);
    probe.start();
    const bool ok = probe.wait_connected(std::chrono::seconds(3 * s.timeout));
    probe.stop();
    const auto st = probe.status();
    if (!ok)
        return Failure{"directory " + s.display() + ": no refresh within " + std::to_string(3 * s.timeout) +
                       " s: " + (st.last_error.empty() ? std::string("no answer") : st.last_error)};
    return "directory " + s.display() + " (connected, " + std::to_string(st.entries) +
           " entries: " + std::to_string(st.domains) + " domains, " + std::to_string(st.users) + " users, " +
           std::to_string(st.mtas) + " home MTAs, " + std::to_string(st.skipped) + " skipped; cookie " +
           (st.cookie.empty() ? std::string("none") : st.cookie) + ")";
}

std::string DirectoryBackend::describe() const {
    if (!is_ldap()) return escape(spec_, 200);
    const auto st = sync_->status();
    return settings_->display() + (st.connected ? " connected" : " disconnected") + (st.loaded ? "" : " not loaded") +
           " entries=" + std::to_string(st.entries) + " skipped=" + std::to_string(st.skipped) +
           " last_change=" + std::to_string(st.last_change_unix) +
           (st.last_error.empty() ? "" : " last_error=\"" + escape_value(st.last_error, 200) + "\"");
}

}  // namespace xproxy
