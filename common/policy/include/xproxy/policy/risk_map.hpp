// risk_map.hpp: risk classes for risk routing (doc/design.md, "Risk routing").
//
// A risk class names a Postfix transport (`FILTER transport:destination`); mail whose
// client network or sender domain falls in a class leaves through that transport, e.g. a
// transport bound to another source address (smtp_bind_address), so that mail of poor
// reputation does not spoil the addresses good mail leaves from.
//
// The risk file (doc/directory.md, packaging/examples/risk.example), one entry a line:
//
//   # classes, least risky first
//   class bulk transport=smtp-bulk:
//   class high transport=smtp-high:
//   network 203.0.113.0/24 class=high
//   sender-domain newsletter.example class=bulk
//
// Matching: the longest network prefix containing the client address; the sender
// domain or its nearest listed parent (a.b.example matches b.example, then example),
// compared without regard to ASCII case. When both match different classes, the class
// declared later in the file wins (declare classes from the least to the most risky).
// A class without transport= is a valid match that routes nothing (e.g. "known good").
//
// Errors name the line ("line N: ..."); nothing throws on bad input. Lookups are
// const and thread-safe; they do not allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>

namespace xproxy {

inline constexpr std::size_t kMaxRiskLine = 1024;

struct RiskClass {
    std::string name;
    std::string transport;  // "smtp-high:" or "smtp-high:[relay.example]"; may be empty
};

struct RiskMatch {
    enum class Source : std::uint8_t { network, sender_domain };
    const RiskClass* risk_class = nullptr;
    Source source = Source::network;
    std::string_view matched;  // "203.0.113.0/24" or "newsletter.example"; points into the map
};

class RiskMap {
public:
    // Parses the text of a risk file ("line N: ..." errors; read the file with
    // load_and_parse(), xproxy/base/file_loader.hpp, for "PATH:N: ..." errors).
    static Expected<RiskMap> parse(std::string_view text);

    // Building by hand (tests, other front ends). Each returns false with a message.
    bool add_class(std::string_view name, std::string_view transport, std::string* error);
    bool add_network(std::string_view cidr, std::string_view class_name, std::string* error);
    bool add_sender_domain(std::string_view domain, std::string_view class_name, std::string* error);

    // The class for this client and envelope sender (local@domain; empty = null sender).
    std::optional<RiskMatch> classify(const std::optional<IpAddress>& client, std::string_view sender) const;

    bool empty() const { return networks_.empty() && domains_.empty(); }
    const std::vector<RiskClass>& classes() const { return classes_; }
    std::size_t network_count() const { return networks_.size(); }
    std::size_t domain_count() const { return domains_.size(); }

private:
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct Network {
        Cidr cidr;
        std::string text;
        std::uint16_t cls;
    };
    std::optional<std::uint16_t> class_index(std::string_view name) const;

    std::vector<RiskClass> classes_;                                                 // index = rank: later is riskier
    std::vector<Network> networks_;                                                  // longest prefix first
    std::unordered_map<std::string, std::uint16_t, Hash, std::equal_to<>> domains_;  // lower case
};

}  // namespace xproxy
