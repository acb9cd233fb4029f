// xproxy_commands.cpp: XPROXYFROM, XPROXY, XPROXYTO and the DESTINATIONLEFT reply.
#include "xproxy/xproxy_commands.hpp"

#include <charconv>

#include "xproxy/smtp_attrs.hpp"
#include "xproxy/xtext.hpp"

namespace xproxy::smtp {

namespace {

std::string ip_text(const IpAddress& a) { return a.to_mta_string(); }

bool parse_port(const std::string& s, std::uint16_t& out) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
}

bool parse_bool(const std::string& s, bool& out) {
    std::string l = s;
    for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (l == "true") out = true;
    else if (l == "false") out = false;
    else return false;
    return true;
}

const char* bool_text(bool b) { return b ? "True" : "False"; }

// "[10.0.0.1],[IPv6:2001:db8::1]" -> addresses
bool parse_destinations(std::string_view list, std::vector<IpAddress>& out) {
    std::size_t i = 0;
    while (i < list.size()) {
        if (list[i] != '[') return false;
        auto close = list.find(']', i);
        if (close == std::string_view::npos) return false;
        auto a = IpAddress::parse_mta(list.substr(i + 1, close - i - 1));
        if (!a) return false;
        out.push_back(*a);
        i = close + 1;
        if (i < list.size()) {
            if (list[i] != ',') return false;
            ++i;
            if (i == list.size()) return false;
        }
    }
    return true;
}

std::string destinations_text(const std::vector<IpAddress>& v, std::size_t from, std::size_t to) {
    std::string out;
    for (std::size_t i = from; i < to; ++i) {
        if (i > from) out += ',';
        out += '[' + ip_text(v[i]) + ']';
    }
    return out;
}

const Attribute* need(const Command& c, const char* name, std::string* error) {
    const Attribute* a = c.find(name);
    if (!a || a->status != ValueStatus::value) {
        if (error) *error = std::string("missing ") + name;
        return nullptr;
    }
    return a;
}

std::string opt(const Command& c, const char* name) {
    const Attribute* a = c.find(name);
    return a && a->status == ValueStatus::value ? a->value : "";
}

}  // namespace

std::string encode(const XproxyFrom& c) {
    std::vector<Attribute> a = {{"SID", c.sid, ValueStatus::value},
                                {"IP", ip_text(c.source.addr), ValueStatus::value},
                                {"PORT", std::to_string(c.source.port), ValueStatus::value}};
    if (!c.helo.empty()) a.push_back({"HELO", c.helo, ValueStatus::value});
    if (!c.login.empty()) a.push_back({"LOGIN", c.login, ValueStatus::value});
    if (!c.proto.empty()) a.push_back({"PROTO", c.proto, ValueStatus::value});
    auto lines = pack_commands("XPROXYFROM", a, {"SID", "IP", "PORT", "HELO", "LOGIN", "PROTO"});
    return lines.size() == 1 ? lines[0] : "";
}

std::string encode(const Xproxy& c) {
    std::vector<Attribute> a = {{"SID", c.sid, ValueStatus::value},
                                {"IP", ip_text(c.source.addr), ValueStatus::value},
                                {"PORT", std::to_string(c.source.port), ValueStatus::value},
                                {"DOMAIN", c.domain, ValueStatus::value}};
    if (!c.login.empty()) a.push_back({"LOGIN", c.login, ValueStatus::value});
    auto lines = pack_commands("XPROXY", a, {"SID", "IP", "PORT", "DOMAIN", "LOGIN"});
    return lines.size() == 1 ? lines[0] : "";
}

std::vector<std::string> encode(const XproxyTo& c) {
    std::vector<Attribute> tail = {{"PORT", std::to_string(c.port), ValueStatus::value},
                                   {"FORCEHELO", bool_text(c.force_helo), ValueStatus::value},
                                   {"SHOULDSKIPTLS", bool_text(c.skip_tls), ValueStatus::value},
                                   {"REQUIRETLS", bool_text(c.require_tls), ValueStatus::value},
                                   {"REQUIREOORG", bool_text(c.require_oorg), ValueStatus::value},
                                   {"TLSAUTHLEVEL", c.tls_auth_level, ValueStatus::value},
                                   {"RISK", c.risk, ValueStatus::value},
                                   {"SESSIONID", c.session_id, ValueStatus::value},
                                   {"LAST", "True", ValueStatus::value}};
    std::string tail_text;
    for (const auto& a : tail) tail_text += " " + format_attribute(a);
    const std::size_t room = kMaxCommandLine - 2;  // CRLF
    const std::string head = "XPROXYTO DESTINATIONS=";
    std::vector<std::string> items;
    for (const auto& d : c.destinations) items.push_back(xtext_encode("[" + ip_text(d) + "]"));
    auto width = [&](std::size_t from, std::size_t to) {  // items[from, to) joined by ','
        std::size_t w = 0;
        for (std::size_t k = from; k < to; ++k) w += items[k].size() + (k > from ? 1 : 0);
        return w;
    };
    auto join = [&](std::size_t from, std::size_t to) {
        std::string out;
        for (std::size_t k = from; k < to; ++k) out += (k > from ? "," : "") + items[k];
        return out;
    };
    if (head.size() + tail_text.size() > room) return {};
    // The final command holds the tail and as many of the last destinations as fit.
    std::size_t split = items.size();
    while (split > 0 && head.size() + width(split - 1, items.size()) + tail_text.size() <= room) --split;
    // The others go, in order, into LAST=False commands.
    const std::size_t room_mid = room - head.size() - std::string(" LAST=False").size();
    std::vector<std::string> lines;
    std::size_t i = 0;
    while (i < split) {
        std::size_t j = i;
        while (j < split && width(i, j + 1) <= room_mid) ++j;
        if (j == i) return {};  // a single destination wider than a command
        lines.push_back(head + join(i, j) + " LAST=False\r\n");
        i = j;
    }
    lines.push_back(head + join(split, items.size()) + tail_text + "\r\n");
    if (lines.size() > XproxyToAccumulator::kMaxCommands) return {};
    return lines;
}

std::optional<XproxyFrom> parse_xproxyfrom(std::string_view line, std::string* error) {
    auto cmd = parse_command(line, {"SID", "IP", "PORT", "HELO", "LOGIN", "PROTO"}, error);
    if (!cmd) return std::nullopt;
    if (cmd->verb != "XPROXYFROM") {
        if (error) *error = "not an XPROXYFROM command";
        return std::nullopt;
    }
    XproxyFrom c;
    const Attribute *sid = need(*cmd, "SID", error), *ip = need(*cmd, "IP", error), *port = need(*cmd, "PORT", error);
    if (!sid || !ip || !port) return std::nullopt;
    auto a = IpAddress::parse_mta(ip->value);
    if (!a || !parse_port(port->value, c.source.port)) {
        if (error) *error = "bad IP or PORT";
        return std::nullopt;
    }
    c.sid = sid->value;
    c.source.addr = *a;
    c.helo = opt(*cmd, "HELO");
    c.login = opt(*cmd, "LOGIN");
    c.proto = opt(*cmd, "PROTO");
    return c;
}

std::optional<Xproxy> parse_xproxy(std::string_view line, std::string* error) {
    auto cmd = parse_command(line, {"SID", "IP", "PORT", "DOMAIN", "LOGIN"}, error);
    if (!cmd) return std::nullopt;
    if (cmd->verb != "XPROXY") {
        if (error) *error = "not an XPROXY command";
        return std::nullopt;
    }
    Xproxy c;
    const Attribute *sid = need(*cmd, "SID", error), *ip = need(*cmd, "IP", error), *port = need(*cmd, "PORT", error),
                    *dom = need(*cmd, "DOMAIN", error);
    if (!sid || !ip || !port || !dom) return std::nullopt;
    auto a = IpAddress::parse_mta(ip->value);
    if (!a || !parse_port(port->value, c.source.port)) {
        if (error) *error = "bad IP or PORT";
        return std::nullopt;
    }
    c.sid = sid->value;
    c.source.addr = *a;
    c.domain = dom->value;
    c.login = opt(*cmd, "LOGIN");
    return c;
}

SourceInfo to_source_info(const XproxyFrom& c) {
    SourceInfo si;
    si.client = c.source;
    si.session_id = c.sid;
    si.helo = c.helo;
    si.login = c.login;
    si.protocol = c.proto;
    return si;
}

XproxyFrom xproxyfrom_from(const SourceInfo& info) {
    XproxyFrom c;
    if (info.client) c.source = *info.client;
    c.sid = info.session_id;
    c.helo = info.helo;
    c.login = info.login;
    c.proto = info.protocol;
    return c;
}

void XproxyToAccumulator::reset() { *this = XproxyToAccumulator(); }

XproxyToAccumulator::State XproxyToAccumulator::fail(std::string why) {
    failed_ = true;
    error_ = std::move(why);
    return State::failed;
}

XproxyToAccumulator::State XproxyToAccumulator::add(std::string_view line) {
    if (failed_) return State::failed;
    if (++commands_ > kMaxCommands) return fail("more than 16 XPROXYTO commands");
    std::string err;
    auto cmd = parse_command(line, {"DESTINATIONS", "PORT", "FORCEHELO", "SHOULDSKIPTLS", "REQUIRETLS", "REQUIREOORG",
                                    "TLSAUTHLEVEL", "RISK", "SESSIONID", "LAST"},
                             &err);
    if (!cmd) return fail(err);
    if (cmd->verb != "XPROXYTO") return fail("not an XPROXYTO command");
    bool last = false;
    bool has_last = false;
    for (const auto& a : cmd->attrs) {
        if (a.status != ValueStatus::value) return fail("attribute " + a.name + " must have a value");
        if (a.name == "LAST") {
            if (!parse_bool(a.value, last)) return fail("LAST must be True or False");
            has_last = true;
            continue;
        }
        if (a.name == "DESTINATIONS") {
            if (!a.value.empty() && !parse_destinations(a.value, value_.destinations))
                return fail("DESTINATIONS must be [ip],[ip],...");
            if (value_.destinations.size() > kMaxDestinations) return fail("more than 64 destinations");
            continue;
        }
        for (const auto& s : seen_)
            if (s == a.name) return fail("attribute " + a.name + " repeated");
        seen_.push_back(a.name);
        bool ok = true;
        if (a.name == "PORT") ok = parse_port(a.value, value_.port);
        else if (a.name == "FORCEHELO") ok = parse_bool(a.value, value_.force_helo);
        else if (a.name == "SHOULDSKIPTLS") ok = parse_bool(a.value, value_.skip_tls);
        else if (a.name == "REQUIRETLS") ok = parse_bool(a.value, value_.require_tls);
        else if (a.name == "REQUIREOORG") ok = parse_bool(a.value, value_.require_oorg);
        else if (a.name == "TLSAUTHLEVEL") value_.tls_auth_level = a.value;
        else if (a.name == "RISK") value_.risk = a.value;
        else if (a.name == "SESSIONID") value_.session_id = a.value;
        if (!ok) return fail("bad value for " + a.name);
    }
    if (!has_last) return fail("missing LAST");
    if (!last) return State::need_more;
    if (value_.destinations.empty()) return fail("no DESTINATIONS");
    return State::complete;
}

std::string encode_destination_left(const std::vector<IpAddress>& left, const std::vector<std::string>& options) {
    std::string out = (options.empty() ? "250 " : "250-") + std::string("DESTINATIONLEFT=") +
                      destinations_text(left, 0, left.size()) + "\r\n";
    for (std::size_t i = 0; i < options.size(); ++i) {
        std::string o;
        for (char c : options[i]) o += (c == '\r' || c == '\n') ? ' ' : c;
        out += (i + 1 == options.size() ? "250 " : "250-") + o + "\r\n";
    }
    return out;
}

std::optional<DestinationLeft> parse_destination_left(std::string_view reply, std::string* error) {
    DestinationLeft out;
    bool first = true, ended = false;
    std::size_t pos = 0;
    auto fail = [&](const char* why) -> std::optional<DestinationLeft> {
        if (error) *error = why;
        return std::nullopt;
    };
    while (pos < reply.size()) {
        auto nl = reply.find('\n', pos);
        auto line = reply.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? reply.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        if (ended) return fail("text after the last reply line");
        if (line.size() < 4 || line.substr(0, 3) != "250" || (line[3] != '-' && line[3] != ' '))
            return fail("not a 250 reply line");
        auto text = line.substr(4);
        ended = line[3] == ' ';
        if (ended && text.rfind("- ", 0) == 0) {  // the seed's example spells "250-" as "250 - "
            ended = false;
            text.remove_prefix(2);
        }
        if (first) {
            first = false;
            if (text.rfind("DESTINATIONLEFT=", 0) != 0) return fail("first line is not DESTINATIONLEFT=");
            if (!parse_destinations(text.substr(16), out.left)) return fail("bad DESTINATIONLEFT list");
            continue;
        }
        out.options.emplace_back(text);
    }
    if (first) return fail("empty reply");
    if (!ended) return fail("reply not terminated by a '250 ' line");
    return out;
}

}  // namespace xproxy::smtp
