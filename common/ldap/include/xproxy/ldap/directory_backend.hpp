// directory_backend.hpp: the directory a daemon's --directory names, in one place for
// xproxy-policyd, xproxy-milter and xproxyd: a directory file (loaded at open(), again
// at reload()) or an LDAP URL with its --ldap-config file (kept in step by an
// LdapDirectorySync thread from start() on). Readers take get() for one request.
//
// Promises:
// - open() never connects; its errors are start-up errors written for the administrator
//   (the file and line of a bad directory file, the line of a bad settings file, an
//   unusable bind password file).
// - With LDAP, get() answers the cache's "not loaded" directory (a default-constructed
//   Directory) until the state file or the first refresh filled it; never a partial one.
// - check() is --check-config: the file's counts, or for LDAP a connection, a full refresh
//   (without reading or writing the state file) and its status; a failure when the
//   server cannot be read within the settings' timeout.
#pragma once

#include <memory>
#include <string>

#include <xproxy/base/result.hpp>
#include <xproxy/ldap/ldap_directory.hpp>
#include <xproxy/policy/directory.hpp>

namespace xproxy {

class DirectoryBackend {
public:
    // spec: the --directory value (a path or an LDAP URL); ldap_config: the --ldap-config
    // path (LDAP only; may be empty). `log` receives the LDAP sync's lines.
    static Expected<std::unique_ptr<DirectoryBackend>> open(const std::string& spec, const std::string& ldap_config,
                                                            LdapLogFn log);
    // A directory held in memory (a unit test's, built by the caller): get() answers it,
    // reload() keeps it.
    static std::unique_ptr<DirectoryBackend> fixed(std::shared_ptr<const Directory> directory);
    ~DirectoryBackend();
    DirectoryBackend(const DirectoryBackend&) = delete;
    DirectoryBackend& operator=(const DirectoryBackend&) = delete;

    bool is_ldap() const { return sync_ != nullptr; }
    // True when `spec` and the settings file's text are those this backend was opened with.
    bool same_source(const std::string& spec, const std::string& ldap_config) const;

    // LDAP: loads the state file and starts the sync thread. File: nothing.
    void start();
    void stop();
    std::shared_ptr<const Directory> get() const { return cache_.get(); }
    // File: reads it again (a broken file keeps the previous directory; the error says
    // why). LDAP: nothing to do (changes arrive by themselves).
    Expected<void> reload();
    // --check-config (see above): one line for the administrator.
    Expected<std::string> check();
    // For a log line: "FILE" or the URL; with LDAP, the sync's status.
    std::string describe() const;
    const std::string& spec() const { return spec_; }

private:
    DirectoryBackend() = default;
    std::string spec_;
    std::string ldap_config_path_, ldap_config_text_;
    std::unique_ptr<LdapSettings> settings_;
    DirectoryCache cache_;
    LdapLogFn log_;
    std::unique_ptr<LdapDirectorySync> sync_;
};

}  // namespace xproxy
