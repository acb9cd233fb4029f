// file_loader_test: the one reader of configuration and secret files. What it refuses (a
// link, a FIFO without hanging, a directory, forbidden mode bits, a file too large, a
// foreign owner) and with which words, and what it reads (text and secrets alike).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <type_traits>

#include <xproxy/base/file_loader.hpp>

namespace {

using xproxy::FileRefusal;
using xproxy::FileRules;

struct Dir {
    std::string path;
    Dir() {
        char t[] = "/tmp/xproxy-loader-XXXXXX";
        path = mkdtemp(t);
    }
    ~Dir() {
        if (std::system(("rm -rf " + path).c_str()) != 0) ADD_FAILURE() << "cannot remove " << path;
    }
    std::string write(const std::string& name, const std::string& bytes, mode_t mode) {
        const std::string p = path + "/" + name;
        std::ofstream(p, std::ios::binary) << bytes;
        chmod(p.c_str(), mode);
        return p;
    }
};

constexpr FileRules kSecret{64, 077, false, false};
constexpr FileRules kText{64, 0, false, false};

}  // namespace

static_assert(!std::is_copy_constructible_v<xproxy::SecretBytes>);
static_assert(!std::is_copy_assignable_v<xproxy::SecretBytes>);
static_assert(std::is_nothrow_move_constructible_v<xproxy::SecretBytes>);

TEST(FileLoader, RefusesAndReads) {
    Dir d;
    const std::string link = d.path + "/link";
    ASSERT_EQ(symlink(d.write("target", "abc", 0600).c_str(), link.c_str()), 0);
    const std::string fifo = d.path + "/fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    FileRules follow = kText;
    follow.follow_links = true;
    FileRules root_or_me = kSecret;
    root_or_me.owner_root_or_euid = true;
    struct Row {
        std::string name, path;
        FileRules rules;
        std::string want_text;  // when want_error is empty
        FileRefusal::Reason want_reason;
        std::string want_error;  // the whole message
    } rows[] = {
        {"good secret", d.write("s", "secret\n", 0600), kSecret, "secret\n", {}, ""},
        {"good text, any mode", d.write("t", "text", 0644), kText, "text", {}, ""},
        {"empty", d.write("e", "", 0600), kSecret, "", {}, ""},
        {"exactly max_size", d.write("m", std::string(64, 'x'), 0600), kSecret, std::string(64, 'x'), {}, ""},
        {"owner root or me", d.write("o", "mine", 0600), root_or_me, "mine", {}, ""},
        {"link followed when allowed", link, follow, "abc", {}, ""},
        {"symbolic link", link, kSecret, "", FileRefusal::Reason::open,
         link + ": cannot read: Too many levels of symbolic links"},
        {"fifo", fifo, kSecret, "", FileRefusal::Reason::not_regular, fifo + ": not a regular file (mode 0600)"},
        {"directory", d.path, kText, "", FileRefusal::Reason::not_regular, d.path + ": not a regular file (mode 0700)"},
        {"missing", d.path + "/none", kText, "", FileRefusal::Reason::open,
         d.path + "/none: cannot read: No such file or directory"},
        {"group may read", d.write("g", "k", 0640), kSecret, "", FileRefusal::Reason::mode,
         d.path + "/g: has mode 0640 (bits 0077 must be clear)"},
        {"others may write", d.write("w", "k", 0602), kSecret, "", FileRefusal::Reason::mode,
         d.path + "/w: has mode 0602 (bits 0077 must be clear)"},
        {"too big", d.write("b", std::string(65, 'x'), 0600), kSecret, "", FileRefusal::Reason::too_big,
         d.path + "/b: larger than 64 bytes"},
    };
    for (const auto& r : rows) {
        FileRefusal why;
        why.reason = FileRefusal::Reason::changed;  // overwritten on refusal
        const auto text = xproxy::load_text_file(r.path, r.rules, &why);
        const auto secret = xproxy::load_secret_file(r.path, r.rules);
        ASSERT_EQ(text.has_value(), r.want_error.empty()) << r.name << ": " << (text ? "" : text.error());
        ASSERT_EQ(secret.has_value(), r.want_error.empty()) << r.name;
        if (text) {
            EXPECT_EQ(*text, r.want_text) << r.name;
            EXPECT_EQ(secret->view(), r.want_text) << r.name;
        } else {
            EXPECT_EQ(text.error(), r.want_error) << r.name;
            EXPECT_EQ(secret.error(), r.want_error) << r.name;
            EXPECT_EQ(why.reason, r.want_reason) << r.name;
        }
    }
}

// Only root can give a file away; as root, a file of another user is refused when the
// rules ask for root or the effective uid, and accepted otherwise.
TEST(FileLoader, OwnerRule) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
    Dir d;
    const std::string p = d.write("foreign", "k", 0600);
    ASSERT_EQ(::chown(p.c_str(), 12345, 12345), 0);
    FileRules rules = kSecret;
    EXPECT_TRUE(xproxy::load_secret_file(p, rules));
    rules.owner_root_or_euid = true;
    FileRefusal why;
    const auto s = xproxy::load_secret_file(p, rules, &why);
    ASSERT_FALSE(s);
    EXPECT_EQ(why.reason, FileRefusal::Reason::owner);
    EXPECT_EQ(why.owner, 12345u);
    EXPECT_EQ(s.error(), p + ": belongs to uid 12345, neither root nor uid 0");
}

TEST(FileLoader, LocatedErrorAndLoadAndParse) {
    EXPECT_EQ(xproxy::located_error("/etc/x", "line 3: bad"), "/etc/x:3: bad");
    EXPECT_EQ(xproxy::located_error("/etc/x", "no key"), "/etc/x: no key");
    Dir d;
    const std::string p = d.write("f", "one\ntwo\n", 0644);
    auto count_lines = [](std::string_view text) -> xproxy::Expected<int> {
        int n = 0;
        for (char c : text) n += c == '\n';
        if (n > 1) return xproxy::Failure{"line 2: too many lines"};
        return n;
    };
    const auto r = xproxy::load_and_parse(p, xproxy::kConfigFileRules, count_lines);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), p + ":2: too many lines");
    const auto missing = xproxy::load_and_parse(d.path + "/none", xproxy::kConfigFileRules, count_lines);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), d.path + "/none: cannot read: No such file or directory");
}

TEST(SecretBytes, PrepareTruncateWipe) {
    xproxy::SecretBytes s;
    char* p = s.prepare(8);
    for (int i = 0; i < 8; ++i) p[i] = static_cast<char>('a' + i);
    s.truncate(3);
    EXPECT_EQ(s.view(), "abc");
    s.truncate(10);  // never grows
    EXPECT_EQ(s.view(), "abc");
    xproxy::SecretBytes moved = std::move(s);
    EXPECT_TRUE(s.empty());  // NOLINT(bugprone-use-after-move): moved-from is defined empty
    EXPECT_EQ(moved.view(), "abc");
    moved.wipe();
    EXPECT_TRUE(moved.empty());
}
