// xproxyd_body_buffer_test: the fast path's body copy: memory below the threshold, an
// unnamed file above it (nothing visible in the spool directory), exact read-back across
// the spill point, and every resource released by clear().
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "body_buffer.hpp"

using xproxy::xproxyd::BodyBuffer;

namespace {

std::string make_dir() {
    char tmpl[] = "/tmp/xproxyd-body-XXXXXX";
    char* d = mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    return d ? d : "";
}

int entries(const std::string& dir) {
    int n = 0;
    DIR* d = opendir(dir.c_str());
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n;
}

int open_fds() {
    int n = 0;
    DIR* d = opendir("/proc/self/fd");
    while (readdir(d)) ++n;
    closedir(d);
    return n;
}

std::string read_all(const BodyBuffer& b, std::size_t chunk) {
    std::string out;
    std::string tmp(chunk, '\0');
    std::uint64_t off = 0;
    for (;;) {
        long n = b.read_at(off, tmp.data(), tmp.size());
        if (n <= 0) break;
        out.append(tmp.data(), static_cast<std::size_t>(n));
        off += static_cast<std::uint64_t>(n);
    }
    return out;
}

}  // namespace

TEST(BodyBuffer, StaysInMemoryBelowThreshold) {
    auto dir = make_dir();
    BodyBuffer b(100, dir);
    std::string err;
    ASSERT_TRUE(b.append(std::string(60, 'a'), &err));
    ASSERT_TRUE(b.append(std::string(40, 'b'), &err));
    EXPECT_FALSE(b.spilled());
    EXPECT_EQ(b.size(), 100u);
    EXPECT_EQ(read_all(b, 7), std::string(60, 'a') + std::string(40, 'b'));
    rmdir(dir.c_str());
}

TEST(BodyBuffer, SpillsToAnUnnamedFileAndReadsBackExactly) {
    auto dir = make_dir();
    int fds_before = open_fds();
    std::string want;
    {
        BodyBuffer b(1000, dir);
        std::string err;
        for (int i = 0; i < 300; ++i) {
            std::string piece = std::to_string(i) + std::string(static_cast<std::size_t>(i % 13), 'z') + "\r\n";
            want += piece;
            ASSERT_TRUE(b.append(piece, &err)) << err;
        }
        EXPECT_TRUE(b.spilled());
        EXPECT_EQ(b.size(), want.size());
        EXPECT_LE(b.memory(), sizeof(std::string));  // the heap copy was released at the spill
        EXPECT_EQ(entries(dir), 0);                  // O_TMPFILE or unlinked: no name in the directory
        EXPECT_EQ(open_fds(), fds_before + 1);
        EXPECT_EQ(read_all(b, 333), want);
        b.clear();
        EXPECT_EQ(open_fds(), fds_before);  // file released as soon as the transaction ends
        EXPECT_EQ(b.size(), 0u);
        EXPECT_FALSE(b.spilled());
    }
    EXPECT_EQ(open_fds(), fds_before);
    rmdir(dir.c_str());
}

TEST(BodyBuffer, UnusableSpoolDirectoryFailsCleanly) {
    BodyBuffer b(4, "/nonexistent/xproxyd-spool");
    std::string err;
    EXPECT_TRUE(b.append("abc", &err));
    EXPECT_FALSE(b.append("defgh", &err));
    EXPECT_TRUE(b.failed());
    EXPECT_NE(err.find("/nonexistent/xproxyd-spool"), std::string::npos) << err;
    b.clear();
    EXPECT_FALSE(b.failed());
}
