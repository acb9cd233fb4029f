// handler.hpp: one Postfix policy connection: bytes in, replies out. Parses requests
// (bounded), asks the policy engine, signs the trace header for "inject" answers, and
// logs one line per decision. No sockets here: unit-testable.
#pragma once

#include <memory>
#include <string>

#include "connection_handler.hpp"
#include "state.hpp"
#include <xproxy/wire/policy_protocol.hpp>

namespace xproxy::policyd {

class PolicyHandler : public ConnectionHandler {
public:
    // now: clock for the trace header's t= (tests pass a fixed one).
    PolicyHandler(const StateHolder& states, std::string peer, std::int64_t (*now)());
    FeedResult feed(const char* data, std::size_t size) override;
    void finish(const char* why) override;

    // The action for one request (public for tests).
    std::string decide(const PolicyRequest& r, const State& s);

private:
    const StateHolder& states_;
    std::string peer_;
    std::int64_t (*now_)();
    std::unique_ptr<PolicyRequestParser> parser_;
};

// Registers the decision metrics (else done at the first decision).
void register_decision_metrics();

class PolicyHandlerFactory : public HandlerFactory {
public:
    explicit PolicyHandlerFactory(const StateHolder& states) : states_(states) {}
    std::unique_ptr<ConnectionHandler> make(const std::string& peer) override;

private:
    const StateHolder& states_;
};

}  // namespace xproxy::policyd
