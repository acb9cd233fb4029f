// secret_file_test: the one reader of shared key files (shim, xproxyd, xproxy-wire):
// what it accepts, what it refuses and with which words, and that a refusal leaves the
// destination as it was.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <xproxy/base/secret_file.hpp>

namespace {

struct Dir {
    std::string path;
    Dir() {
        char t[] = "/tmp/xproxy-secret-XXXXXX";
        path = mkdtemp(t);
    }
    ~Dir() {
        if (std::system(("rm -rf " + path).c_str()) != 0) ADD_FAILURE() << "cannot remove " << path;
    }
    std::string write(const std::string& name, const std::string& bytes, mode_t mode) {
        std::string p = path + "/" + name;
        std::ofstream(p, std::ios::binary) << bytes;
        chmod(p.c_str(), mode);
        return p;
    }
};

}  // namespace

TEST(SecretFile, AcceptsAndRefuses) {
    Dir d;
    const std::string key16 = "0123456789abcdef";
    const std::string link = d.path + "/link";
    ASSERT_EQ(symlink(d.write("target", key16, 0600).c_str(), link.c_str()), 0);
    struct Row {
        std::string name, path;
        std::size_t min;
        std::string want_key, want_error;  // want_error: a part of the message
    } rows[] = {
        {"newline dropped", d.write("nl", key16 + "\n", 0600), 16, key16, ""},
        {"only one newline", d.write("nl2", key16 + "\n\n", 0600), 16, key16 + "\n", ""},
        {"group may read", d.write("g", key16, 0640), 16, "",
         "must be a regular file of mode 0600 or tighter (has 0640"},
        {"symbolic link", link, 16, "", "cannot open " + link},
        {"directory", d.path, 1, "", "must be a regular file"},
        {"missing", d.path + "/none", 1, "", "cannot open " + d.path + "/none"},
        {"empty", d.write("e", "\n", 0600), 1, "", "is empty"},
        {"short", d.write("s", "short", 0600), 16, "", "holds fewer than 16 bytes"},
        {"short but enough here", d.write("s1", "short", 0600), 1, "short", ""},
        {"4095 bytes", d.write("max", std::string(4095, 'k'), 0600), 16, std::string(4095, 'k'), ""},
        {"4096 bytes", d.write("big", std::string(4096, 'k'), 0600), 16, "", "longer than 4095 bytes"},
    };
    for (const auto& r : rows) {
        xproxy::SecretBytes out;
        out.assign("previous", 8);
        std::string error;
        auto read = xproxy::read_secret_file(r.path, r.min);
        const bool ok = read.has_value();
        if (ok) out = std::move(*read);
        else error = read.error();
        EXPECT_EQ(ok, r.want_error.empty()) << r.name << ": " << error;
        if (ok) {
            EXPECT_EQ(out.view(), r.want_key) << r.name;
        } else {
            EXPECT_NE(error.find(r.want_error), std::string::npos) << r.name << ": " << error;
            EXPECT_EQ(out.view(), "previous") << r.name << ": a refusal leaves the destination alone";
            EXPECT_EQ(error.find(key16), std::string::npos) << r.name << ": the key is never in a message";
        }
    }
}
