// xclient.cpp: XCLIENT / XFORWARD encoders, parsers and their mapping to SourceInfo.
#include "xproxy/xclient.hpp"

#include <charconv>

namespace xproxy::smtp {

namespace {

// Sent together in the final command: the endpoints (an address and its port belong
// together) and NAME, which like ADDR changes who the server thinks the client is.
const std::set<std::string> kLastGroup = {"NAME", "ADDR", "PORT", "DESTADDR", "DESTPORT"};

std::string addr_text(const IpAddress& a) { return a.is_v4() ? a.to_string() : "IPV6:" + a.to_string(); }

Attribute val(const char* name, std::string v) { return Attribute{name, std::move(v), ValueStatus::value}; }
Attribute unavailable(const char* name) { return Attribute{name, "", ValueStatus::unavailable}; }
Attribute maybe(const char* name, const std::string& v) { return v.empty() ? unavailable(name) : val(name, v); }

std::string smtp_proto(const std::string& protocol) {
    // XCLIENT/XFORWARD PROTO is SMTP or ESMTP; ESMTPS, ESMTPA ... are ESMTP.
    return protocol.rfind("ESMTP", 0) == 0 || protocol.rfind("esmtp", 0) == 0 ? "ESMTP" : "SMTP";
}

std::vector<Attribute> only_advertised(std::vector<Attribute> attrs, const std::set<std::string>& advertised) {
    if (advertised.empty()) return attrs;
    std::vector<Attribute> out;
    for (auto& a : attrs)
        if (advertised.count(a.name)) out.push_back(std::move(a));
    return out;
}

bool parse_port(const std::string& s, std::uint16_t& port) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > 65535 || s.empty() || (s.size() > 1 && s[0] == '0'))
        return false;
    port = static_cast<std::uint16_t>(v);
    return true;
}

}  // namespace

const std::set<std::string>& xclient_attributes() {
    static const std::set<std::string> s = {"NAME", "REVERSE_NAME", "ADDR", "PORT", "PROTO",
                                            "HELO", "LOGIN", "DESTADDR", "DESTPORT"};
    return s;
}

const std::set<std::string>& xforward_attributes() {
    static const std::set<std::string> s = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"};
    return s;
}

std::vector<std::string> encode_xclient(const SourceInfo& info, const std::set<std::string>& advertised) {
    if (!info.client) return {};
    std::vector<Attribute> attrs;
    attrs.push_back(val("PROTO", smtp_proto(info.protocol)));
    attrs.push_back(maybe("HELO", info.helo));
    if (!info.login.empty()) attrs.push_back(val("LOGIN", info.login));
    if (info.server) {
        attrs.push_back(val("DESTADDR", addr_text(info.server->addr)));
        attrs.push_back(val("DESTPORT", std::to_string(info.server->port)));
    }
    attrs.push_back(maybe("NAME", info.ptr_name));
    attrs.push_back(val("ADDR", addr_text(info.client->addr)));
    attrs.push_back(val("PORT", std::to_string(info.client->port)));
    return pack_commands("XCLIENT", only_advertised(std::move(attrs), advertised), kLastGroup);
}

std::vector<std::string> encode_xforward(const SourceInfo& info, const std::set<std::string>& advertised,
                                         std::string_view source) {
    if (!info.client) return {};
    std::vector<Attribute> attrs;
    attrs.push_back(val("PROTO", smtp_proto(info.protocol)));
    attrs.push_back(maybe("HELO", info.helo));
    if (!info.session_id.empty()) attrs.push_back(val("IDENT", info.session_id));
    attrs.push_back(val("SOURCE", std::string(source)));
    attrs.push_back(maybe("NAME", info.ptr_name));
    attrs.push_back(val("ADDR", addr_text(info.client->addr)));
    attrs.push_back(val("PORT", std::to_string(info.client->port)));
    return pack_commands("XFORWARD", only_advertised(std::move(attrs), advertised), kLastGroup);
}

std::optional<Command> parse_xclient(std::string_view line, std::string* error) {
    auto cmd = parse_command(line, xclient_attributes(), error);
    if (cmd && cmd->verb != "XCLIENT") {
        if (error) *error = "not an XCLIENT command";
        return std::nullopt;
    }
    if (cmd && cmd->attrs.empty()) {
        if (error) *error = "XCLIENT without attributes";
        return std::nullopt;
    }
    return cmd;
}

std::optional<Command> parse_xforward(std::string_view line, std::string* error) {
    auto cmd = parse_command(line, xforward_attributes(), error);
    if (cmd && cmd->verb != "XFORWARD") {
        if (error) *error = "not an XFORWARD command";
        return std::nullopt;
    }
    if (cmd && cmd->attrs.empty()) {
        if (error) *error = "XFORWARD without attributes";
        return std::nullopt;
    }
    return cmd;
}

bool apply_command(const Command& cmd, SourceInfo& info, std::string* error) {
    auto fail = [&](const char* why) {
        if (error) *error = why;
        return false;
    };
    // Validate first so that a bad command changes nothing.
    std::optional<IpAddress> addr, dest;
    std::optional<std::uint16_t> port, dport;
    for (const auto& a : cmd.attrs) {
        if (a.status != ValueStatus::value) continue;
        if (a.name == "ADDR" && !(addr = IpAddress::parse_mta(a.value))) return fail("ADDR is not an IP address");
        if (a.name == "DESTADDR" && !(dest = IpAddress::parse_mta(a.value))) return fail("DESTADDR is not an IP address");
        std::uint16_t p = 0;
        if (a.name == "PORT") {
            if (!parse_port(a.value, p)) return fail("PORT is not a port number");
            port = p;
        }
        if (a.name == "DESTPORT") {
            if (!parse_port(a.value, p)) return fail("DESTPORT is not a port number");
            dport = p;
        }
    }
    for (const auto& a : cmd.attrs) {
        bool known = a.status == ValueStatus::value;
        if (a.name == "ADDR") {
            if (known) info.client = Endpoint{*addr, info.client ? info.client->port : std::uint16_t{0}};
            else info.client.reset();
        } else if (a.name == "DESTADDR") {
            if (known) info.server = Endpoint{*dest, info.server ? info.server->port : std::uint16_t{0}};
            else info.server.reset();
        } else if (a.name == "NAME") {
            info.ptr_name = known ? a.value : "";
        } else if (a.name == "HELO") {
            info.helo = known ? a.value : "";
        } else if (a.name == "PROTO") {
            info.protocol = known ? a.value : "";
        } else if (a.name == "LOGIN") {
            info.login = known ? a.value : "";
        } else if (a.name == "IDENT") {
            info.session_id = known ? a.value : "";
        }
    }
    // Ports after addresses, whatever their order on the line.
    if (port && info.client) info.client->port = *port;
    if (dport && info.server) info.server->port = *dport;
    return true;
}

}  // namespace xproxy::smtp
