// keyring_test: key ring file syntax, the signing key, secret decoding and the file
// permission rule (mode & 077 refused, naming path and mode).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <type_traits>

#include <xproxy/base/keyring.hpp>

using xproxy::KeyRing;

namespace {

const char* const kHex16 = "hex:000102030405060708090a0b0c0d0e0f";                  // 16 bytes
const char* const kB64_32 = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // 32 bytes 00..1f

std::string secret_hex(const xproxy::Key* k) {
    std::string out;
    char buf[3];
    for (std::size_t i = 0; i < k->secret.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%02x", k->secret.data()[i]);
        out += buf;
    }
    return out;
}

}  // namespace

TEST(KeyRing, ParseTable) {
    struct Row {
        std::string text;
        bool want_ok;
        std::size_t want_keys;
        const char* want_signing;
        const char* want_error;  // substring
    };
    const std::string h = kHex16, b = kB64_32;
    const Row rows[] = {
        {"k1 " + h + "\n", true, 1, "k1", ""},
        {"k1 " + h, true, 1, "k1", ""},  // no final LF
        {"# ring\n\n  k1\t" + h + "  # old\r\nk2 " + b + "\n", true, 2, "k1", ""},
        {"k2026.a_b-c " + b, true, 1, "k2026.a_b-c", ""},
        {std::string(32, 'k') + " " + h, true, 1, nullptr, ""},  // 32-char id
        {std::string(33, 'k') + " " + h, false, 0, nullptr, "line 1: key id"},
        {"k/1 " + h, false, 0, nullptr, "key id"},
        {"", false, 0, nullptr, "no key"},
        {"# only a comment\n\n", false, 0, nullptr, "no key"},
        {"k1\n", false, 0, nullptr, "line 1: expected"},
        {"k1 " + h + "\nk1 " + b, false, 0, nullptr, "line 2: key id 'k1' appears twice"},
        {"k1 000102030405060708090a0b0c0d0e0f", false, 0, nullptr, "hex: or base64:"},
        {"k1 hex:000102030405060708090a0b0c0d0e", false, 0, nullptr, "shorter than 16"},  // 15 bytes
        {"k1 hex:000102030405060708090a0b0c0d0e0", false, 0, nullptr, "even"},
        {"k1 hex:000102030405060708090a0b0c0d0e0g", false, 0, nullptr, "hex digit"},
        {"k1 hex:" + std::string(256, 'a'), true, 1, "k1", ""},  // 128 bytes
        {"k1 hex:" + std::string(258, 'a'), false, 0, nullptr, "longer than 128"},
        {"k1 base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", false, 0, nullptr, "padding"},
        {"k1 base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*=", false, 0, nullptr, "standard base64"},
        {"k1 base64:AAECAwQFBgcICQoLDA0ODw==", true, 1, "k1", ""},                 // 16 bytes
        {"k1 base64:AAECAwQFBgcICQoLDA0O", false, 0, nullptr, "shorter than 16"},  // 15 bytes
        {"k1 " + h + " extra", false, 0, nullptr, "unexpected text"},
        {"k1 " + h + "\nk\x01 " + h, false, 0, nullptr, "line 2: control"},
    };
    for (const auto& r : rows) {
        auto ring = KeyRing::parse(r.text);
        ASSERT_EQ(ring.has_value(), r.want_ok) << r.text << " -> " << ring.error();
        if (!r.want_ok) {
            EXPECT_NE(ring.error().find(r.want_error), std::string::npos) << ring.error();
            continue;
        }
        EXPECT_EQ(ring->size(), r.want_keys);
        if (r.want_signing) {
            EXPECT_EQ(ring->signing_key()->id, r.want_signing);
        }
    }
}

TEST(KeyRing, SecretsDecoded) {
    auto ring = KeyRing::parse(std::string("a ") + kHex16 + "\nb " + kB64_32 + "\n");
    ASSERT_TRUE(ring) << ring.error();
    EXPECT_EQ(secret_hex(ring->find("a")), "000102030405060708090a0b0c0d0e0f");
    EXPECT_EQ(secret_hex(ring->find("b")), "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    EXPECT_EQ(ring->find("c"), nullptr);
    EXPECT_EQ(ring->signing_key(), ring->find("a"));
    EXPECT_EQ(ring->ids(), (std::vector<std::string>{"a", "b"}));
    auto upper = KeyRing::parse("a hex:000102030405060708090A0B0C0D0E0F");
    ASSERT_TRUE(upper);
    EXPECT_EQ(secret_hex(upper->find("a")), "000102030405060708090a0b0c0d0e0f");
}

TEST(KeyRing, ErrorsNeverContainSecrets) {
    const std::string secret = "hex:0011223344556677889900112233445566778899zz";
    auto bad = KeyRing::parse("k1 " + secret);
    EXPECT_FALSE(bad);
    EXPECT_EQ(bad.error().find("0011223344"), std::string::npos) << bad.error();
    auto short_one = KeyRing::parse("k1 hex:00112233");
    EXPECT_FALSE(short_one);
    EXPECT_EQ(short_one.error().find("00112233"), std::string::npos) << short_one.error();
}

TEST(KeyRing, SecretBytesWipe) {
    const unsigned char raw[4] = {1, 2, 3, 4};
    static_assert(!std::is_copy_constructible_v<xproxy::SecretBytes>, "a secret is never copied by accident");
    static_assert(!std::is_copy_assignable_v<xproxy::SecretBytes>, "a secret is never copied by accident");
    xproxy::SecretBytes s, copy;
    s.assign(raw, 4);
    copy.assign(s.data(), s.size());
    EXPECT_EQ(copy.size(), 4u);
    s.wipe();
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(copy.data()[3], 4);
    xproxy::SecretBytes moved = std::move(copy);
    EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is defined empty
    EXPECT_EQ(moved.size(), 4u);
}

class KeyRingFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/xproxy-keyring-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/keys";
        std::ofstream(path_) << "# test ring\nk1 " << kHex16 << "\n";
    }
    void TearDown() override {
        ::unlink(path_.c_str());
        ::unlink((dir_ + "/fifo").c_str());
        ::rmdir(dir_.c_str());
    }
    std::string dir_, path_;
};

TEST_F(KeyRingFile, ModeRule) {
    struct Row {
        mode_t mode;
        bool want_ok;
        const char* want_mode_text;
    };
    const Row rows[] = {
        {0600, true, ""},      {0400, true, ""},      {0700, true, ""},      {0644, false, "0644"},
        {0640, false, "0640"}, {0604, false, "0604"}, {0620, false, "0620"}, {0602, false, "0602"},
        {0610, false, "0610"}, {0601, false, "0601"},
    };
    for (const auto& r : rows) {
        ASSERT_EQ(::chmod(path_.c_str(), r.mode), 0);
        auto ring = KeyRing::load_file(path_);
        const std::string err = ring ? "" : ring.error();
        EXPECT_EQ(ring.has_value(), r.want_ok) << std::oct << r.mode << " " << err;
        if (r.want_ok) {
            ASSERT_TRUE(ring);
            EXPECT_EQ(ring->signing_key()->id, "k1");
        } else {
            EXPECT_NE(err.find(path_), std::string::npos) << err;
            EXPECT_NE(err.find(std::string("mode ") + r.want_mode_text), std::string::npos) << err;
        }
    }
}

TEST_F(KeyRingFile, NotARegularFile) {
    std::string err;
    auto load = [&](const std::string& path) {
        auto ring = KeyRing::load_file(path);
        err = ring ? "" : ring.error();
        return ring.has_value();
    };
    EXPECT_FALSE(load(dir_));
    EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
    const std::string fifo = dir_ + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_FALSE(load(fifo));  // must not block on open
    EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
    EXPECT_FALSE(load(dir_ + "/missing"));
    EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
    EXPECT_NE(err.find(dir_ + "/missing"), std::string::npos) << err;
}

TEST_F(KeyRingFile, ParseErrorNamesPathAndLine) {
    std::ofstream(path_, std::ios::trunc) << "k1 " << kHex16 << "\nbroken\n";
    ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
    auto ring = KeyRing::load_file(path_);
    EXPECT_FALSE(ring);
    EXPECT_EQ(ring.error().rfind("key ring " + path_ + ": line 2:", 0), 0u) << ring.error();
}
