// xclient.cpp: XCLIENT / XFORWARD models: line parsing, encoding with the split rule of
// xclient.hpp, and their mapping to and from SourceInfo.
#include <xproxy/wire/xclient.hpp>

#include <xproxy/base/text.hpp>
#include <xproxy/wire/xtext.hpp>

namespace xproxy::smtp {

namespace {

// The final command's preferences (see xclient.hpp for the reasons).
const std::vector<std::string> kXclientFinal = {"ADDR",  "NAME", "LOGIN",    "HELO",
                                                "PROTO", "PORT", "DESTADDR", "DESTPORT"};
const std::vector<std::string> kXforwardFinal = {"ADDR", "PORT", "NAME"};

std::string addr_text(const IpAddress& a) {
    IpAddress n = a.normalized();
    return n.is_v4() ? n.to_string() : "IPV6:" + n.to_string();
}

// Per-attribute readers shared by both commands; `error` gets the 501-style reason.
TextField read_text(const Attribute& a, bool tempunavail_special) {
    auto sp = special_value(a.value);
    if (sp == ValueStatus::unavailable) return TextField::unavailable();
    if (sp == ValueStatus::tempunavail && tempunavail_special) return TextField::tempunavail();
    return TextField::of(a.value);
}

std::optional<AddrField> read_addr(const Attribute& a, std::string& error) {
    if (special_value(a.value) == ValueStatus::unavailable) return AddrField::unavailable();
    auto ip = IpAddress::parse_mta(a.value);
    if (!ip) {
        error = a.name + " is not an IP address";
        return std::nullopt;
    }
    return AddrField::of(*ip);
}

std::optional<PortField> read_port(const Attribute& a, std::string& error) {
    if (special_value(a.value) == ValueStatus::unavailable) return PortField::unavailable();
    auto p = parse_port(a.value);
    if (!p) {
        error = a.name + " is not a port number (0-65535)";
        return std::nullopt;
    }
    return PortField::of(*p);
}

Attribute text_attr(const char* name, const TextField& f) { return Attribute{name, f.value, f.status}; }
Attribute addr_attr(const char* name, const AddrField& f) {
    return Attribute{name, f.known() ? addr_text(f.value) : "", f.status};
}
Attribute port_attr(const char* name, const PortField& f) {
    return Attribute{name, f.known() ? std::to_string(f.value) : "", f.status};
}

// What a parser would not read back: a known value spelled like a special value, or
// [TEMPUNAVAIL] where it is not special (anywhere in XFORWARD; in XCLIENT, but for NAME
// and REVERSE_NAME).
std::string check_specials(const std::vector<Attribute>& attrs, bool xclient) {
    for (const auto& a : attrs) {
        bool temp_ok = xclient && (a.name == "NAME" || a.name == "REVERSE_NAME");
        if (a.status == ValueStatus::tempunavail && !temp_ok) return a.name + " cannot be [TEMPUNAVAIL]";
        if (a.status != ValueStatus::value) continue;
        auto sp = special_value(a.value);
        if (sp == ValueStatus::unavailable || (sp == ValueStatus::tempunavail && temp_ok))
            return "value of " + a.name + " reads as a special value";
    }
    return {};
}

// A SourceInfo string fit to be sent as an XCLIENT/XFORWARD text value.
bool usable(const std::string& s, bool name_like) {
    if (s.empty() || s.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) return false;
    if (xtext_encode(s).size() > kMaxXclientValue) return false;
    auto sp = special_value(s);
    return !(sp == ValueStatus::unavailable || (sp == ValueStatus::tempunavail && name_like));
}

TextField text_or_unavailable(const std::string& s, bool name_like) {
    return usable(s, name_like) ? TextField::of(s) : TextField::unavailable();
}

bool wanted(const Advertised& adv, const char* name) { return !adv || adv->count(name); }

template <class T>
void take(std::optional<T>& into, const std::optional<T>& later) {
    if (later) into = later;
}

void apply_endpoints(const std::optional<AddrField>& addr, const std::optional<PortField>& port,
                     std::optional<Endpoint>& ep) {
    if (addr) {
        if (addr->known()) ep = Endpoint{addr->value, ep ? ep->port : std::uint16_t{0}};
        else ep.reset();
    }
    if (port && ep) ep->port = port->known() ? port->value : std::uint16_t{0};
}

void apply_text(const std::optional<TextField>& f, std::string& out) {
    if (f) out = f->known() ? f->value : std::string();
}

}  // namespace

const std::set<std::string>& xclient_attributes() {
    static const std::set<std::string> s = {"NAME", "REVERSE_NAME", "ADDR",     "PORT",    "PROTO",
                                            "HELO", "LOGIN",        "DESTADDR", "DESTPORT"};
    return s;
}

const std::set<std::string>& xforward_attributes() {
    static const std::set<std::string> s = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"};
    return s;
}

Parsed<Xclient> parse_xclient(std::string_view line) {
    auto cmd = parse_command(line, LineRules{&xclient_attributes(), kMaxXclientValue});
    if (!cmd) return Failure{cmd.error()};
    if (cmd->verb != "XCLIENT") return Failure{"not an XCLIENT command"};
    if (cmd->attrs.empty()) return Failure{"XCLIENT without attributes"};
    Xclient x;
    std::string error;
    for (const auto& a : cmd->attrs) {
        if (a.name == "NAME") x.name = read_text(a, true);
        else if (a.name == "REVERSE_NAME") x.reverse_name = read_text(a, true);
        else if (a.name == "HELO") x.helo = read_text(a, false);
        else if (a.name == "LOGIN") x.login = read_text(a, false);
        else if (a.name == "PROTO") {
            if (!iequals(a.value, "SMTP") && !iequals(a.value, "ESMTP")) return Failure{"PROTO is not SMTP or ESMTP"};
            x.proto = iequals(a.value, "SMTP") ? "SMTP" : "ESMTP";
        } else if (a.name == "ADDR") {
            if (!(x.addr = read_addr(a, error))) return Failure{error};
        } else if (a.name == "DESTADDR") {
            if (!(x.destaddr = read_addr(a, error))) return Failure{error};
        } else if (a.name == "PORT") {
            if (!(x.port = read_port(a, error))) return Failure{error};
        } else if (a.name == "DESTPORT") {
            if (!(x.destport = read_port(a, error))) return Failure{error};
        }
    }
    return x;
}

Parsed<Xforward> parse_xforward(std::string_view line) {
    auto cmd = parse_command(line, LineRules{&xforward_attributes(), kMaxXclientValue});
    if (!cmd) return Failure{cmd.error()};
    if (cmd->verb != "XFORWARD") return Failure{"not an XFORWARD command"};
    if (cmd->attrs.empty()) return Failure{"XFORWARD without attributes"};
    Xforward x;
    std::string error;
    for (const auto& a : cmd->attrs) {
        if (a.name == "NAME") x.name = read_text(a, false);
        else if (a.name == "HELO") x.helo = read_text(a, false);
        else if (a.name == "IDENT") x.ident = read_text(a, false);
        else if (a.name == "PROTO") {
            x.proto = read_text(a, false);
            if (x.proto->value.size() > kMaxXforwardProto) return Failure{"PROTO longer than 64 bytes"};
        } else if (a.name == "SOURCE") {
            if (special_value(a.value) == ValueStatus::unavailable) x.source = Field<XforwardSource>::unavailable();
            else if (iequals(a.value, "LOCAL")) x.source = Field<XforwardSource>::of(XforwardSource::local);
            else if (iequals(a.value, "REMOTE")) x.source = Field<XforwardSource>::of(XforwardSource::remote);
            else return Failure{"SOURCE is not LOCAL or REMOTE"};
        } else if (a.name == "ADDR") {
            if (!(x.addr = read_addr(a, error))) return Failure{error};
        } else if (a.name == "PORT") {
            if (!(x.port = read_port(a, error))) return Failure{error};
        }
    }
    return x;
}

std::vector<Attribute> to_attributes(const Xclient& x) {
    std::vector<Attribute> a;
    if (x.proto) a.push_back(Attribute{"PROTO", *x.proto, ValueStatus::value});
    if (x.helo) a.push_back(text_attr("HELO", *x.helo));
    if (x.login) a.push_back(text_attr("LOGIN", *x.login));
    if (x.destaddr) a.push_back(addr_attr("DESTADDR", *x.destaddr));
    if (x.destport) a.push_back(port_attr("DESTPORT", *x.destport));
    if (x.reverse_name) a.push_back(text_attr("REVERSE_NAME", *x.reverse_name));
    if (x.name) a.push_back(text_attr("NAME", *x.name));
    if (x.addr) a.push_back(addr_attr("ADDR", *x.addr));
    if (x.port) a.push_back(port_attr("PORT", *x.port));
    return a;
}

std::vector<Attribute> to_attributes(const Xforward& x) {
    std::vector<Attribute> a;
    if (x.proto) a.push_back(text_attr("PROTO", *x.proto));
    if (x.helo) a.push_back(text_attr("HELO", *x.helo));
    if (x.ident) a.push_back(text_attr("IDENT", *x.ident));
    if (x.source)
        a.push_back(Attribute{"SOURCE",
                              x.source->known() ? (x.source->value == XforwardSource::local ? "LOCAL" : "REMOTE") : "",
                              x.source->status});
    if (x.name) a.push_back(text_attr("NAME", *x.name));
    if (x.addr) a.push_back(addr_attr("ADDR", *x.addr));
    if (x.port) a.push_back(port_attr("PORT", *x.port));
    return a;
}

Encoded encode(const Xclient& x) {
    Encoded bad;
    if (x.proto && *x.proto != "SMTP" && *x.proto != "ESMTP") {
        bad.error = "PROTO is not SMTP or ESMTP";
        return bad;
    }
    auto attrs = to_attributes(x);
    if (attrs.empty()) bad.error = "no XCLIENT attribute to send";
    else bad.error = check_specials(attrs, true);
    if (!bad.error.empty()) return bad;
    return pack_commands("XCLIENT", attrs, PackRules{kXclientFinal, "", "", kMaxXclientValue});
}

Encoded encode(const Xforward& x) {
    Encoded bad;
    if (x.proto && x.proto->value.size() > kMaxXforwardProto) {
        bad.error = "PROTO longer than 64 bytes";
        return bad;
    }
    auto attrs = to_attributes(x);
    if (attrs.empty()) bad.error = "no XFORWARD attribute to send";
    else bad.error = check_specials(attrs, false);
    if (!bad.error.empty()) return bad;
    return pack_commands("XFORWARD", attrs, PackRules{kXforwardFinal, "", "", kMaxXclientValue});
}

Xclient xclient_from(const SourceInfo& info, const Advertised& adv) {
    Xclient x;
    if (wanted(adv, "PROTO")) {
        if (info.protocol.size() >= 5 && iequals(std::string_view(info.protocol).substr(0, 5), "ESMTP"))
            x.proto = "ESMTP";
        else if (iequals(info.protocol, "SMTP")) x.proto = "SMTP";
    }
    if (wanted(adv, "HELO")) x.helo = text_or_unavailable(info.helo, false);
    if (wanted(adv, "LOGIN") && usable(info.login, false)) x.login = TextField::of(info.login);
    if (info.server && wanted(adv, "DESTADDR")) x.destaddr = AddrField::of(info.server->addr.normalized());
    if (info.server && wanted(adv, "DESTPORT")) x.destport = PortField::of(info.server->port);
    if (wanted(adv, "NAME")) x.name = text_or_unavailable(info.ptr_name, true);
    if (wanted(adv, "ADDR"))
        x.addr = info.client ? AddrField::of(info.client->addr.normalized()) : AddrField::unavailable();
    if (wanted(adv, "PORT")) x.port = info.client ? PortField::of(info.client->port) : PortField::unavailable();
    return x;
}

Xforward xforward_from(const SourceInfo& info, const Advertised& adv, XforwardSource source) {
    Xforward x;
    if (wanted(adv, "PROTO"))
        x.proto = info.protocol.size() <= kMaxXforwardProto ? text_or_unavailable(info.protocol, false)
                                                            : TextField::unavailable();
    if (wanted(adv, "HELO")) x.helo = text_or_unavailable(info.helo, false);
    if (wanted(adv, "IDENT") && usable(info.session_id, false)) x.ident = TextField::of(info.session_id);
    if (wanted(adv, "SOURCE")) x.source = Field<XforwardSource>::of(source);
    if (wanted(adv, "NAME")) x.name = text_or_unavailable(info.ptr_name, false);
    if (wanted(adv, "ADDR"))
        x.addr = info.client ? AddrField::of(info.client->addr.normalized()) : AddrField::unavailable();
    if (wanted(adv, "PORT")) x.port = info.client ? PortField::of(info.client->port) : PortField::unavailable();
    return x;
}

void merge(Xclient& into, const Xclient& later) {
    take(into.name, later.name);
    take(into.reverse_name, later.reverse_name);
    take(into.addr, later.addr);
    take(into.port, later.port);
    take(into.proto, later.proto);
    take(into.helo, later.helo);
    take(into.login, later.login);
    take(into.destaddr, later.destaddr);
    take(into.destport, later.destport);
}

void merge(Xforward& into, const Xforward& later) {
    take(into.name, later.name);
    take(into.addr, later.addr);
    take(into.port, later.port);
    take(into.proto, later.proto);
    take(into.helo, later.helo);
    take(into.ident, later.ident);
    take(into.source, later.source);
}

void apply(const Xclient& x, SourceInfo& info) {
    apply_endpoints(x.addr, x.port, info.client);
    apply_endpoints(x.destaddr, x.destport, info.server);
    apply_text(x.name, info.ptr_name);
    apply_text(x.helo, info.helo);
    apply_text(x.login, info.login);
    if (x.proto) info.protocol = *x.proto;
}

void apply(const Xforward& x, SourceInfo& info) {
    apply_endpoints(x.addr, x.port, info.client);
    apply_text(x.name, info.ptr_name);
    apply_text(x.helo, info.helo);
    apply_text(x.proto, info.protocol);
    apply_text(x.ident, info.session_id);
}

}  // namespace xproxy::smtp
