// keyring_edit_test: the key ring text edits of xproxy-wire keyring-* (add as the second or
// first key, promote, retire and its refusals, duplicate ids, comments kept), generated
// ids and secrets, and the file side: exclusive creation with its mode, replacement that
// keeps owner and mode, the lock.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "keyring_edit.hpp"
#include "keyring_file.hpp"
#include <xproxy/base/keyring.hpp>

using xproxy::KeyRing;
using xproxy::SecretBytes;
using namespace xproxy::keyring_tool;

namespace {

const char* const kHex16 = "hex:000102030405060708090a0b0c0d0e0f";                  // 16 bytes
const char* const kB64_32 = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // 32 bytes

SecretBytes secret(std::string_view s) {
    SecretBytes out;
    out.assign(s.data(), s.size());
    return out;
}

std::string text_of(const KeyRingText& r) { return std::string(r.render().view()); }

KeyRingText parsed(const std::string& text) {
    auto r = KeyRingText::parse(text);
    EXPECT_TRUE(r) << r.error();
    return std::move(*r);
}

std::string ids(const KeyRingText& r) {
    std::string out;
    for (const auto& k : r.keys()) out += (out.empty() ? "" : ",") + k.id;
    return out;
}

const std::string kRing = "# trace keys\nold " + std::string(kB64_32) + "  # since 2025\n\n# retired soon\nolder " +
                          kHex16 + "\n";

}  // namespace

TEST(KeyRingToolEdit, ParseRefusesWhatTheDaemonsRefuseNamingTheLine) {
    auto r = KeyRingText::parse("k1 " + std::string(kHex16) + "\n# c\nk2 hex:0011\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("line 3: "), std::string::npos) << r.error();
    EXPECT_EQ(r.error().find("0011"), std::string::npos) << r.error();
    EXPECT_FALSE(KeyRingText::parse("# nothing\n"));
    EXPECT_FALSE(KeyRingText::parse("k1 " + std::string(kHex16) + "\nk1 " + kB64_32 + "\n"));
}

TEST(KeyRingToolEdit, RenderKeepsEveryLine) {
    EXPECT_EQ(text_of(parsed(kRing)), kRing);
    // a last line without LF gets one
    EXPECT_EQ(text_of(parsed("k1 " + std::string(kHex16))), "k1 " + std::string(kHex16) + "\n");
}

TEST(KeyRingToolEdit, AddIsTheSecondKeyByDefault) {
    auto r = parsed(kRing);
    ASSERT_TRUE(r.add("new", secret(kHex16), Where::second));
    EXPECT_EQ(ids(r), "old,new,older");
    EXPECT_EQ(text_of(r), "# trace keys\nold " + std::string(kB64_32) + "  # since 2025\nnew " + kHex16 +
                              "\n\n# retired soon\nolder " + kHex16 + "\n");
    const auto ring = KeyRing::parse(text_of(r));
    ASSERT_TRUE(ring) << ring.error();
    EXPECT_EQ(ring->signing_key()->id, "old");
    ASSERT_NE(ring->find("new"), nullptr);
}

TEST(KeyRingToolEdit, AddFirstSigns) {
    auto r = parsed(kRing);
    ASSERT_TRUE(r.add("new", secret(kB64_32), Where::first));
    EXPECT_EQ(ids(r), "new,old,older");
    EXPECT_EQ(text_of(r).rfind("# trace keys\nnew ", 0), 0U);  // after the header comment
    EXPECT_EQ(KeyRing::parse(text_of(r))->signing_key()->id, "new");
}

TEST(KeyRingToolEdit, AddRefusesDuplicateAndBadInput) {
    auto r = parsed(kRing);
    auto dup = r.add("older", secret(kHex16), Where::second);
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().find("'older' is already in the key ring (line 5)"), std::string::npos) << dup.error();
    EXPECT_FALSE(r.add("bad/id", secret(kHex16), Where::second));
    EXPECT_FALSE(r.add(std::string(33, 'k'), secret(kHex16), Where::second));
    auto shrt = r.add("k", secret("hex:0011223344"), Where::second);
    ASSERT_FALSE(shrt);
    EXPECT_NE(shrt.error().find("shorter than 16"), std::string::npos) << shrt.error();
    EXPECT_EQ(shrt.error().find("0011223344"), std::string::npos) << shrt.error();
    // a '#' would make the rest a comment, white space extra text: both refused
    EXPECT_FALSE(r.add("k", secret(std::string(kHex16) + "#x"), Where::second));
    EXPECT_FALSE(r.add("k", secret(std::string(kHex16) + " x"), Where::second));
    EXPECT_FALSE(r.add("k", secret("0001020304050607"), Where::second));
    EXPECT_EQ(text_of(r), kRing);  // untouched by the refusals
}

TEST(KeyRingToolEdit, AddKeepsCrLf) {
    auto r = parsed("k1 " + std::string(kHex16) + "\r\n");
    ASSERT_TRUE(r.add("k2", secret(kHex16), Where::second));
    EXPECT_EQ(text_of(r), "k1 " + std::string(kHex16) + "\r\nk2 " + kHex16 + "\r\n");
}

TEST(KeyRingToolEdit, PromoteMovesTheLineWithItsComment) {
    auto r = parsed(kRing);
    auto moved = r.promote("older");
    ASSERT_TRUE(moved);
    EXPECT_TRUE(*moved);
    EXPECT_EQ(ids(r), "older,old");
    EXPECT_EQ(text_of(r),
              "# trace keys\nolder " + std::string(kHex16) + "\nold " + kB64_32 + "  # since 2025\n\n# retired soon\n");
    auto again = r.promote("older");
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);
    EXPECT_FALSE(r.promote("nosuch"));
}

TEST(KeyRingToolEdit, RetireRefusesTheSigningKeyAndTheOnlyKey) {
    auto r = parsed(kRing);
    auto signing = r.retire("old", false);
    ASSERT_FALSE(signing);
    EXPECT_NE(signing.error().find("signing"), std::string::npos);
    EXPECT_FALSE(r.retire("nosuch", true));
    ASSERT_TRUE(r.retire("older", false));
    EXPECT_EQ(text_of(r), "# trace keys\nold " + std::string(kB64_32) + "  # since 2025\n\n# retired soon\n");
    auto only = r.retire("old", true);
    ASSERT_FALSE(only);
    EXPECT_NE(only.error().find("only key"), std::string::npos);
}

TEST(KeyRingToolEdit, RetireForceRemovesTheSigningKey) {
    auto r = parsed(kRing);
    ASSERT_TRUE(r.retire("old", true));
    EXPECT_EQ(ids(r), "older");
    EXPECT_EQ(KeyRing::parse(text_of(r))->signing_key()->id, "older");
}

TEST(KeyRingToolEdit, KeysListPositionIdSizeLine) {
    const auto keys = parsed(kRing).keys();
    ASSERT_EQ(keys.size(), 2U);
    EXPECT_EQ(keys[0].position, 1U);
    EXPECT_EQ(keys[0].id, "old");
    EXPECT_EQ(keys[0].bytes, 32U);
    EXPECT_EQ(keys[0].line, 2U);
    EXPECT_EQ(keys[1].position, 2U);
    EXPECT_EQ(keys[1].id, "older");
    EXPECT_EQ(keys[1].bytes, 16U);
    EXPECT_EQ(keys[1].line, 5U);
}

TEST(KeyRingToolEdit, FreshRingHasTheHeaderThenTheKey) {
    auto r = KeyRingText::fresh();
    EXPECT_EQ(r.key_count(), 0U);
    ASSERT_TRUE(r.add("k1", secret(kB64_32), Where::second));
    EXPECT_EQ(text_of(r), std::string(kHeaderComment) + "\nk1 " + kB64_32 + "\n");
    EXPECT_EQ(kHeaderComment.front(), '#');
}

TEST(KeyRingToolEdit, GeneratedIds) {
    EXPECT_EQ(default_key_id(0), "k19700101");
    EXPECT_EQ(default_key_id(1796515200), "k20261206");  // 2026-12-06T00:00:00Z
    EXPECT_EQ(default_key_id(1796515199), "k20261205");
    EXPECT_TRUE(KeyRing::valid_id(default_key_id(4102444800)));  // 2100-01-01
    auto r = parsed("k20261206 " + std::string(kHex16) + "\nk20261206-2 " + kHex16 + "\n");
    EXPECT_EQ(r.unused_id("k20261206"), "k20261206-3");
    EXPECT_EQ(r.unused_id("k20261207"), "k20261207");
}

TEST(KeyRingToolEdit, RandomSecretsAndTheirEncoding) {
    EXPECT_FALSE(random_secret(15));
    EXPECT_FALSE(random_secret(129));
    for (const std::size_t n : {std::size_t{16}, std::size_t{32}, std::size_t{33}, std::size_t{128}}) {
        auto s = random_secret(n);
        ASSERT_TRUE(s);
        EXPECT_EQ(s->size(), n);
        const SecretBytes spec = encode_secret(*s);
        const auto ring = KeyRing::parse("k " + std::string(spec.view()));
        ASSERT_TRUE(ring) << ring.error();
        EXPECT_EQ(ring->signing_key()->secret.view(), s->view());  // decodes back to the same bytes
    }
    EXPECT_NE(random_secret(32)->view(), random_secret(32)->view());
}

TEST(KeyRingToolEdit, ModesTheDaemonsAccept) {
    EXPECT_EQ(*parse_key_ring_mode("0600"), 0600U);
    EXPECT_EQ(*parse_key_ring_mode("600"), 0600U);
    EXPECT_EQ(*parse_key_ring_mode("0400"), 0400U);
    for (const char* bad : {"0640", "0644", "0604", "0700", "", "abc", "06000", "0o600"}) {
        auto m = parse_key_ring_mode(bad);
        EXPECT_FALSE(m) << bad;
    }
    EXPECT_NE(parse_key_ring_mode("0640").error().find("0600 or 0400"), std::string::npos);
}

// The file side, in a private directory.
class KeyRingToolFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/keyring-edit-test.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/trace.keys";
    }
    void TearDown() override {
        const std::string cmd = "rm -rf '" + dir_ + "'";
        ASSERT_EQ(std::system(cmd.c_str()), 0);
    }
    static std::string read(const std::string& p) {
        std::ifstream f(p);
        std::stringstream s;
        s << f.rdbuf();
        return s.str();
    }
    std::size_t entries() const {
        const std::string cmd = "test $(ls -A '" + dir_ + "' | wc -l) -eq 1";
        return std::system(cmd.c_str()) == 0 ? 1 : 0;
    }
    std::string dir_, path_;
};

TEST_F(KeyRingToolFile, CreateSetsTheModeAndNeverReplaces) {
    const FileIdentity id{::geteuid(), ::getegid(), 0400};
    auto c = create_new_file(path_, secret("k1 " + std::string(kHex16) + "\n"), id);
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ(*c, CreateOutcome::created);
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0400U);
    EXPECT_EQ(read(path_), "k1 " + std::string(kHex16) + "\n");
    auto again = create_new_file(path_, secret("other\n"), FileIdentity{::geteuid(), ::getegid(), 0600});
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, CreateOutcome::exists);
    EXPECT_EQ(read(path_), "k1 " + std::string(kHex16) + "\n");
    EXPECT_EQ(entries(), 1U);  // no temporary file left behind
    ASSERT_TRUE(KeyRing::load_file(path_));
}

TEST_F(KeyRingToolFile, ReplaceKeepsTheModeUnderTheLock) {
    ASSERT_TRUE(create_new_file(path_, secret("k1 " + std::string(kHex16) + "\n"),
                                FileIdentity{::geteuid(), ::getegid(), 0400}));
    struct stat before {};
    ASSERT_EQ(::stat(path_.c_str(), &before), 0);
    {
        auto locked = LockedKeyRing::lock(path_);
        ASSERT_TRUE(locked) << locked.error();
        ASSERT_TRUE(locked->replace(secret("k2 " + std::string(kB64_32) + "\n")));
    }
    struct stat after {};
    ASSERT_EQ(::stat(path_.c_str(), &after), 0);
    EXPECT_EQ(after.st_mode & 07777, 0400U);
    EXPECT_EQ(after.st_uid, before.st_uid);
    EXPECT_EQ(after.st_gid, before.st_gid);
    EXPECT_NE(after.st_ino, before.st_ino);  // a new file, renamed over the old one
    EXPECT_EQ(read(path_), "k2 " + std::string(kB64_32) + "\n");
    EXPECT_EQ(entries(), 1U);
}

TEST_F(KeyRingToolFile, ReadRefusesAModeTheDaemonsRefuse) {
    ASSERT_TRUE(create_new_file(path_, secret("k1 " + std::string(kHex16) + "\n"),
                                FileIdentity{::geteuid(), ::getegid(), 0600}));
    ASSERT_EQ(::chmod(path_.c_str(), 0640), 0);
    auto strict = read_key_ring_text(path_, true);
    ASSERT_FALSE(strict);
    EXPECT_NE(strict.error().find("has mode 0640"), std::string::npos) << strict.error();
    EXPECT_TRUE(read_key_ring_text(path_, false));
    EXPECT_FALSE(read_key_ring_text(dir_ + "/missing", false));
}

// The service user owns the key ring and can hold a lock on it: root's command gives up
// instead of waiting for ever, and the file stays as it was.
TEST_F(KeyRingToolFile, LockGivesUpWhenAnotherHolderKeepsIt) {
    ASSERT_TRUE(create_new_file(path_, secret("k1 " + std::string(kHex16) + "\n"),
                                FileIdentity{::geteuid(), ::getegid(), 0600}));
    const int holder = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(holder, 0);
    ASSERT_EQ(::flock(holder, LOCK_EX), 0);
    auto locked = LockedKeyRing::lock(path_, std::chrono::milliseconds(200));
    ASSERT_FALSE(locked);
    EXPECT_NE(locked.error().find("another process has held its lock"), std::string::npos) << locked.error();
    ::close(holder);
    EXPECT_TRUE(LockedKeyRing::lock(path_, std::chrono::milliseconds(200)));
    EXPECT_EQ(read(path_), "k1 " + std::string(kHex16) + "\n");
}

TEST_F(KeyRingToolFile, LockFollowsASymbolicLinkToTheFile) {
    ASSERT_TRUE(create_new_file(path_, secret("k1 " + std::string(kHex16) + "\n"),
                                FileIdentity{::geteuid(), ::getegid(), 0600}));
    const std::string link = dir_ + "/link.keys";
    ASSERT_EQ(::symlink(path_.c_str(), link.c_str()), 0);
    auto locked = LockedKeyRing::lock(link);
    ASSERT_TRUE(locked) << locked.error();
    ASSERT_TRUE(locked->replace(secret("k2 " + std::string(kHex16) + "\n")));
    struct stat st {};
    ASSERT_EQ(::lstat(link.c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));  // the link stays a link
    EXPECT_EQ(read(link), "k2 " + std::string(kHex16) + "\n");
}
