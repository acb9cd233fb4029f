// xproxy_commands.cpp: XPROXYFROM, XPROXY, XPROXYTO (encoding, splitting, the bounded
// accumulator) and the DESTINATIONLEFT reply.
#include <xproxy/wire/xproxy_commands.hpp>

#include <algorithm>
#include <set>

#include <xproxy/base/text.hpp>
#include <xproxy/wire/xtext.hpp>

namespace xproxy::smtp {

namespace {

const std::set<std::string> kFromNames = {"SID", "IP", "PORT", "HELO", "LOGIN", "PROTO", "LAST"};
const std::set<std::string> kXproxyNames = {"SID", "IP", "PORT", "DOMAIN", "LOGIN", "LAST"};
const std::set<std::string> kToNames = {"DESTINATIONS", "FORCEHELO",    "SHOULDSKIPTLS", "PORT",      "REQUIRETLS",
                                        "REQUIREOORG",  "TLSAUTHLEVEL", "RISK",          "SESSIONID", "LAST"};
constexpr std::string_view kLeftKey = "DESTINATIONLEFT=";

bool has_controls(std::string_view s) {
    return s.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos;
}

std::optional<bool> parse_bool(std::string_view s) {
    if (iequals(s, "true")) return true;
    if (iequals(s, "false")) return false;
    return std::nullopt;
}

const char* bool_text(bool b) { return b ? "True" : "False"; }

std::string ip_text(const IpAddress& a) { return a.normalized().to_mta_string(); }
std::string dest_text(const IpAddress& a) { return "[" + ip_text(a) + "]"; }

Attribute val(const char* name, std::string v) { return Attribute{name, std::move(v), ValueStatus::value}; }

Encoded failure(std::string why) {
    Encoded e;
    e.error = std::move(why);
    return e;
}

// The default limits of the receiving side bound what we send.
Encoded within_limits(Encoded e) {
    if (!e) return e;
    XproxyLimits lim;
    std::size_t bytes = 0;
    for (const auto& l : e.lines) bytes += l.size();
    if (e.lines.size() > lim.max_lines || bytes > lim.max_bytes) return failure("command too long for one sequence");
    return e;
}

// "[10.0.0.1],[IPv6:2001:db8::1]" (brackets optional) -> addresses. "" -> none.
bool parse_destinations(std::string_view list, std::vector<IpAddress>& out, std::string& error) {
    if (list.empty()) return true;
    std::size_t pos = 0;
    while (true) {
        auto comma = list.find(',', pos);
        auto entry = list.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        auto ip = IpAddress::parse_mta(entry);
        if (!ip) {
            std::string shown;
            for (char c : entry.substr(0, 64)) shown += (c >= 32 && c < 127) ? c : '?';
            error = entry.empty() ? "empty entry in an address list" : "'" + shown + "' is not an IP address";
            return false;
        }
        out.push_back(*ip);
        if (comma == std::string_view::npos) return true;
        pos = comma + 1;
    }
}

const Attribute* find(const std::vector<Attribute>& attrs, std::string_view name) {
    for (const auto& a : attrs)
        if (a.name == name) return &a;
    return nullptr;
}

std::string opt_text(const std::vector<Attribute>& attrs, std::string_view name) {
    const Attribute* a = find(attrs, name);
    return a ? a->value : std::string();
}

// SID, IP and PORT shared by XPROXYFROM and XPROXY.
bool read_source(const std::string& verb, const std::vector<Attribute>& attrs, std::string& sid, Endpoint& ep,
                 std::string& error) {
    const Attribute* s = find(attrs, "SID");
    const Attribute* ip = find(attrs, "IP");
    const Attribute* port = find(attrs, "PORT");
    if (!s || !ip || !port) {
        error = verb + " without " + (!s ? "SID" : !ip ? "IP" : "PORT");
        return false;
    }
    auto addr = IpAddress::parse_mta(ip->value);
    if (!addr) {
        error = "IP is not an IP address";
        return false;
    }
    auto p = parse_port(port->value);
    if (!p) {
        error = "PORT is not a port number (0-65535)";
        return false;
    }
    sid = s->value;
    ep = Endpoint{*addr, *p};
    return true;
}

Parsed<XproxyCommand> build(const std::string& verb, const std::vector<Attribute>& attrs, const XproxyLimits& lim) {
    std::string error;
    if (verb == "XPROXYFROM") {
        XproxyFrom c;
        if (!read_source(verb, attrs, c.sid, c.source, error)) return Failure{error};
        c.helo = opt_text(attrs, "HELO");
        c.login = opt_text(attrs, "LOGIN");
        c.proto = opt_text(attrs, "PROTO");
        return XproxyCommand{std::move(c)};
    }
    if (verb == "XPROXY") {
        Xproxy c;
        if (!read_source(verb, attrs, c.sid, c.source, error)) return Failure{error};
        const Attribute* d = find(attrs, "DOMAIN");
        if (!d) return Failure{"XPROXY without DOMAIN"};
        c.domain = d->value;
        c.login = opt_text(attrs, "LOGIN");
        return XproxyCommand{std::move(c)};
    }
    XproxyTo c;
    const Attribute* d = find(attrs, "DESTINATIONS");
    if (!d) return Failure{"XPROXYTO without DESTINATIONS"};
    if (!parse_destinations(d->value, c.destinations, error)) return Failure{"DESTINATIONS: " + error};
    if (c.destinations.size() > lim.max_destinations)
        return Failure{"more than " + std::to_string(lim.max_destinations) + " DESTINATIONS"};
    if (const Attribute* p = find(attrs, "PORT")) {
        auto port = parse_port(p->value);
        if (!port) return Failure{"PORT is not a port number (0-65535)"};
        c.port = *port;
    }
    struct Flag {
        const char* name;
        bool* out;
    };
    for (Flag f : {Flag{"FORCEHELO", &c.force_helo}, Flag{"SHOULDSKIPTLS", &c.should_skip_tls},
                   Flag{"REQUIRETLS", &c.require_tls}, Flag{"REQUIREOORG", &c.require_oorg}}) {
        if (const Attribute* a = find(attrs, f.name)) {
            auto b = parse_bool(a->value);
            if (!b) return Failure{std::string(f.name) + " is not True or False"};
            *f.out = *b;
        }
    }
    c.tls_auth_level = opt_text(attrs, "TLSAUTHLEVEL");
    c.risk = opt_text(attrs, "RISK");
    c.session_id = opt_text(attrs, "SESSIONID");
    return XproxyCommand{std::move(c)};
}

}  // namespace

// ---- encoders ----

Encoded encode(const XproxyFrom& c) {
    if (c.sid.empty()) return failure("SID is empty");
    std::vector<Attribute> a = {val("SID", c.sid), val("IP", ip_text(c.source.addr)),
                                val("PORT", std::to_string(c.source.port))};
    if (!c.helo.empty()) a.push_back(val("HELO", c.helo));
    if (!c.login.empty()) a.push_back(val("LOGIN", c.login));
    if (!c.proto.empty()) a.push_back(val("PROTO", c.proto));
    return within_limits(
        pack_commands("XPROXYFROM", a, PackRules{{"SID", "IP", "PORT"}, "LAST=False", "LAST=True", 0}));
}

Encoded encode(const Xproxy& c) {
    if (c.sid.empty()) return failure("SID is empty");
    if (c.domain.empty()) return failure("DOMAIN is empty");
    std::vector<Attribute> a = {val("SID", c.sid), val("IP", ip_text(c.source.addr)),
                                val("PORT", std::to_string(c.source.port)), val("DOMAIN", c.domain)};
    if (!c.login.empty()) a.push_back(val("LOGIN", c.login));
    return within_limits(
        pack_commands("XPROXY", a, PackRules{{"SID", "IP", "PORT", "DOMAIN"}, "LAST=False", "LAST=True", 0}));
}

// The reference order (doc/wire-formats.md): DESTINATIONS FORCEHELO SHOULDSKIPTLS PORT REQUIRETLS REQUIREOORG
// TLSAUTHLEVEL RISK SESSIONID LAST. Destinations that do not fit in the final command go,
// in order, into LAST=False commands before it; the final one takes the tail of the list.
Encoded encode(const XproxyTo& c) {
    if (c.destinations.empty()) return failure("no DESTINATIONS");
    if (c.destinations.size() > XproxyLimits{}.max_destinations) return failure("too many DESTINATIONS");
    std::vector<Attribute> tail = {val("FORCEHELO", bool_text(c.force_helo)),
                                   val("SHOULDSKIPTLS", bool_text(c.should_skip_tls)),
                                   val("PORT", std::to_string(c.port)), val("REQUIRETLS", bool_text(c.require_tls)),
                                   val("REQUIREOORG", bool_text(c.require_oorg))};
    if (!c.tls_auth_level.empty()) tail.push_back(val("TLSAUTHLEVEL", c.tls_auth_level));
    if (!c.risk.empty()) tail.push_back(val("RISK", c.risk));
    if (!c.session_id.empty()) tail.push_back(val("SESSIONID", c.session_id));
    tail.push_back(val("LAST", "True"));
    std::string tail_text;
    for (const auto& a : tail) {
        if (has_controls(a.value)) return failure("attribute '" + a.name + "' contains NUL, CR or LF");
        tail_text += " " + format_attribute(a);
    }

    const std::size_t room = kMaxCommandLine - 2;  // CRLF
    const std::string verb = "XPROXYTO";
    const std::string head = verb + " DESTINATIONS=";
    const std::string more = " LAST=False";
    std::vector<std::string> items;  // "[ip]" (xtext-safe as it is)
    for (const auto& d : c.destinations) items.push_back(xtext_encode(dest_text(d)));
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
    if (verb.size() + tail_text.size() > room) return failure("XPROXYTO attributes do not fit in one command");
    std::size_t split = items.size();  // the final command holds items[split, n)
    while (split > 0 && head.size() + width(split - 1, items.size()) + tail_text.size() <= room) --split;
    Encoded out;
    std::size_t i = 0;
    while (i < split) {
        std::size_t j = i;
        while (j < split && head.size() + width(i, j + 1) + more.size() <= room) ++j;
        if (j == i) return failure("a destination does not fit in one command");
        out.lines.push_back(head + join(i, j) + more + "\r\n");
        i = j;
    }
    if (split < items.size()) out.lines.push_back(head + join(split, items.size()) + tail_text + "\r\n");
    else out.lines.push_back(verb + tail_text + "\r\n");
    return within_limits(std::move(out));
}

Encoded encode(const XproxyCommand& c) {
    return std::visit([](const auto& v) { return encode(v); }, c);
}

// ---- accumulator ----

void XproxyAccumulator::reset() {
    verb_.clear();
    merged_.clear();
    lines_ = bytes_ = 0;
    finished_ = false;
    command_ = XproxyCommand{};
    error_.clear();
}

DecodeResult XproxyAccumulator::fail(std::string_view reason, std::string detail) {
    finished_ = true;
    error_ = std::move(detail);
    return DecodeResult::bad(reason);
}

DecodeResult XproxyAccumulator::add(std::string_view line) {
    if (finished_) reset();
    std::size_t body = line.size();
    if (line.size() >= 2 && line.substr(line.size() - 2) == "\r\n") body -= 2;
    else if (!line.empty() && line.back() == '\n') body -= 1;
    ++lines_;
    bytes_ += body + 2;
    if (lines_ > limits_.max_lines)
        return fail("too many XPROXY commands in one sequence",
                    "more than " + std::to_string(limits_.max_lines) + " commands in one sequence");
    if (bytes_ > limits_.max_bytes)
        return fail("XPROXY command sequence too long",
                    "sequence longer than " + std::to_string(limits_.max_bytes) + " bytes");
    auto cmd = parse_command(line);
    if (!cmd) return fail("malformed XPROXY command line", cmd.error());
    const std::set<std::string>* names = cmd->verb == "XPROXYFROM" ? &kFromNames
                                         : cmd->verb == "XPROXY"   ? &kXproxyNames
                                         : cmd->verb == "XPROXYTO" ? &kToNames
                                                                   : nullptr;
    if (!names) return fail("not an XPROXY command", "not an XPROXYFROM, XPROXY or XPROXYTO command");
    if (verb_.empty()) verb_ = cmd->verb;
    else if (verb_ != cmd->verb)
        return fail("verb changed within a sequence", cmd->verb + " in a " + verb_ + " sequence");
    bool last = true;
    for (auto& a : cmd->attrs) {
        if (!names->count(a.name)) return fail("invalid XPROXY command", "unknown attribute '" + a.name + "'");
        if (a.name == "LAST") {
            auto b = parse_bool(a.value);
            if (!b) return fail("invalid XPROXY command", "LAST is not True or False");
            last = *b;
            continue;
        }
        auto it = std::find_if(merged_.begin(), merged_.end(), [&](const Attribute& m) { return m.name == a.name; });
        if (it == merged_.end()) merged_.push_back(std::move(a));
        else if (a.name == "DESTINATIONS") it->value += "," + a.value;  // lists continue
        else return fail("invalid XPROXY command", "attribute '" + a.name + "' repeated in the sequence");
    }
    if (!last) return DecodeResult::more();
    auto built = build(verb_, merged_, limits_);
    if (!built) return fail("invalid XPROXY command", built.error());
    command_ = std::move(*built);
    finished_ = true;
    return DecodeResult::done(line.size());
}

Parsed<XproxyCommand> parse_xproxy_command(std::string_view line) {
    XproxyAccumulator acc;
    auto r = acc.add(line);
    if (r.complete()) return acc.command();
    if (r.need_more()) return Failure{"LAST=False: the command continues on another line"};
    return Failure{acc.error()};
}

// ---- SourceInfo ----

SourceInfo to_source_info(const XproxyFrom& c) {
    SourceInfo si;
    si.client = c.source;
    si.session_id = c.sid;
    si.helo = c.helo;
    si.login = c.login;
    si.protocol = c.proto;
    return si;
}

SourceInfo to_source_info(const Xproxy& c) {
    SourceInfo si;
    si.client = c.source;
    si.session_id = c.sid;
    si.helo = c.domain;
    si.login = c.login;
    return si;
}

Parsed<XproxyFrom> xproxyfrom_from(const SourceInfo& info) {
    if (!info.client) return Failure{"no client address"};
    if (info.session_id.empty()) return Failure{"no session id"};
    return XproxyFrom{info.session_id, *info.client, info.helo, info.login, info.protocol};
}

// ---- DESTINATIONLEFT ----

Encoded encode(const DestinationLeft& d) {
    const std::size_t room = kMaxReplyLine - 2 - 4;  // CRLF, "250-"
    std::vector<std::string> texts;
    std::string cur(kLeftKey);
    for (const auto& ip : d.left) {
        std::string item = dest_text(ip);
        bool first = cur.size() == kLeftKey.size();
        if (!first && cur.size() + 1 + item.size() > room) {
            texts.push_back(cur);
            cur = std::string(kLeftKey);
            first = true;
        }
        cur += (first ? "" : ",") + item;
    }
    texts.push_back(cur);
    for (const auto& o : d.options) {
        if (o.empty()) return failure("empty EHLO option");
        if (has_controls(o)) return failure("EHLO option contains NUL, CR or LF");
        if (o.size() > room) return failure("EHLO option longer than a reply line");
        if (istarts_with(o, kLeftKey)) return failure("EHLO option starts with DESTINATIONLEFT=");
        texts.push_back(o);
    }
    if (texts.size() > kMaxReplyLines) return failure("more than 64 reply lines");
    Encoded out;
    for (std::size_t i = 0; i < texts.size(); ++i)
        out.lines.push_back((i + 1 == texts.size() ? "250 " : "250-") + texts[i] + "\r\n");
    return out;
}

DecodeResult decode_destination_left(std::string_view buf, DestinationLeft& out) {
    DestinationLeft d;
    std::size_t pos = 0, lines = 0;
    bool in_list = true;
    while (true) {
        std::string_view rest = buf.substr(pos);
        // What is there of the line's start must already be right.
        for (std::size_t k = 0; k < rest.size() && k < 4; ++k) {
            if (k < 3 && rest[k] != "250"[k]) return DecodeResult::bad("reply code is not 250");
            if (k == 3 && rest[k] != '-' && rest[k] != ' ') return DecodeResult::bad("malformed reply line");
        }
        if (lines == 0 && rest.size() > 4) {
            auto have = rest.substr(4, kLeftKey.size());
            if (!istarts_with(kLeftKey, have)) return DecodeResult::bad("first reply line is not DESTINATIONLEFT=");
        }
        auto nl = rest.find('\n');
        if (nl == std::string_view::npos) {
            if (rest.size() >= kMaxReplyLine) return DecodeResult::bad("reply line longer than 512 bytes");
            return DecodeResult::more();
        }
        if (nl + 1 > kMaxReplyLine) return DecodeResult::bad("reply line longer than 512 bytes");
        if (nl == 0 || rest[nl - 1] != '\r') return DecodeResult::bad("reply line not ended by CRLF");
        std::string_view line = rest.substr(0, nl - 1);
        if (line.size() < 4) return DecodeResult::bad("malformed reply line");
        std::string_view text = line.substr(4);
        if (text.find_first_of(std::string_view("\0\r", 2)) != std::string_view::npos)
            return DecodeResult::bad("NUL or CR inside a reply line");
        if (++lines > kMaxReplyLines) return DecodeResult::bad("more than 64 reply lines");
        if (in_list && istarts_with(text, kLeftKey)) {
            std::string error;
            if (!parse_destinations(text.substr(kLeftKey.size()), d.left, error))
                return DecodeResult::bad("bad address in DESTINATIONLEFT");
        } else {
            in_list = false;
            d.options.emplace_back(text);
        }
        pos += nl + 1;
        if (line[3] == ' ') {
            out = std::move(d);
            return DecodeResult::done(pos);
        }
    }
}

}  // namespace xproxy::smtp
