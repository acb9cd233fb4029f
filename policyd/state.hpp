// state.hpp: everything a policy decision reads, built once from the options and the
// files they name, then shared read-only. A reload builds a new State and swaps it in
// under a lock; connections in flight keep the one they started a request with.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "options.hpp"
#include <xproxy/base/keyring.hpp>
#include <xproxy/base/secret_bytes.hpp>
#include <xproxy/ldap/directory_backend.hpp>
#include <xproxy/policy/directory.hpp>
#include <xproxy/policy/policy_engine.hpp>

namespace xproxy::policyd {

struct State {
    Options options;
    PolicyConfig config;
    // The --directory backend (a file read for this State, or an LDAP sync shared by the
    // States of one URL and settings); null when no policy needs a directory.
    std::shared_ptr<DirectoryBackend> directory;
    KeyRing keys;
    SecretBytes auth_policy_key;          // empty: no --auth-policy-secret-file
    std::vector<std::string> file_paths;  // watched for changes

    // The directory for one request: the backend's current one, or an empty one.
    std::shared_ptr<const Directory> current_directory() const;
};

// Builds a State; nullptr with *error naming the option or file at fault. An LDAP
// directory of `previous` with the same URL and settings is kept (its sync goes on); a
// new one is opened but not started (start it before serving).
std::shared_ptr<const State> build_state(const Options& o, std::string* error, const State* previous = nullptr);

// The running State. A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12's atomic
// shared_ptr releases its internal lock with a relaxed store after a load, so a load and
// the next store are not ordered (ThreadSanitizer reports it under tests/e2e/
// test_policyd_load.py's reloads). The lock is held for a reference-count increment.
class StateHolder {
public:
    std::shared_ptr<const State> get() const {
        std::lock_guard<std::mutex> lock(mu_);
        return state_;
    }
    void set(std::shared_ptr<const State> s) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            state_.swap(s);
        }
        // s, the previous State, is released here, outside the lock.
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const State> state_;
};

}  // namespace xproxy::policyd
