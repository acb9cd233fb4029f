// xproxy_commands_test: the XPROXY verbs XPROXYFROM, XPROXY, XPROXYTO and the DESTINATIONLEFT
// reply: the reference examples of doc/wire-formats.md, exact encodings, round trips, splitting
// over LAST=False commands at the 512-byte boundary, the accumulator's bounds and errors,
// and the reply decoder (every strict prefix is need_more).
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/xproxy_commands.hpp>

using namespace xproxy;
using namespace xproxy::smtp;

namespace {

// The reference XPROXYTO command of doc/wire-formats.md, byte for byte.
const std::string kSeedXproxyTo =
    "XPROXYTO DESTINATIONS=[10.128.10.246],[10.10.10.1],[10.10.10.2] FORCEHELO=False SHOULDSKIPTLS=False PORT=99 "
    "REQUIRETLS=True REQUIREOORG=False TLSAUTHLEVEL=DomainValidation RISK=Normal SESSIONID=08CE6D0EBCDE4827 "
    "LAST=True";
// The reference XPROXYFROM and XPROXY examples of doc/wire-formats.md.
const std::string kSeedXproxyFrom = "XPROXYFROM SID=08CE780858C360B8 IP=10.121.202.151 PORT=25481";
const std::string kSeedXproxy = "XPROXY SID=08CE780858C360B8 IP=10.121.202.151 PORT=25481 DOMAIN=URBSOFT.COM";

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

// Feeds every line to one accumulator; returns the command if the last line completed it.
std::optional<XproxyCommand> accumulate(const std::vector<std::string>& lines, std::string* error = nullptr) {
    XproxyAccumulator acc;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        auto r = acc.add(lines[i]);
        bool last = i + 1 == lines.size();
        if (r.complete() && last) {
            EXPECT_EQ(r.consumed, lines[i].size());
            return acc.command();
        }
        if (!r.need_more() || last) {
            if (error) *error = acc.error();
            return std::nullopt;
        }
    }
    return std::nullopt;
}

void expect_split_well_formed(const std::vector<std::string>& lines, const std::string& verb) {
    ASSERT_FALSE(lines.empty());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto& l = lines[i];
        EXPECT_LE(l.size(), kMaxCommandLine) << l;
        EXPECT_EQ(l.rfind(verb + " ", 0), 0u) << l;
        EXPECT_EQ(l.find_first_of("\r\n"), l.size() - 2) << l;
        bool last = i + 1 == lines.size();
        const char* want = last ? " LAST=True\r\n" : " LAST=False\r\n";
        EXPECT_EQ(l.substr(l.size() - std::string(want).size()), want) << l;
    }
}

}  // namespace

TEST(XproxyCommands, SeedExamplesParse) {
    auto f = parse_xproxy_command(kSeedXproxyFrom);
    ASSERT_TRUE(f) << f.error();
    const auto& from = std::get<XproxyFrom>(*f);
    EXPECT_EQ(from.sid, "08CE780858C360B8");
    EXPECT_EQ(from.source.to_string(), "10.121.202.151:25481");
    EXPECT_TRUE(from.helo.empty() && from.login.empty() && from.proto.empty());

    auto x = parse_xproxy_command(kSeedXproxy);
    ASSERT_TRUE(x) << x.error();
    const auto& sub = std::get<Xproxy>(*x);
    EXPECT_EQ(sub.sid, "08CE780858C360B8");
    EXPECT_EQ(sub.source.to_string(), "10.121.202.151:25481");
    EXPECT_EQ(sub.domain, "URBSOFT.COM");

    auto t = parse_xproxy_command(kSeedXproxyTo);
    ASSERT_TRUE(t) << t.error();
    const auto& to = std::get<XproxyTo>(*t);
    EXPECT_EQ(to.destinations, (std::vector<IpAddress>{ip("10.128.10.246"), ip("10.10.10.1"), ip("10.10.10.2")}));
    EXPECT_EQ(to.port, 99);
    EXPECT_FALSE(to.force_helo);
    EXPECT_FALSE(to.should_skip_tls);
    EXPECT_TRUE(to.require_tls);
    EXPECT_FALSE(to.require_oorg);
    EXPECT_EQ(to.tls_auth_level, "DomainValidation");
    EXPECT_EQ(to.risk, "Normal");
    EXPECT_EQ(to.session_id, "08CE6D0EBCDE4827");

    // Our encoder writes the reference lines byte for byte.
    EXPECT_EQ(encode(*t).joined(), kSeedXproxyTo + "\r\n");
    EXPECT_EQ(encode(*f).joined(), kSeedXproxyFrom + "\r\n");
    EXPECT_EQ(encode(*x).joined(), kSeedXproxy + "\r\n");

    // A line with no space between two attributes is not guessed at.
    auto ocr = parse_xproxy_command("XPROXYFROM SID=08CE780858C360B8IP=10.121.202.151 PORT=25481");
    EXPECT_FALSE(ocr);
    EXPECT_EQ(ocr.error(), "bad xtext in attribute 'SID': raw '=' (must be +3D)");
}

TEST(XproxyCommands, SeedDestinationLeft) {
    // The reference reply of doc/wire-formats.md in RFC 5321 syntax ("250-" continuation, "250 " last line).
    const std::string reply = "250-DESTINATIONLEFT=[10.10.10.2]\r\n250-Target Option1\r\n250 Target Option2\r\n";
    DestinationLeft d;
    auto r = decode_destination_left(reply, d);
    ASSERT_TRUE(r.complete()) << r.reason;
    EXPECT_EQ(r.consumed, reply.size());
    EXPECT_EQ(d.left, std::vector<IpAddress>{ip("10.10.10.2")});
    EXPECT_EQ(d.options, (std::vector<std::string>{"Target Option1", "Target Option2"}));
    EXPECT_EQ(encode(d).joined(), reply);
    // A continuation printed as "250 - " reads, in SMTP, as a last line "- DESTINATIONLEFT...".
    DestinationLeft other;
    r = decode_destination_left("250 - DESTINATIONLEFT=[10.10.10.2]\r\n", other);
    EXPECT_TRUE(r.invalid());
    EXPECT_EQ(r.reason, "first reply line is not DESTINATIONLEFT=");
}

TEST(XproxyCommands, ExactEncodings) {
    struct Row {
        const char* name;
        XproxyCommand cmd;
        const char* want;
    };
    XproxyTo to6;
    to6.destinations = {ip("2001:db8::1"), ip("192.0.2.1")};
    to6.port = 25;
    to6.should_skip_tls = true;
    const Row rows[] = {
        {"from, all fields, IPv6",
         XproxyFrom{"S1", Endpoint{ip("2001:db8::66"), 4066}, "helo with space", "alice", "ESMTPSA"},
         "XPROXYFROM SID=S1 IP=IPv6:2001:db8::66 PORT=4066 HELO=helo+20with+20space LOGIN=alice PROTO=ESMTPSA\r\n"},
        {"xproxy with login", Xproxy{"S2", Endpoint{ip("192.0.2.1"), 587}, "mua.example", "bob=1"},
         "XPROXY SID=S2 IP=192.0.2.1 PORT=587 DOMAIN=mua.example LOGIN=bob+3D1\r\n"},
        {"to, IPv6, defaults", to6,
         "XPROXYTO DESTINATIONS=[IPv6:2001:db8::1],[192.0.2.1] FORCEHELO=False SHOULDSKIPTLS=True PORT=25 "
         "REQUIRETLS=False REQUIREOORG=False LAST=True\r\n"},
    };
    for (const auto& r : rows) {
        auto e = encode(r.cmd);
        ASSERT_TRUE(e) << r.name << ": " << e.error;
        EXPECT_EQ(e.joined(), r.want) << r.name;
        auto back = accumulate(e.lines);
        ASSERT_TRUE(back) << r.name;
        EXPECT_EQ(*back, r.cmd) << r.name;
    }
}

TEST(XproxyCommands, LiberalDecoding) {
    struct Row {
        const char* line;
        const char* want_ip;
    };
    const Row rows[] = {
        {"xproxyfrom sid=1 ip=[10.0.0.1] port=25", "10.0.0.1"},
        {"XPROXYFROM SID=1 IP=ipv6:2001:DB8::1 PORT=25", "2001:db8::1"},
        {"XPROXYFROM SID=1 IP=[IPv6:2001:db8::1] PORT=25", "2001:db8::1"},
        {"XPROXYFROM SID=1 IP=2001:db8::1 PORT=25 LAST=true", "2001:db8::1"},
        {"XPROXYFROM SID=1 IP=::ffff:10.0.0.1 PORT=25", "10.0.0.1"},
    };
    for (const auto& r : rows) {
        auto p = parse_xproxy_command(r.line);
        ASSERT_TRUE(p) << r.line << ": " << p.error();
        EXPECT_EQ(std::get<XproxyFrom>(*p).source.addr.to_string(), r.want_ip) << r.line;
    }
    auto t = parse_xproxy_command(
        "XPROXYTO destinations=10.0.0.1,[IPv6:::1],IPV6:2001:db8::2 forcehelo=TRUE last=TRUE");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(std::get<XproxyTo>(*t).destinations,
              (std::vector<IpAddress>{ip("10.0.0.1"), ip("::1"), ip("2001:db8::2")}));
    EXPECT_TRUE(std::get<XproxyTo>(*t).force_helo);
    EXPECT_EQ(std::get<XproxyTo>(*t).port, 25);
}

TEST(XproxyCommands, ParseErrors) {
    struct Row {
        std::string line;
        const char* want_error;
    };
    const Row rows[] = {
        {"XPROXYFROM SID=1 PORT=25", "XPROXYFROM without IP"},
        {"XPROXYFROM IP=1.1.1.1 PORT=25", "XPROXYFROM without SID"},
        {"XPROXYFROM SID=1 IP=1.1.1.1", "XPROXYFROM without PORT"},
        {"XPROXYFROM SID=1 IP=300.1.1.1 PORT=25", "IP is not an IP address"},
        {"XPROXYFROM SID=1 IP=host.example PORT=25", "IP is not an IP address"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=70000", "PORT is not a port number (0-65535)"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=1 EVIL=1", "unknown attribute 'EVIL'"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=1 DOMAIN=x", "unknown attribute 'DOMAIN'"},
        {"XPROXYFROM SID=1 SID=2 IP=1.1.1.1 PORT=1", "duplicate attribute 'SID'"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=1 HELO=a+0Db", "bad xtext in attribute 'HELO': NUL, CR or LF in value"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=1 LAST=maybe", "LAST is not True or False"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=1 LAST=False", "LAST=False: the command continues on another line"},
        {"XPROXY SID=1 IP=1.1.1.1 PORT=1", "XPROXY without DOMAIN"},
        {"XPROXYTO LAST=True", "XPROXYTO without DESTINATIONS"},
        {"XPROXYTO DESTINATIONS=[10.0.0.1], LAST=True", "DESTINATIONS: empty entry in an address list"},
        {"XPROXYTO DESTINATIONS=[host.example] LAST=True", "DESTINATIONS: '[host.example]' is not an IP address"},
        {"XPROXYTO DESTINATIONS=[10.0.0.1] PORT=x", "PORT is not a port number (0-65535)"},
        {"XPROXYTO DESTINATIONS=[10.0.0.1] REQUIRETLS=yes", "REQUIRETLS is not True or False"},
        {"XPROXYTO DESTINATIONS=[10.0.0.1] SID=1", "unknown attribute 'SID'"},
        {"XCLIENT ADDR=1.2.3.4", "not an XPROXYFROM, XPROXY or XPROXYTO command"},
        {"XPROXYTO DESTINATIONS=" + std::string(500, '1'), "command line longer than 512 bytes"},
    };
    for (const auto& r : rows) {
        auto p = parse_xproxy_command(r.line);
        EXPECT_FALSE(p) << r.line;
        EXPECT_EQ(p.error(), r.want_error) << r.line;
    }
    // [UNAVAILABLE] is plain text in these commands.
    auto p = parse_xproxy_command("XPROXYFROM SID=1 IP=1.1.1.1 PORT=1 HELO=[UNAVAILABLE]");
    ASSERT_TRUE(p) << p.error();
    EXPECT_EQ(std::get<XproxyFrom>(*p).helo, "[UNAVAILABLE]");
}

TEST(XproxyCommands, XproxyToSplitsAtTheBoundary) {
    XproxyTo t;
    t.risk = "High";
    t.session_id = "ABC";
    // Add destinations while everything fits in one command.
    std::size_t n = 0;
    while (true) {
        t.destinations.push_back(ip(("10.0." + std::to_string(n) + ".1").c_str()));
        ++n;
        auto e = encode(t);
        ASSERT_TRUE(e) << e.error;
        if (e.lines.size() > 1) break;
        ASSERT_LE(e.lines[0].size(), kMaxCommandLine);
    }
    // The last single command was within one destination of 512 bytes.
    t.destinations.pop_back();
    std::size_t one = encode(t).lines.at(0).size();
    EXPECT_GT(one + std::string(",[10.0.99.1]").size(), kMaxCommandLine);
    t.destinations.push_back(ip("10.0.99.1"));
    auto e = encode(t);
    ASSERT_EQ(e.lines.size(), 2u);
    expect_split_well_formed(e.lines, "XPROXYTO");
    auto back = accumulate(e.lines);
    ASSERT_TRUE(back);
    EXPECT_EQ(std::get<XproxyTo>(*back), t);
}

TEST(XproxyCommands, XproxyToSplitsIntoSeveral) {
    XproxyTo t;
    for (int i = 0; i < 32; ++i) {
        t.destinations.push_back(ip(("10.0." + std::to_string(i) + ".1").c_str()));
        t.destinations.push_back(ip(("2001:db8:ffff:ffff:ffff:ffff:ffff:" + std::to_string(i + 1000)).c_str()));
    }
    t.port = 2525;
    t.require_tls = true;
    t.tls_auth_level = "DomainValidation";
    t.risk = "High";
    t.session_id = "ABC";
    auto e = encode(t);
    ASSERT_TRUE(e) << e.error;
    ASSERT_GE(e.lines.size(), 3u);
    expect_split_well_formed(e.lines, "XPROXYTO");
    for (std::size_t i = 0; i + 1 < e.lines.size(); ++i) EXPECT_EQ(e.lines[i].find(" PORT="), std::string::npos);
    EXPECT_NE(e.lines.back().find(" RISK=High"), std::string::npos);
    auto back = accumulate(e.lines);
    ASSERT_TRUE(back);
    EXPECT_EQ(std::get<XproxyTo>(*back), t);
}

TEST(XproxyCommands, XproxyFromSplits) {
    XproxyFrom f{"SID1", Endpoint{ip("192.0.2.7"), 2525}, std::string(300, 'h'), std::string(300, 'l'), "ESMTP"};
    auto e = encode(f);
    ASSERT_TRUE(e) << e.error;
    ASSERT_GE(e.lines.size(), 2u);
    expect_split_well_formed(e.lines, "XPROXYFROM");
    const auto& last = e.lines.back();
    for (const char* a : {" SID=SID1", " IP=192.0.2.7", " PORT=2525"}) EXPECT_NE(last.find(a), std::string::npos) << a;
    auto back = accumulate(e.lines);
    ASSERT_TRUE(back);
    EXPECT_EQ(std::get<XproxyFrom>(*back), f);

    Xproxy x{"S", Endpoint{ip("2001:db8::9"), 587}, std::string(400, 'd'), std::string(400, 'l')};
    e = encode(x);
    ASSERT_TRUE(e) << e.error;
    ASSERT_EQ(e.lines.size(), 2u);
    expect_split_well_formed(e.lines, "XPROXY");
    back = accumulate(e.lines);
    ASSERT_TRUE(back);
    EXPECT_EQ(std::get<Xproxy>(*back), x);
}

TEST(XproxyCommands, EncoderErrors) {
    struct Row {
        const char* name;
        XproxyCommand cmd;
        const char* want_error;
    };
    XproxyTo none, many, ctrl;
    for (int i = 0; i < 65; ++i) many.destinations.push_back(ip("10.0.0.1"));
    ctrl.destinations = {ip("10.0.0.1")};
    ctrl.risk = "a\r\nRSET";
    const Row rows[] = {
        {"no sid", XproxyFrom{"", Endpoint{}, "", "", ""}, "SID is empty"},
        {"no domain", Xproxy{"S", Endpoint{}, "", ""}, "DOMAIN is empty"},
        {"no destinations", none, "no DESTINATIONS"},
        {"65 destinations", many, "too many DESTINATIONS"},
        {"CRLF in RISK", ctrl, "attribute 'RISK' contains NUL, CR or LF"},
        {"value longer than a command", XproxyFrom{"S", Endpoint{}, std::string(600, 'h'), "", ""},
         "attribute 'HELO' does not fit in one command"},
        {"LF in HELO", XproxyFrom{"S", Endpoint{}, "a\nb", "", ""}, "attribute 'HELO' contains NUL, CR or LF"},
    };
    for (const auto& r : rows) {
        auto e = encode(r.cmd);
        EXPECT_FALSE(e) << r.name;
        EXPECT_TRUE(e.lines.empty()) << r.name;
        EXPECT_EQ(e.error, r.want_error) << r.name;
    }
}

TEST(XproxyCommands, AccumulatorSequences) {
    XproxyAccumulator acc;
    // DESTINATIONS continue across commands; LAST may sit anywhere in the line.
    EXPECT_TRUE(acc.add("XPROXYTO LAST=False DESTINATIONS=[10.0.0.1]\r\n").need_more());
    EXPECT_TRUE(acc.add("XPROXYTO DESTINATIONS=[10.0.0.2],[10.0.0.3] LAST=False").need_more());
    auto r = acc.add("XPROXYTO RISK=Low LAST=True");
    ASSERT_TRUE(r.complete()) << acc.error();
    EXPECT_EQ(acc.lines(), 3u);
    EXPECT_EQ(std::get<XproxyTo>(acc.command()).destinations.size(), 3u);
    // After complete, the next line starts a new sequence.
    ASSERT_TRUE(acc.add(kSeedXproxyFrom).complete()) << acc.error();
    EXPECT_EQ(acc.lines(), 1u);

    struct Row {
        const char* name;
        std::vector<std::string> lines;
        const char* want_reason;
        const char* want_error;
    };
    const Row rows[] = {
        {"scalar repeated",
         {"XPROXYTO DESTINATIONS=[10.0.0.1] RISK=High LAST=False", "XPROXYTO RISK=Low LAST=True"},
         "invalid XPROXY command",
         "attribute 'RISK' repeated in the sequence"},
        {"verb changed",
         {"XPROXYTO DESTINATIONS=[10.0.0.1] LAST=False", kSeedXproxyFrom},
         "verb changed within a sequence",
         "XPROXYFROM in a XPROXYTO sequence"},
        {"not ours", {"RSET"}, "not an XPROXY command", "not an XPROXYFROM, XPROXY or XPROXYTO command"},
        {"malformed",
         {"XPROXYTO junk"},
         "malformed XPROXY command line",
         "malformed attribute 'junk' (NAME=value expected)"},
        {"missing after split",
         {"XPROXYFROM HELO=x LAST=False", "XPROXYFROM SID=1 PORT=2"},
         "invalid XPROXY command",
         "XPROXYFROM without IP"},
    };
    for (const auto& row : rows) {
        XproxyAccumulator a;
        DecodeResult last;
        for (const auto& l : row.lines) last = a.add(l);
        EXPECT_TRUE(last.invalid()) << row.name;
        EXPECT_EQ(last.reason, row.want_reason) << row.name;
        EXPECT_EQ(a.error(), row.want_error) << row.name;
        // After invalid, the next line starts afresh.
        EXPECT_TRUE(a.add(kSeedXproxy).complete()) << row.name << ": " << a.error();
    }
}

TEST(XproxyCommands, AccumulatorBounds) {
    XproxyAccumulator acc;
    for (std::size_t i = 0; i < XproxyLimits{}.max_lines - 1; ++i)
        ASSERT_TRUE(acc.add("XPROXYTO DESTINATIONS=[10.0.0.1] LAST=False").need_more()) << i;
    // The 16th command may end the sequence ...
    XproxyAccumulator ok = acc;
    EXPECT_TRUE(ok.add("XPROXYTO LAST=True").complete()) << ok.error();
    // ... a 17th may not.
    EXPECT_TRUE(acc.add("XPROXYTO DESTINATIONS=[10.0.0.1] LAST=False").need_more());
    auto r = acc.add("XPROXYTO LAST=True");
    EXPECT_TRUE(r.invalid());
    EXPECT_EQ(r.reason, "too many XPROXY commands in one sequence");
    EXPECT_EQ(acc.error(), "more than 16 commands in one sequence");

    XproxyAccumulator small(XproxyLimits{16, 101, 2});
    EXPECT_TRUE(small.add("XPROXYTO DESTINATIONS=[10.0.0.1],[10.0.0.2] LAST=False").need_more());  // 56 bytes
    r = small.add("XPROXYTO DESTINATIONS=[10.0.0.3] LAST=False\r\n");                              // 101 bytes
    EXPECT_TRUE(r.need_more());
    r = small.add("XPROXYTO LAST=True");
    EXPECT_TRUE(r.invalid());
    EXPECT_EQ(r.reason, "XPROXY command sequence too long");
    EXPECT_EQ(small.error(), "sequence longer than 101 bytes");

    XproxyAccumulator two(XproxyLimits{16, 8192, 2});
    r = two.add("XPROXYTO DESTINATIONS=[10.0.0.1],[10.0.0.2],[10.0.0.3]");
    EXPECT_TRUE(r.invalid());
    EXPECT_EQ(two.error(), "more than 2 DESTINATIONS");
}

TEST(XproxyCommands, SourceInfoViews) {
    XproxyFrom f{"S1", Endpoint{ip("192.0.2.1"), 1234}, "h.example", "alice", "ESMTPA"};
    SourceInfo si = to_source_info(f);
    EXPECT_EQ(si.client->to_string(), "192.0.2.1:1234");
    EXPECT_EQ(si.session_id, "S1");
    EXPECT_EQ(si.helo, "h.example");
    EXPECT_EQ(si.login, "alice");
    EXPECT_EQ(si.protocol, "ESMTPA");
    auto back = xproxyfrom_from(si);
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ(*back, f);
    SourceInfo nosid = si;
    nosid.session_id.clear();
    EXPECT_EQ(xproxyfrom_from(nosid).error(), "no session id");
    EXPECT_EQ(xproxyfrom_from(SourceInfo{}).error(), "no client address");

    SourceInfo sub = to_source_info(Xproxy{"S2", Endpoint{ip("2001:db8::1"), 587}, "URBSOFT.COM", "bob"});
    EXPECT_EQ(sub.helo, "URBSOFT.COM");
    EXPECT_EQ(sub.login, "bob");
    EXPECT_EQ(sub.session_id, "S2");
}

// ---- DESTINATIONLEFT ----

TEST(DestinationLeft, EncodeDecodeAndPrefixes) {
    DestinationLeft d{{ip("10.10.10.2"), ip("2001:db8::2")}, {"PIPELINING", "SIZE 10240000", "STARTTLS"}};
    auto e = encode(d);
    ASSERT_TRUE(e) << e.error;
    const std::string reply = e.joined();
    EXPECT_EQ(reply,
              "250-DESTINATIONLEFT=[10.10.10.2],[IPv6:2001:db8::2]\r\n"  // what was not used
              "250-PIPELINING\r\n"                                       // the target's EHLO options
              "250-SIZE 10240000\r\n"
              "250 STARTTLS\r\n");  // "250 " ends the reply
    DestinationLeft got;
    auto r = decode_destination_left(reply + "MAIL FROM:<a@b>\r\n", got);  // what follows is not consumed
    ASSERT_TRUE(r.complete()) << r.reason;
    EXPECT_EQ(r.consumed, reply.size());
    EXPECT_EQ(got, d);
    for (std::size_t k = 0; k < reply.size(); ++k) {
        DestinationLeft p;
        EXPECT_TRUE(decode_destination_left(std::string_view(reply).substr(0, k), p).need_more()) << k;
    }
    // Nothing left, no options.
    EXPECT_EQ(encode(DestinationLeft{}).joined(), "250 DESTINATIONLEFT=\r\n");
    DestinationLeft empty;
    EXPECT_TRUE(decode_destination_left("250 destinationleft=\r\n", empty).complete());
    EXPECT_TRUE(empty.left.empty() && empty.options.empty());
}

TEST(DestinationLeft, LongListSpansLines) {
    DestinationLeft d;
    for (int i = 0; i < 64; ++i) d.left.push_back(ip(("2001:db8::" + std::to_string(1000 + i)).c_str()));
    d.options = {"8BITMIME"};
    auto e = encode(d);
    ASSERT_TRUE(e) << e.error;
    ASSERT_GE(e.lines.size(), 4u);
    for (std::size_t i = 0; i + 1 < e.lines.size(); ++i) {
        EXPECT_LE(e.lines[i].size(), kMaxReplyLine);
        EXPECT_EQ(e.lines[i].rfind("250-DESTINATIONLEFT=[IPv6:", 0), 0u) << e.lines[i];
    }
    DestinationLeft got;
    auto reply = e.joined();
    ASSERT_TRUE(decode_destination_left(reply, got).complete());
    EXPECT_EQ(got, d);
}

TEST(DestinationLeft, Invalid) {
    struct Row {
        std::string in;
        const char* want_reason;
    };
    const Row rows[] = {
        {"550 5.7.1 no\r\n", "reply code is not 250"},
        {"2", ""},  // need more
        {"251-", "reply code is not 250"},
        {"250x", "malformed reply line"},
        {"250 OTHER=1\r\n", "first reply line is not DESTINATIONLEFT="},
        {"250-DESTINATIONLEFT=[1.2.3.4]\n", "reply line not ended by CRLF"},
        {"250-DESTINATIONLEFT=[1.2.3.4]\r\n250\r\n", "malformed reply line"},
        {"250-DESTINATIONLEFT=[1.2.3.4]\r\n451 later\r\n", "reply code is not 250"},
        {"250 DESTINATIONLEFT=[1.2.3.999]\r\n", "bad address in DESTINATIONLEFT"},
        {"250 DESTINATIONLEFT=[1.2.3.4],\r\n", "bad address in DESTINATIONLEFT"},
        {"250-DESTINATIONLEFT=\r\n250 a\rb\r\n", "NUL or CR inside a reply line"},
        {"250-DESTINATIONLEFT=\r\n250-" + std::string(507, 'x') + "\r\n", "reply line longer than 512 bytes"},
        {"250-DESTINATIONLEFT=\r\n250-" + std::string(600, 'x'), "reply line longer than 512 bytes"},
    };
    for (const auto& r : rows) {
        DestinationLeft d;
        auto res = decode_destination_left(r.in, d);
        if (*r.want_reason == 0) {
            EXPECT_TRUE(res.need_more()) << r.in;
            continue;
        }
        EXPECT_TRUE(res.invalid()) << r.in;
        EXPECT_EQ(res.reason, r.want_reason) << r.in;
    }
    std::string many = "250-DESTINATIONLEFT=\r\n";
    for (int i = 0; i < 63; ++i) many += "250-X\r\n";
    DestinationLeft d;
    EXPECT_TRUE(decode_destination_left(many, d).need_more());
    EXPECT_EQ(decode_destination_left(many + "250 X\r\n", d).reason, "more than 64 reply lines");
    // A 512-byte line is fine.
    std::string max = "250-DESTINATIONLEFT=\r\n250 " + std::string(506, 'x') + "\r\n";
    auto r = decode_destination_left(max, d);
    ASSERT_TRUE(r.complete()) << r.reason;
    EXPECT_EQ(d.options.at(0).size(), 506u);
}

TEST(DestinationLeft, EncoderErrors) {
    struct Row {
        std::vector<std::string> options;
        const char* want_error;
    };
    const Row rows[] = {
        {{""}, "empty EHLO option"},
        {{"SIZE\r\n250 FAKE"}, "EHLO option contains NUL, CR or LF"},
        {{std::string(507, 'x')}, "EHLO option longer than a reply line"},
        {{"destinationleft=[1.2.3.4]"}, "EHLO option starts with DESTINATIONLEFT="},
        {std::vector<std::string>(64, "X"), "more than 64 reply lines"},
    };
    for (const auto& r : rows) {
        auto e = encode(DestinationLeft{{}, r.options});
        EXPECT_FALSE(e);
        EXPECT_EQ(e.error, r.want_error);
    }
    EXPECT_TRUE(encode(DestinationLeft{{}, {std::string(506, 'x')}}));
    EXPECT_TRUE(encode(DestinationLeft{{}, std::vector<std::string>(63, "X")}));
}
