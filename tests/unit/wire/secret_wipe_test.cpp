// wire_secret_wipe_test: no heap block that the key ring or the codecs free still holds a secret. This test
// program replaces operator new and delete; while a scan is on, every block given back
// is searched for the secrets of a key ring (raw bytes, and the hex / base64 text of the
// file) before it is freed. It loads, moves and drops key rings, signs and
// verifies with them, and parses rings that fail after a good key.
//
// Memory that OpenSSL allocates itself (CRYPTO_malloc) is not seen here; OpenSSL clears
// its copies of MAC keys when a context is freed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include <xproxy/base/keyring.hpp>
#include <xproxy/wire/proxy_protocol.hpp>
#include <xproxy/wire/trace_header.hpp>

namespace {

// The secrets, and how a key ring file writes them. Static storage, never on the heap.
constexpr std::string_view kRaw1 = "xproxy-secret-marker-0123456789!";  // 32 bytes
constexpr std::string_view kB64 = "eHByb3h5LXNlY3JldC1tYXJrZXItMDEyMzQ1Njc4OSE=";
constexpr std::string_view kRaw2 = "wipe-me-please!!";  // 16 bytes
constexpr std::string_view kHex = "776970652d6d652d706c656173652121";
constexpr std::string_view kNeedles[] = {kRaw1.substr(0, 12), kRaw1.substr(20),    kB64.substr(0, 16),
                                         kB64.substr(24, 16), kRaw2.substr(0, 12), kHex.substr(0, 16),
                                         kHex.substr(16)};

std::atomic<bool> g_scan{false};
std::atomic<int> g_found{0};

void scan(void* p) {
    if (!p || !g_scan.load(std::memory_order_relaxed)) return;
    const std::string_view block(static_cast<const char*>(p), malloc_usable_size(p));
    for (std::string_view needle : kNeedles)
        if (block.find(needle) != std::string_view::npos) g_found.fetch_add(1, std::memory_order_relaxed);
}

void* allocate(std::size_t n) {
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}

// A ring file written with write(2) from static text, so that the test itself leaves no
// heap copy of a secret.
void write_ring(const char* path, std::string_view tail) {
    const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    for (std::string_view part :
         {std::string_view("k1 base64:"), kB64, std::string_view("\nk2 hex:"), kHex, std::string_view("\n"), tail})
        ASSERT_EQ(::write(fd, part.data(), part.size()), static_cast<ssize_t>(part.size()));
    ::close(fd);
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void operator delete(void* p) noexcept {
    scan(p);
    std::free(p);
}
void operator delete[](void* p) noexcept {
    scan(p);
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    scan(p);
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    scan(p);
    std::free(p);
}

TEST(SecretWipe, KeyRingLeavesNoSecretInFreedMemory) {
    char path[] = "/tmp/xproxy-wipe-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    write_ring(path, "");

    g_found = 0;
    g_scan = true;
    {
        auto ring = xproxy::KeyRing::load_file(path);
        ASSERT_TRUE(ring) << ring.error();
        ASSERT_EQ(ring->size(), 2u);
        ASSERT_EQ(std::string_view(reinterpret_cast<const char*>(ring->find("k1")->secret.data()),
                                   ring->find("k1")->secret.size()),
                  kRaw1);
        auto second = xproxy::KeyRing::load_file(path);  // rings are move-only: a second load
        ASSERT_TRUE(second) << second.error();
        xproxy::KeyRing copy = std::move(*second);
        xproxy::KeyRing moved = std::move(copy);
        copy = std::move(moved);
        moved = std::move(*ring);

        xproxy::SourceInfo s;
        s.helo = "client.example";
        const xproxy::MessageBinding b{xproxy::TraceBinding::envelope, "", "alice@example.org"};
        const std::string v = xproxy::sign_trace_header(s, "by.example", 1790000000, b, moved);
        EXPECT_TRUE(xproxy::verify_trace_header(v, b, copy, 1790000000, 60).ok());
    }
    write_ring(path, "k3 hex:zz\n");  // a bad line after the good keys: the ring is dropped
    { EXPECT_FALSE(xproxy::KeyRing::load_file(path)); }
    g_scan = false;
    ::unlink(path);
    EXPECT_EQ(g_found.load(), 0) << "freed heap blocks that still held a secret";
}

// The scan itself finds a secret in a block freed unwiped (the test can fail).
TEST(SecretWipe, ScanSeesAnUnwipedBlock) {
    g_found = 0;
    g_scan = true;
    void* leak = ::operator new(64);  // a direct call: never elided
    std::memcpy(leak, kRaw1.data(), kRaw1.size());
    ::operator delete(leak);
    g_scan = false;
    EXPECT_GT(g_found.load(), 0);
}
