// trace_header_test: key ring and the signed X-Original-Source header.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "xproxy/keyring.hpp"
#include "xproxy/trace_header.hpp"

using namespace xproxy;
using namespace xproxy::trace;

namespace {
const char* kRing =
    "# signing key first\n"
    "k2026 base64:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
    "k2025   hex:000102030405060708090a0b0c0d0e0f   # old key, verify only\n";

KeyRing ring() {
    std::string err;
    auto r = KeyRing::parse(kRing, &err);
    EXPECT_TRUE(r) << err;
    return *r;
}

SourceInfo sample() {
    SourceInfo si;
    si.client = Endpoint{*IpAddress::parse("192.0.2.66"), 40123};
    si.helo = "client.example; v=2 évil";
    si.ptr_name = "mail.example.org";
    si.protocol = "ESMTPS";
    si.tls.version = "TLSv1.3";
    si.tls.cipher = "TLS_AES_256_GCM_SHA384";
    si.tls.bits = 256;
    si.login = "alice@example.org";
    si.session_id = "4XyZ1";
    return si;
}

const MessageBinding kMsg{"Alice@Example.org", "<1234@client.example>"};
constexpr std::int64_t kNow = 1790000000;
}  // namespace

TEST(KeyRing, ParseTable) {
    struct Row {
        const char* text;
        bool want_ok;
        const char* want_error;
    };
    const Row rows[] = {
        {"a hex:00112233445566778899aabbccddeeff", true, ""},
        {"a base64:AAECAwQFBgcICQoLDA0ODw==", true, ""},
        {"", false, "key ring holds no key"},
        {"# only a comment\n", false, "key ring holds no key"},
        {"a hex:0011", false, "key ring line 1: secret of key 'a' is shorter than 16 bytes"},
        {"a\n", false, "key ring line 1: expected 'KEYID base64:SECRET' or 'KEYID hex:SECRET'"},
        {"a plain:secret", false, "key ring line 1: secret must be base64:... or hex:... (key 'a')"},
        {"a hex:0g112233445566778899aabbccddeeff", false, "key ring line 1: secret must be base64:... or hex:... (key 'a')"},
        {"bad/id hex:00112233445566778899aabbccddeeff", false,
         "key ring line 1: key id must be 1-32 characters of A-Z a-z 0-9 . _ -"},
        {"a hex:00112233445566778899aabbccddeeff\na hex:00112233445566778899aabbccddeeff", false,
         "key ring line 2: key id 'a' appears twice"},
    };
    for (const auto& r : rows) {
        std::string err;
        auto k = KeyRing::parse(r.text, &err);
        EXPECT_EQ(k.has_value(), r.want_ok) << r.text;
        EXPECT_EQ(err, r.want_error) << r.text;
    }
    KeyRing k = ring();
    EXPECT_EQ(k.size(), 2u);
    EXPECT_EQ(k.signing_key()->id, "k2026");
    EXPECT_EQ(k.signing_key()->secret, "0123456789abcdef0123456789abcdef");
    EXPECT_EQ(k.find("k2025")->secret.size(), 16u);
}

TEST(KeyRing, FilePermissions) {
    char path[] = "/tmp/xproxy-keyring-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, kRing, strlen(kRing)), static_cast<ssize_t>(strlen(kRing)));
    close(fd);
    std::string err;
    chmod(path, 0644);
    EXPECT_FALSE(KeyRing::load_file(path, &err));
    EXPECT_NE(err.find("has mode 0644"), std::string::npos) << err;
    EXPECT_NE(err.find(path), std::string::npos) << err;
    chmod(path, 0640);
    EXPECT_FALSE(KeyRing::load_file(path, &err));
    chmod(path, 0600);
    auto k = KeyRing::load_file(path, &err);
    ASSERT_TRUE(k) << err;
    EXPECT_EQ(k->size(), 2u);
    chmod(path, 0400);
    EXPECT_TRUE(KeyRing::load_file(path, &err));
    unlink(path);
    EXPECT_FALSE(KeyRing::load_file(path, &err));
    EXPECT_NE(err.find("cannot open"), std::string::npos);
    EXPECT_FALSE(KeyRing::load_file("/tmp", &err));
}

TEST(TraceHeader, SignVerifyRoundTrip) {
    KeyRing k = ring();
    for (auto kind : {BindingKind::message_id, BindingKind::envelope}) {
        std::string v = sign(sample(), "gw1.example.net", kNow, kind, kMsg, k);
        ASSERT_FALSE(v.empty());
        EXPECT_EQ(v.find('\r'), std::string::npos);
        auto r = verify(v, kMsg, k, kNow + 10, 3600);
        ASSERT_EQ(r.verdict, Verdict::ok) << r.reason << "\n" << v;
        EXPECT_EQ(r.source.client, sample().client);
        EXPECT_EQ(r.source.helo, sample().helo);
        EXPECT_EQ(r.source.ptr_name, "mail.example.org");
        EXPECT_EQ(r.source.tls, sample().tls);
        EXPECT_EQ(r.source.login, "alice@example.org");
        EXPECT_EQ(r.source.session_id, "4XyZ1");
        EXPECT_EQ(r.source.time, kNow);
        EXPECT_EQ(r.by, "gw1.example.net");
        EXPECT_EQ(r.key_id, "k2026");
        EXPECT_EQ(r.binding, kind);
    }
}

TEST(TraceHeader, SurvivesRefoldingAndWhitespace) {
    KeyRing k = ring();
    std::string v = sign(sample(), "gw1", kNow, BindingKind::message_id, kMsg, k);
    std::string field = format_field(v);
    EXPECT_EQ(field.rfind("X-Original-Source: v=1; ip=192.0.2.66;", 0), 0u) << field;
    std::size_t start = 0;
    while (true) {  // every physical line stays within 78 columns
        auto e = field.find("\r\n", start);
        EXPECT_LE((e == std::string::npos ? field.size() : e) - start, 78u);
        if (e == std::string::npos) break;
        start = e + 2;
    }
    EXPECT_EQ(verify(field, kMsg, k, kNow, 60).verdict, Verdict::ok);
    // Refold at every space, add tabs and spaces, drop them.
    std::string refolded, squeezed;
    for (char c : v) {
        if (c == ' ') refolded += "\r\n \t";
        else refolded += c;
        if (c != ' ') squeezed += c;
    }
    EXPECT_EQ(verify(refolded, kMsg, k, kNow, 60).verdict, Verdict::ok);
    EXPECT_EQ(verify(squeezed, kMsg, k, kNow, 60).verdict, Verdict::ok);
    EXPECT_EQ(verify("x-original-source:" + squeezed, kMsg, k, kNow, 60).verdict, Verdict::ok);
    std::string spaced;
    for (char c : v) spaced += (c == ';' ? std::string(" ;  ") : std::string(1, c));
    EXPECT_EQ(verify(spaced, kMsg, k, kNow, 60).verdict, Verdict::ok);
}

TEST(TraceHeader, TamperingAnyTagFails) {
    KeyRing k = ring();
    std::string v = sign(sample(), "gw1", kNow, BindingKind::message_id, kMsg, k);
    const char* edits[][2] = {{"ip=192.0.2.66", "ip=192.0.2.67"}, {"port=40123", "port=40124"},
                              {"helo=client", "helo=dlient"},     {"name=mail", "name=nail"},
                              {"proto=ESMTPS", "proto=ESMTP"},    {"tls=TLSv1.3", "tls=TLSv1.2"},
                              {"login=alice", "login=mallory"},   {"sid=4XyZ1", "sid=4XyZ2"},
                              {"by=gw1", "by=gw2"},               {"t=1790000000", "t=1790000001"},
                              {"b=mid", "b=env"},                 {"v=1", "v=2"}};
    for (auto& e : edits) {
        std::string t = v;
        auto p = t.find(e[0]);
        ASSERT_NE(p, std::string::npos) << e[0];
        t.replace(p, strlen(e[0]), e[1]);
        auto r = verify(t, kMsg, k, kNow, 60);
        EXPECT_NE(r.verdict, Verdict::ok) << e[0];
    }
    // Removing a non-empty tag changes the canonical form too.
    std::string t = v;
    t.erase(t.find("login="), t.find("sid=") - t.find("login="));
    EXPECT_EQ(verify(t, kMsg, k, kNow, 60).verdict, Verdict::bad_signature);
    // Flipping any byte of the signature.
    auto sigpos = v.find("sig=") + 4;
    for (std::size_t i = sigpos; i < v.size(); ++i) {
        std::string s = v;
        s[i] = s[i] == 'A' ? 'B' : 'A';
        EXPECT_NE(verify(s, kMsg, k, kNow, 60).verdict, Verdict::ok) << i;
    }
}

TEST(TraceHeader, VerdictsTable) {
    KeyRing k = ring();
    std::string v = sign(sample(), "gw1", kNow, BindingKind::message_id, kMsg, k);
    std::string err;
    auto other = KeyRing::parse("k2026 hex:ffeeddccbbaa99887766554433221100", &err);
    auto unknown = KeyRing::parse("zz hex:ffeeddccbbaa99887766554433221100", &err);
    struct Row {
        std::string field;
        MessageBinding binding;
        const KeyRing* keys;
        std::int64_t now;
        Verdict want;
    };
    const Row rows[] = {
        {v, kMsg, &k, kNow, Verdict::ok},
        {v, kMsg, &k, kNow + 3600, Verdict::ok},
        {v, kMsg, &k, kNow + 3601, Verdict::expired},
        {v, kMsg, &k, kNow - 300, Verdict::ok},
        {v, kMsg, &k, kNow - 301, Verdict::future},
        {v, kMsg, &*other, kNow, Verdict::bad_signature},
        {v, kMsg, &*unknown, kNow, Verdict::unknown_key},
        {v, {"alice@example.org", "<other@client.example>"}, &k, kNow, Verdict::bad_signature},  // copied
        {v, {"bob@example.org", "<1234@client.example>"}, &k, kNow, Verdict::bad_signature},     // other sender
        {v, {"ALICE@EXAMPLE.ORG", " <1234@client.example> "}, &k, kNow, Verdict::ok},           // case, spaces
        {"", kMsg, &k, kNow, Verdict::malformed},
        {"v=1; garbage", kMsg, &k, kNow, Verdict::malformed},
        {v + "; x=1", kMsg, &k, kNow, Verdict::malformed},
        {v + "; ip=1.2.3.4", kMsg, &k, kNow, Verdict::malformed},
        {std::string(5000, 'a'), kMsg, &k, kNow, Verdict::malformed},
    };
    for (const auto& r : rows) {
        auto res = verify(r.field, r.binding, *r.keys, r.now, 3600);
        EXPECT_EQ(res.verdict, r.want) << to_string(res.verdict) << " " << res.reason << " field=" << r.field.substr(0, 80);
    }
    // Envelope binding: a different Message-ID is fine, a different sender is not.
    std::string env = sign(sample(), "gw1", kNow, BindingKind::envelope, kMsg, k);
    EXPECT_EQ(verify(env, {"alice@example.org", "<x@y>"}, k, kNow, 60).verdict, Verdict::ok);
    EXPECT_EQ(verify(env, {"mallory@example.org", "<1234@client.example>"}, k, kNow, 60).verdict,
              Verdict::bad_signature);
    // Rotation: a header signed with the old key still verifies while the key is in the ring.
    auto old_first = KeyRing::parse("k2025 hex:000102030405060708090a0b0c0d0e0f", &err);
    std::string old = sign(sample(), "gw1", kNow, BindingKind::message_id, kMsg, *old_first);
    auto r = verify(old, kMsg, k, kNow, 60);
    EXPECT_EQ(r.verdict, Verdict::ok);
    EXPECT_EQ(r.key_id, "k2025");
    EXPECT_TRUE(sign(sample(), "gw1", kNow, BindingKind::envelope, kMsg, KeyRing()).empty());
}
