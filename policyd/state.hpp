// state.hpp: everything a policy decision reads, built once from the options and the
// files they name, then shared read-only. A reload builds a new State and swaps it in
// atomically; connections in flight keep the one they started a request with.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "options.hpp"
#include <xproxy/base/keyring.hpp>
#include <xproxy/policy/directory.hpp>
#include <xproxy/policy/policy_engine.hpp>

namespace xproxy::policyd {

struct State {
    Options options;
    PolicyConfig config;
    std::shared_ptr<const Directory> directory;
    KeyRing keys;
    std::vector<std::string> file_paths;  // watched for changes
};

// Builds a State; nullptr with *error naming the option or file at fault.
std::shared_ptr<const State> build_state(const Options& o, std::string* error);

class StateHolder {
public:
    std::shared_ptr<const State> get() const { return state_.load(std::memory_order_acquire); }
    void set(std::shared_ptr<const State> s) { state_.store(std::move(s), std::memory_order_release); }

private:
    std::atomic<std::shared_ptr<const State>> state_;
};

}  // namespace xproxy::policyd
