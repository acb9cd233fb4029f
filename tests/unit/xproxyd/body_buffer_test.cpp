// xproxyd_body_buffer_test: the fast path's body copy: memory below the threshold (in
// fixed chunks, read back across their boundaries), an unnamed file above it (nothing
// visible in the spool directory), exact read-back across the spill point, every resource
// released by clear(), and the block cache behind the chunks.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "body_buffer.hpp"

using xproxy::xproxyd::BodyBuffer;
using xproxy::xproxyd::BodyChunk;

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

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
    return s;
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
        EXPECT_EQ(b.memory(), 0u);   // the chunks were released at the spill
        EXPECT_EQ(entries(dir), 0);  // O_TMPFILE or unlinked: no name in the directory
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

// In memory the copy is a list of fixed chunks: pieces that straddle chunk boundaries,
// and reads of every awkward size and offset, give back exactly what went in.
TEST(BodyBuffer, ChunksReadBackAcrossTheirBoundaries) {
    auto dir = make_dir();
    const std::size_t k = BodyChunk::kSize;
    BodyBuffer b(5 * k, dir);
    std::string want, err;
    for (std::size_t n : {std::size_t{1}, k - 1, std::size_t{2}, k, k + 1, std::size_t{3}, 2 * k - 7}) {
        const std::string piece = pattern(n, static_cast<unsigned>(want.size()));
        ASSERT_TRUE(b.append(piece, &err)) << err;
        want += piece;
    }
    ASSERT_FALSE(b.spilled());
    ASSERT_EQ(b.size(), want.size());
    EXPECT_EQ(b.memory(), (want.size() + k - 1) / k * k);  // whole chunks, no spare capacity
    for (std::size_t step : {std::size_t{1}, std::size_t{7}, k - 1, k, k + 1, 3 * k})
        EXPECT_EQ(read_all(b, step), want);
    for (std::size_t off : {std::size_t{0}, k - 1, k, k + 1, 2 * k - 2, want.size() - 1}) {
        std::string got(2 * k + 5, '#');
        const long n = b.read_at(off, got.data(), got.size());
        const std::size_t expect = std::min(got.size(), want.size() - off);
        ASSERT_EQ(n, static_cast<long>(expect)) << off;
        EXPECT_EQ(got.substr(0, expect), want.substr(off, expect)) << off;
    }
    char c;
    EXPECT_EQ(b.read_at(want.size(), &c, 1), 0);
    b.clear();
    EXPECT_EQ(b.memory(), 0u);
    rmdir(dir.c_str());
}

// Exactly the threshold stays in memory; one byte more goes to the file with everything
// before it, across chunk boundaries.
TEST(BodyBuffer, SpillsOneByteAfterTheThreshold) {
    auto dir = make_dir();
    const std::size_t threshold = 2 * BodyChunk::kSize + 100;
    BodyBuffer b(threshold, dir);
    std::string err;
    const std::string all = pattern(threshold + 1 + BodyChunk::kSize, 9);
    ASSERT_TRUE(b.append(std::string_view(all).substr(0, threshold - 50), &err)) << err;
    ASSERT_TRUE(b.append(std::string_view(all).substr(threshold - 50, 50), &err)) << err;
    EXPECT_FALSE(b.spilled());
    EXPECT_EQ(b.memory(), 3 * BodyChunk::kSize);
    ASSERT_TRUE(b.append(std::string_view(all).substr(threshold, 1), &err)) << err;
    EXPECT_TRUE(b.spilled());
    EXPECT_EQ(b.memory(), 0u);
    ASSERT_TRUE(b.append(std::string_view(all).substr(threshold + 1), &err)) << err;
    EXPECT_EQ(read_all(b, 4093), all);
    b.clear();
    rmdir(dir.c_str());
}

// Released blocks are kept for the next taker on the thread, up to the cache's bound.
TEST(PooledBlock, ReleasedBlocksAreReused) {
    using Small = xproxy::xproxyd::PooledBlock<64, 2>;
    char* first;
    {
        Small a;
        first = a.data();
    }
    EXPECT_EQ(Small::cached(), 1u);
    {
        Small b;
        EXPECT_EQ(b.data(), first);
        EXPECT_EQ(Small::cached(), 0u);
        Small c, d, e;
        Small moved(std::move(c));
        EXPECT_EQ(c.data(), nullptr);
        moved = std::move(d);  // moved's own block goes back
        EXPECT_EQ(Small::cached(), 1u);
    }
    EXPECT_EQ(Small::cached(), 2u);  // at most Keep; the rest was freed
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
