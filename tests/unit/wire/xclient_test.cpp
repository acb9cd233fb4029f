// xclient_test: the attribute-command line parser and packer, XCLIENT and XFORWARD:
// parse tables with the reason of each rejection, the READMEs' examples, EHLO keyword
// lines, exact encodings, SourceInfo round trips (IPv4, IPv6, unavailable), splitting at
// the 512-byte boundary into 2 and 3 commands with the final-command rule, encoder errors.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/xclient.hpp>

using namespace xproxy;
using namespace xproxy::smtp;

namespace {

SourceInfo sample(const char* ip = "192.0.2.66") {
    SourceInfo si;
    si.client = Endpoint{*IpAddress::parse(ip), 40123};
    si.server = Endpoint{*IpAddress::parse("198.51.100.1"), 25};
    si.helo = "client.example.org";
    si.ptr_name = "mail.example.org";
    si.protocol = "ESMTPS";
    si.login = "alice@example.org";
    si.session_id = "4XyZ1";
    return si;
}

// Every line parses as XCLIENT; the commands merged in order.
Xclient parse_all(const std::vector<std::string>& lines) {
    Xclient merged;
    for (const auto& l : lines) {
        auto x = parse_xclient(l);
        EXPECT_TRUE(x) << x.error() << " in " << l;
        if (x) merge(merged, *x);
    }
    return merged;
}

Xforward parse_all_forward(const std::vector<std::string>& lines) {
    Xforward merged;
    for (const auto& l : lines) {
        auto x = parse_xforward(l);
        EXPECT_TRUE(x) << x.error() << " in " << l;
        if (x) merge(merged, *x);
    }
    return merged;
}

void expect_well_formed(const std::vector<std::string>& lines, const char* verb) {
    for (const auto& l : lines) {
        EXPECT_LE(l.size(), kMaxCommandLine) << l;
        EXPECT_EQ(l.rfind(std::string(verb) + " ", 0), 0u) << l;
        ASSERT_GE(l.size(), 2u);
        EXPECT_EQ(l.substr(l.size() - 2), "\r\n") << l;
        EXPECT_EQ(l.find_first_of("\r\n"), l.size() - 2) << l;
    }
}

bool has(const std::string& line, const std::string& attr) { return line.find(" " + attr + "=") != std::string::npos; }

}  // namespace

// ---- the generic line parser ----

TEST(AttrLine, ParseTable) {
    struct Row {
        std::string line;
        bool want_ok;
        const char* want_verb;
        std::size_t want_attrs;
        const char* want_error;
    };
    const Row rows[] = {
        {"XCLIENT ADDR=192.0.2.1 PORT=25\r\n", true, "XCLIENT", 2, ""},
        {"xclient addr=192.0.2.1\n", true, "XCLIENT", 1, ""},
        {"XCLIENT  ADDR=1.2.3.4\tPORT=1  ", true, "XCLIENT", 2, ""},  // runs of SP/HTAB
        {"XCLIENT", true, "XCLIENT", 0, ""},
        {"", false, "", 0, "missing command verb"},
        {" XCLIENT ADDR=1.2.3.4", false, "", 0, "missing command verb"},
        {"X-CLIENT A=1", false, "", 0, "malformed command verb 'X-CLIENT'"},
        {"XCLIENT ADDR", false, "", 0, "malformed attribute 'ADDR' (NAME=value expected)"},
        {"XCLIENT =x", false, "", 0, "malformed attribute '=x' (NAME=value expected)"},
        {"XCLIENT A.B=x", false, "", 0, "malformed attribute name 'A.B'"},
        {"XCLIENT NAME=", false, "", 0, "attribute 'NAME' has an empty value"},
        {"XCLIENT HELO=a+4", false, "", 0, "bad xtext in attribute 'HELO': truncated +HH escape"},
        {"XCLIENT HELO=a+0Db", false, "", 0, "bad xtext in attribute 'HELO': NUL, CR or LF in value"},
        {"XCLIENT HELO=a+0db", false, "", 0, "bad xtext in attribute 'HELO': lower-case hex digit in +HH"},
        {"XCLIENT HELO=a=b", false, "", 0, "bad xtext in attribute 'HELO': raw '=' (must be +3D)"},
        {"XCLIENT ADDR=1 addr=2", false, "", 0, "duplicate attribute 'ADDR'"},
        {std::string("XCLIENT A=1\0", 12), false, "", 0, "NUL, CR or LF inside the command line"},
        {"XCLIENT A=1\rB=2", false, "", 0, "NUL, CR or LF inside the command line"},
        {"XCLIENT A=" + std::string(500, 'a'), true, "XCLIENT", 1, ""},  // 510 bytes + CRLF
        {"XCLIENT A=" + std::string(501, 'a'), false, "", 0, "command line longer than 512 bytes"},
    };
    for (const auto& r : rows) {
        auto c = parse_command(r.line);
        EXPECT_EQ(c.has_value(), r.want_ok) << r.line << ": " << c.error();
        if (c) {
            EXPECT_EQ(c->verb, r.want_verb);
            EXPECT_EQ(c->attrs.size(), r.want_attrs);
        } else {
            EXPECT_EQ(c.error(), r.want_error) << r.line;
        }
    }
    std::set<std::string> names = {"ADDR"};
    EXPECT_EQ(parse_command("X ADDR=1 FOO=2", LineRules{&names, 0}).error(), "unknown attribute 'FOO'");
    EXPECT_EQ(parse_command("X ADDR=123456", LineRules{&names, 5}).error(),
              "value of attribute 'ADDR' longer than 5 bytes");
}

TEST(AttrLine, SpecialValuesAnyCase) {
    EXPECT_EQ(special_value("[UNAVAILABLE]"), ValueStatus::unavailable);
    EXPECT_EQ(special_value("[unavailable]"), ValueStatus::unavailable);
    EXPECT_EQ(special_value("[TempUnavail]"), ValueStatus::tempunavail);
    EXPECT_EQ(special_value("UNAVAILABLE"), std::nullopt);
    EXPECT_EQ(special_value("[UNAVAILABLE] "), std::nullopt);
}

TEST(AttrLine, Ports) {
    EXPECT_EQ(parse_port("0"), 0);
    EXPECT_EQ(parse_port("65535"), 65535);
    for (const char* bad : {"", "65536", "025", "-1", "+1", "1a", "123456", " 1"}) EXPECT_FALSE(parse_port(bad)) << bad;
}

TEST(AttrLine, EhloKeyword) {
    EXPECT_EQ(parse_ehlo_keyword("250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN"),
              (std::set<std::string>{"NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"}));
    EXPECT_EQ(parse_ehlo_keyword("XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n"),
              (std::set<std::string>{"NAME", "ADDR", "PROTO", "HELO", "SOURCE", "PORT", "IDENT"}));
    EXPECT_EQ(parse_ehlo_keyword("name addr"), (std::set<std::string>{"NAME", "ADDR"}));
    EXPECT_TRUE(parse_ehlo_keyword("250 XCLIENT").empty());

    // Postfix 3.7's EHLO reply, as the e2e tests see it.
    const std::string ehlo =
        "250-pf.test.invalid\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT\r\n"
        "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n250-8BITMIME\r\n250 CHUNKING\r\n";
    auto xc = find_ehlo_keyword(ehlo, "xclient");
    ASSERT_TRUE(xc);
    EXPECT_EQ(xc->size(), 9u);
    EXPECT_TRUE(xc->count("REVERSE_NAME"));
    auto xf = find_ehlo_keyword(ehlo, "XFORWARD");
    ASSERT_TRUE(xf);
    EXPECT_EQ(xf->size(), 7u);
    EXPECT_FALSE(find_ehlo_keyword(ehlo, "XPROXYTO"));
    EXPECT_FALSE(find_ehlo_keyword(ehlo, "XCLIEN"));
    EXPECT_EQ(find_ehlo_keyword("250 XCLIENT", "XCLIENT"), std::set<std::string>{});
}

// ---- XCLIENT parsing ----

TEST(Xclient, ParseTable) {
    struct Row {
        const char* line;
        bool want_ok;
        const char* want_error;
    };
    const Row rows[] = {
        {"XCLIENT ADDR=192.0.2.1 PORT=25\r\n", true, ""},
        {"XCLIENT NAME=spike.porcupine.org ADDR=168.100.189.2", true, ""},  // XCLIENT_README example
        {"XCLIENT NAME=[UNAVAILABLE] HELO=[UNAVAILABLE] LOGIN=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE]",
         true, ""},
        {"XCLIENT NAME=[TEMPUNAVAIL] REVERSE_NAME=[tempunavail]", true, ""},
        {"XCLIENT ADDR=IPV6:2001:db8::1 DESTADDR=ipv6:::1 DESTPORT=587", true, ""},
        {"XCLIENT PROTO=esmtp", true, ""},
        {"XCLIENT", false, "XCLIENT without attributes"},
        {"XFORWARD ADDR=1.2.3.4", false, "not an XCLIENT command"},
        {"XCLIENT FOO=bar", false, "unknown attribute 'FOO'"},
        {"XCLIENT IDENT=x", false, "unknown attribute 'IDENT'"},
        {"XCLIENT ADDR=192.0.2.1 ADDR=192.0.2.2", false, "duplicate attribute 'ADDR'"},
        {"XCLIENT ADDR=999.1.1.1", false, "ADDR is not an IP address"},
        {"XCLIENT ADDR=host.example", false, "ADDR is not an IP address"},
        {"XCLIENT ADDR=[TEMPUNAVAIL]", false, "ADDR is not an IP address"},
        {"XCLIENT DESTADDR=IPV6:1.2.3.4", false, "DESTADDR is not an IP address"},
        {"XCLIENT PORT=65536", false, "PORT is not a port number (0-65535)"},
        {"XCLIENT PORT=025", false, "PORT is not a port number (0-65535)"},
        {"XCLIENT DESTPORT=[TEMPUNAVAIL]", false, "DESTPORT is not a port number (0-65535)"},
        {"XCLIENT PROTO=LMTP", false, "PROTO is not SMTP or ESMTP"},
        {"XCLIENT PROTO=[UNAVAILABLE]", false, "PROTO is not SMTP or ESMTP"},
    };
    for (const auto& r : rows) {
        auto x = parse_xclient(r.line);
        EXPECT_EQ(x.has_value(), r.want_ok) << r.line << ": " << x.error();
        if (!r.want_ok) {
            EXPECT_EQ(x.error(), r.want_error) << r.line;
        }
    }
    // Postfix's limit: a value of at most 255 bytes (xtext form).
    EXPECT_TRUE(parse_xclient("XCLIENT HELO=" + std::string(255, 'h')));
    EXPECT_EQ(parse_xclient("XCLIENT HELO=" + std::string(256, 'h')).error(),
              "value of attribute 'HELO' longer than 255 bytes");
}

TEST(Xclient, ParsedValues) {
    auto x = parse_xclient(
        "xclient name=[unavailable] reverse_name=[TempUnavail] helo=[TEMPUNAVAIL] "
        "addr=Ipv6:2001:DB8::1 port=1 proto=esmtp login=a+20b destaddr=[UNAVAILABLE]");
    ASSERT_TRUE(x) << x.error();
    EXPECT_EQ(x->name, TextField::unavailable());
    EXPECT_EQ(x->reverse_name, TextField::tempunavail());
    EXPECT_EQ(x->helo, TextField::of("[TEMPUNAVAIL]"));  // not special for HELO, as in Postfix
    EXPECT_EQ(x->addr, AddrField::of(*IpAddress::parse("2001:db8::1")));
    EXPECT_EQ(x->port, PortField::of(1));
    EXPECT_EQ(x->proto, "ESMTP");
    EXPECT_EQ(x->login, TextField::of("a b"));
    EXPECT_EQ(x->destaddr, AddrField::unavailable());
    EXPECT_FALSE(x->destport);
}

// ---- XCLIENT encoding ----

TEST(Xclient, EncodeOneCommand) {
    auto e = encode_xclient(sample());
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 1u);
    EXPECT_EQ(e.lines[0],
              "XCLIENT PROTO=ESMTP HELO=client.example.org LOGIN=alice@example.org DESTADDR=198.51.100.1 "
              "DESTPORT=25 NAME=mail.example.org ADDR=192.0.2.66 PORT=40123\r\n");
}

TEST(Xclient, OnlyAdvertisedAttributes) {
    SourceInfo si = sample("2001:db8::66");
    si.helo.clear();
    si.ptr_name.clear();
    auto e = encode_xclient(si, parse_ehlo_keyword("XCLIENT NAME ADDR PORT HELO"));
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 1u);
    EXPECT_EQ(e.lines[0], "XCLIENT HELO=[UNAVAILABLE] NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::66 PORT=40123\r\n");
    // smtp-sink advertises "XCLIENT NAME HELO".
    e = encode_xclient(sample(), std::set<std::string>{"NAME", "HELO"});
    ASSERT_EQ(e.lines.size(), 1u);
    EXPECT_EQ(e.lines[0], "XCLIENT HELO=client.example.org NAME=mail.example.org\r\n");
    // A bare keyword: nothing to send.
    EXPECT_EQ(encode_xclient(sample(), std::set<std::string>{}).error, "no XCLIENT attribute to send");
}

TEST(Xclient, SourceInfoRoundTrips) {
    struct Row {
        const char* name;
        SourceInfo in;
        const char* want_proto;
    };
    SourceInfo v6 = sample("2001:db8::66");
    v6.server = Endpoint{*IpAddress::parse("2001:db8::25"), 25};
    v6.helo = "weird helo with spaces+equals=";
    SourceInfo none;  // nothing known: ADDR, PORT, NAME and HELO go as [UNAVAILABLE]
    SourceInfo smtp = sample();
    smtp.protocol = "SMTP";
    const Row rows[] = {
        {"IPv4", sample(), "ESMTP"}, {"IPv6", v6, "ESMTP"}, {"unavailable", none, ""}, {"SMTP", smtp, "SMTP"}};
    for (const auto& r : rows) {
        auto e = encode_xclient(r.in);
        ASSERT_TRUE(e) << r.name << ": " << e.error;
        expect_well_formed(e.lines, "XCLIENT");
        Xclient x = parse_all(e.lines);
        EXPECT_EQ(x, xclient_from(r.in)) << r.name;
        SourceInfo got = sample("203.0.113.1");  // whatever was there before is replaced
        got.server.reset();
        apply(x, got);
        EXPECT_EQ(got.client, r.in.client) << r.name;
        EXPECT_EQ(got.server, r.in.server) << r.name;
        EXPECT_EQ(got.helo, r.in.helo) << r.name;
        EXPECT_EQ(got.ptr_name, r.in.ptr_name) << r.name;
        EXPECT_EQ(got.login, r.in.login.empty() ? "alice@example.org" : r.in.login) << r.name;  // absent: kept
        EXPECT_EQ(got.protocol, *r.want_proto ? r.want_proto : "ESMTPS") << r.name;
    }
}

TEST(Xclient, ExactlyAt512Bytes) {
    // Grow LOGIN until the single command is exactly 512 bytes with CRLF.
    SourceInfo si = sample();
    si.helo = std::string(255, 'h');
    si.login = "l";
    std::size_t base = encode_xclient(si).lines.at(0).size();
    si.login = std::string(1 + kMaxCommandLine - base, 'l');
    ASSERT_LE(si.login.size(), kMaxXclientValue);
    auto e = encode_xclient(si);
    ASSERT_EQ(e.lines.size(), 1u);
    EXPECT_EQ(e.lines[0].size(), 512u);
    // One byte more: two commands, ADDR in the last.
    si.login += "l";
    e = encode_xclient(si);
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 2u);
    expect_well_formed(e.lines, "XCLIENT");
    EXPECT_TRUE(has(e.lines[1], "ADDR"));
    EXPECT_FALSE(has(e.lines[0], "ADDR"));
    EXPECT_EQ(parse_all(e.lines), xclient_from(si));
}

TEST(Xclient, TwoCommandsKeepResetAttributesLast) {
    // Postfix forgets HELO, PROTO and LOGIN unless the last XCLIENT carries them: with room
    // for them, they are in the final command with NAME and ADDR; the ports and the
    // destination, which persist, go first.
    SourceInfo si = sample();
    si.ptr_name = std::string(251, 'n') + ".org";
    si.helo = std::string(100, 'h');
    si.login = std::string(100, 'l');
    auto e = encode_xclient(si);
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 2u);
    expect_well_formed(e.lines, "XCLIENT");
    for (const char* a : {"ADDR", "NAME", "LOGIN", "HELO", "PROTO"}) EXPECT_TRUE(has(e.lines[1], a)) << a;
    for (const char* a : {"PORT", "DESTADDR", "DESTPORT"}) EXPECT_TRUE(has(e.lines[0], a)) << a;
    EXPECT_EQ(parse_all(e.lines), xclient_from(si));
}

TEST(Xclient, LoginBeforeHeloWhenOnlyOneFits) {
    // HELO 248 and LOGIN 250 bytes cannot both join ADDR in the final command. LOGIN wins:
    // losing it costs the client its relay permission, losing HELO only a log detail.
    SourceInfo si = sample();
    si.ptr_name.clear();
    si.server.reset();
    si.helo = std::string(240, 'h') + ".example";
    si.login = std::string(250, 'l');
    auto e = encode_xclient(si);
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 2u);
    EXPECT_EQ(e.lines[0], "XCLIENT HELO=" + si.helo + "\r\n");
    EXPECT_EQ(e.lines[1],
              "XCLIENT PROTO=ESMTP LOGIN=" + si.login + " NAME=[UNAVAILABLE] ADDR=192.0.2.66 PORT=40123\r\n");
}

TEST(Xclient, ThreeCommands) {
    // NAME, HELO and LOGIN of 255 bytes each: no two of them fit in one command.
    SourceInfo si = sample();
    si.ptr_name = std::string(251, 'n') + ".org";
    si.helo = std::string(255, 'h');
    si.login = std::string(255, 'l');
    auto e = encode_xclient(si);
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 3u);
    expect_well_formed(e.lines, "XCLIENT");
    for (const char* a : {"ADDR", "NAME", "PROTO", "PORT", "DESTADDR", "DESTPORT"})
        EXPECT_TRUE(has(e.lines[2], a)) << a;
    EXPECT_TRUE(has(e.lines[0], "HELO"));
    EXPECT_TRUE(has(e.lines[1], "LOGIN"));
    for (int i = 0; i < 2; ++i) EXPECT_FALSE(has(e.lines[static_cast<std::size_t>(i)], "ADDR"));
    Xclient x = parse_all(e.lines);
    EXPECT_EQ(x, xclient_from(si));
    SourceInfo got;
    apply(x, got);
    EXPECT_EQ(got.helo, si.helo);
    EXPECT_EQ(got.login, si.login);
    EXPECT_EQ(got.ptr_name, si.ptr_name);
    EXPECT_EQ(got.client, si.client);
}

TEST(Xclient, UnusableValuesFromSourceInfo) {
    SourceInfo si = sample();
    si.helo = std::string(300, 'h');  // longer than Postfix accepts
    si.ptr_name = "[TempUnavail]";    // would read back as a special value
    si.login = "bad\r\nlogin";        // could never be sent
    Xclient x = xclient_from(si);
    EXPECT_EQ(x.helo, TextField::unavailable());
    EXPECT_EQ(x.name, TextField::unavailable());
    EXPECT_FALSE(x.login);
    si.helo = std::string(85, '+');  // 255 bytes once encoded: still fits
    EXPECT_EQ(xclient_from(si).helo, TextField::of(si.helo));
    si.helo += "+";
    EXPECT_EQ(xclient_from(si).helo, TextField::unavailable());
    si.protocol = "LMTP";
    EXPECT_FALSE(xclient_from(si).proto);
}

TEST(Xclient, EncoderErrors) {
    struct Row {
        const char* name;
        Xclient x;
        const char* want_error;
    };
    Xclient proto, ctrl, longv, spelled, temp, empty, none;
    proto.proto = "LMTP";
    ctrl.helo = TextField::of("a\nb");
    longv.login = TextField::of(std::string(256, 'l'));
    spelled.helo = TextField::of("[unavailable]");
    temp.helo = TextField::tempunavail();
    empty.name = TextField::of("");
    const Row rows[] = {
        {"proto", proto, "PROTO is not SMTP or ESMTP"},
        {"control", ctrl, "attribute 'HELO' contains NUL, CR or LF"},
        {"long", longv, "value of attribute 'LOGIN' longer than 255 bytes once encoded"},
        {"spelled", spelled, "value of HELO reads as a special value"},
        {"tempunavail", temp, "HELO cannot be [TEMPUNAVAIL]"},
        {"empty", empty, "attribute 'NAME' has an empty value"},
        {"nothing", none, "no XCLIENT attribute to send"},
    };
    for (const auto& r : rows) {
        auto e = encode(r.x);
        EXPECT_FALSE(e) << r.name;
        EXPECT_TRUE(e.lines.empty()) << r.name;
        EXPECT_EQ(e.error, r.want_error) << r.name;
    }
}

TEST(Xclient, MergeAndApply) {
    // PORT before ADDR, as a split sends it; the later command wins.
    Xclient state = parse_all({"XCLIENT PORT=4000 HELO=first", "XCLIENT HELO=second ADDR=192.0.2.9"});
    SourceInfo si;
    apply(state, si);
    EXPECT_EQ(si.client->to_string(), "192.0.2.9:4000");
    EXPECT_EQ(si.helo, "second");
    // Unavailable values clear.
    si = sample();
    apply(*parse_xclient("XCLIENT ADDR=[UNAVAILABLE] NAME=[TEMPUNAVAIL] LOGIN=[UNAVAILABLE]"), si);
    EXPECT_FALSE(si.client);
    EXPECT_EQ(si.ptr_name, "");
    EXPECT_EQ(si.login, "");
    si = sample();
    apply(*parse_xclient("XCLIENT PORT=[UNAVAILABLE] DESTADDR=[UNAVAILABLE]"), si);
    EXPECT_EQ(si.client->port, 0);
    EXPECT_FALSE(si.server);
    // A port with no address to attach to is dropped.
    SourceInfo blank;
    apply(*parse_xclient("XCLIENT PORT=25"), blank);
    EXPECT_FALSE(blank.client);
}

// ---- XFORWARD ----

TEST(Xforward, ParseTable) {
    struct Row {
        std::string line;
        bool want_ok;
        const char* want_error;
    };
    const Row rows[] = {
        {"XFORWARD NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP", true, ""},  // README example
        {"XFORWARD HELO=spike.porcupine.org", true, ""},
        {"XFORWARD SOURCE=local IDENT=4XyZ1 PORT=25 PROTO=ESMTPSA", true, ""},
        {"XFORWARD SOURCE=[unavailable] NAME=[UNAVAILABLE]", true, ""},
        {"XFORWARD PROTO=" + std::string(64, 'P'), true, ""},
        {"XFORWARD PROTO=" + std::string(65, 'P'), false, "PROTO longer than 64 bytes"},
        {"XFORWARD SOURCE=ELSEWHERE", false, "SOURCE is not LOCAL or REMOTE"},
        {"XFORWARD LOGIN=x", false, "unknown attribute 'LOGIN'"},
        {"XFORWARD ADDR=1.2.3", false, "ADDR is not an IP address"},
        {"XFORWARD PORT=x", false, "PORT is not a port number (0-65535)"},
        {"XFORWARD", false, "XFORWARD without attributes"},
        {"XCLIENT NAME=x", false, "not an XFORWARD command"},
    };
    for (const auto& r : rows) {
        auto x = parse_xforward(r.line);
        EXPECT_EQ(x.has_value(), r.want_ok) << r.line << ": " << x.error();
        if (!r.want_ok) {
            EXPECT_EQ(x.error(), r.want_error) << r.line;
        }
    }
    auto x = parse_xforward("XFORWARD NAME=[TEMPUNAVAIL] SOURCE=Local");
    ASSERT_TRUE(x);
    EXPECT_EQ(x->name, TextField::of("[TEMPUNAVAIL]"));  // only [UNAVAILABLE] is special here
    EXPECT_EQ(x->source, Field<XforwardSource>::of(XforwardSource::local));
}

TEST(Xforward, EncodeAndApply) {
    auto e = encode_xforward(sample());
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 1u);
    EXPECT_EQ(e.lines[0],
              "XFORWARD PROTO=ESMTPS HELO=client.example.org IDENT=4XyZ1 SOURCE=REMOTE "
              "NAME=mail.example.org ADDR=192.0.2.66 PORT=40123\r\n");
    Xforward x = parse_all_forward(e.lines);
    EXPECT_EQ(x, xforward_from(sample()));
    SourceInfo got;
    apply(x, got);
    EXPECT_EQ(got.session_id, "4XyZ1");
    EXPECT_EQ(got.protocol, "ESMTPS");
    EXPECT_EQ(got.client->to_string(), "192.0.2.66:40123");
    // smtp-sink advertises "XFORWARD NAME ADDR PROTO HELO".
    e = encode_xforward(sample("2001:db8::5"), std::set<std::string>{"NAME", "ADDR", "PROTO", "HELO"},
                        XforwardSource::local);
    ASSERT_EQ(e.lines.size(), 1u);
    EXPECT_EQ(e.lines[0],
              "XFORWARD PROTO=ESMTPS HELO=client.example.org NAME=mail.example.org ADDR=IPV6:2001:db8::5\r\n");
}

TEST(Xforward, SplitsIntoThreeWithAddrLast) {
    SourceInfo si = sample();
    si.ptr_name = std::string(255, 'n');
    si.helo = std::string(255, 'h');
    si.session_id = std::string(255, 'i');
    auto e = encode_xforward(si);
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 3u);
    expect_well_formed(e.lines, "XFORWARD");
    EXPECT_TRUE(has(e.lines[2], "ADDR"));
    EXPECT_TRUE(has(e.lines[2], "PORT"));
    EXPECT_TRUE(has(e.lines[2], "NAME"));
    EXPECT_EQ(parse_all_forward(e.lines), xforward_from(si));
}

TEST(Xforward, UnavailableRoundTrip) {
    SourceInfo none;
    auto e = encode_xforward(none);
    ASSERT_TRUE(e) << e.error;
    EXPECT_EQ(e.lines.at(0),
              "XFORWARD PROTO=[UNAVAILABLE] HELO=[UNAVAILABLE] SOURCE=REMOTE NAME=[UNAVAILABLE] "
              "ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE]\r\n");
    SourceInfo got = sample();
    apply(parse_all_forward(e.lines), got);
    EXPECT_FALSE(got.client);
    EXPECT_EQ(got.helo, "");
    EXPECT_EQ(got.protocol, "");
    EXPECT_EQ(got.ptr_name, "");
}
