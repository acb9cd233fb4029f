// ldap_directory.hpp: the LDAP directory backend. One thread keeps a DirectoryCache in
// step with an LDAP server by RFC 4533 content synchronisation (refreshAndPersist):
// an initial refresh, then every add, modify, rename and delete as the server sends it
// (doc/directory.md, "LDAP backend").
//
// Promises:
// - The cache is replaced only by whole directories: after the initial refresh is
//   complete, then after each batch of changes (collected for 50 ms after the last one,
//   never held longer than 200 ms). Before the first refresh (or state file) the cache
//   keeps whatever it held (a daemon's "not loaded" directory): never a partial one.
// - A lost connection keeps the last directory in force; reconnects back off from 1 s,
//   doubling up to reconnect_max, and resume from the last cookie. A cookie the server
//   no longer accepts (e-syncRefreshRequired) is dropped for a full refresh.
// - With a state file: start() serves the directory saved there at once, before any
//   connection, and the sync then asks only for the changes since its cookie. The file
//   is written atomically (temporary file, rename, mode 0600), after the refresh and at
//   most every 2 s while changes come. A damaged or foreign state file is logged and
//   ignored (full refresh), never fatal.
// - An entry that cannot be used (bad attribute, duplicate name, user without its
//   domain) is logged once with its DN and skipped; the rest of the directory works.
// - The bind password is read from its file (mode 0640 or tighter, no link) at start()
//   and again at each connection (so a new password needs no restart; when the file is
//   no longer readable after a daemon dropped its privileges, the copy from start() is
//   used). It lives only in SecretBytes (wiped when replaced) and is never logged.
// - stop() returns within about 250 ms once no operation is blocking (a connect or
//   bind waits for at most `timeout` seconds); it is safe to call at any time, twice, or
//   without start().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/secret_bytes.hpp>
#include <xproxy/ldap/ldap_model.hpp>
#include <xproxy/ldap/ldap_settings.hpp>
#include <xproxy/policy/directory.hpp>

namespace xproxy {

enum class LdapLogLevel : std::uint8_t { error, warning, info, debug };
// Lines start with "ldap: "; untrusted bytes in them are escaped.
using LdapLogFn = std::function<void(LdapLogLevel, const std::string&)>;

// The bind password in `path` (mode 0640 or tighter, no trailing newline), or why not.
Expected<SecretBytes> read_bind_password(const std::string& path, FileRefusal* refusal);

class LdapDirectorySync {
public:
    LdapDirectorySync(LdapSettings settings, DirectoryCache& cache, LdapLogFn log);
    ~LdapDirectorySync();
    LdapDirectorySync(const LdapDirectorySync&) = delete;
    LdapDirectorySync& operator=(const LdapDirectorySync&) = delete;

    // Loads the state file (if any) into the cache, then starts the sync thread.
    void start();
    void stop();

    struct Status {
        bool connected = false;   // the refresh is complete and changes are followed
        bool loaded = false;      // the cache holds a directory from this backend
        bool from_state = false;  // ... read from the state file, not yet refreshed
        std::size_t entries = 0, domains = 0, users = 0, mtas = 0, skipped = 0;
        std::int64_t last_change_unix = 0;  // when the cache was last replaced
        std::uint64_t refreshes = 0;        // complete refreshes since start()
        std::uint64_t publishes = 0;        // directories put into the cache
        std::string cookie;                 // escaped
        std::string last_error;
    };
    Status status() const;

    // Waits until a refresh from the server is complete (true) or `timeout` passed.
    bool wait_connected(std::chrono::milliseconds timeout) const;

private:
    struct Session;
    void run();
    std::string session(unsigned& backoff);
    void publish();
    void save_state();
    void load_state();
    bool stopping() const;
    void log(LdapLogLevel level, const std::string& line) const;

    const LdapSettings settings_;
    DirectoryCache& cache_;
    LdapLogFn log_;

    // Sync thread only.
    LdapModel model_;
    std::optional<std::string> cookie_;
    bool state_dirty_ = false;
    std::chrono::steady_clock::time_point last_save_{};

    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    bool stopping_ = false;
    Status status_;
    SecretBytes password_;  // under mu_
    std::thread thread_;
};

}  // namespace xproxy
