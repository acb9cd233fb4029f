// body_buffer.hpp: the fast path's copy of a message body (doc/design.md, "The fast path"). The body is held in
// memory up to a threshold and spills to a private temporary file beyond it: O_TMPFILE
// in the spool directory (or mkostemp + unlink where O_TMPFILE is not supported), so the
// file never has a name another process could open and disappears with the descriptor.
// clear() releases both the memory and the file as soon as a transaction ends. The bytes
// in spill files count against a SpillQuota shared by all sessions: a body that would
// exceed it fails the buffer (over_quota()), and the transaction is refused, not lost.
//
// The memory part is a list of fixed-size chunks (BodyChunk), never reallocated or
// copied as it grows; past the threshold it goes to the file in one write and each
// further piece is one write. Chunks and the body path's read buffers (IoBlock) come from
// a per-thread cache of freed blocks, so a message in steady state allocates nothing and
// touches no page the system had to hand out afresh.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/base/unique_fd.hpp>

namespace xproxy::xproxyd {

// A block of Size bytes. Released blocks are kept, up to Keep per thread, for the next
// one taken on that thread (a block may be released on another thread than took it).
template <std::size_t Size, std::size_t Keep>
class PooledBlock {
public:
    static constexpr std::size_t kSize = Size;
    PooledBlock() : p_(take()) {}
    ~PooledBlock() { give(std::move(p_)); }
    PooledBlock(PooledBlock&& o) noexcept = default;
    PooledBlock& operator=(PooledBlock&& o) noexcept {
        if (this != &o) {
            give(std::move(p_));
            p_ = std::move(o.p_);
        }
        return *this;
    }
    char* data() const { return p_.get(); }
    // Blocks this thread holds for reuse (tests).
    static std::size_t cached() { return gone() ? 0 : cache().blocks.size(); }

private:
    // The thread's blocks; `gone` (trivially destructible, so valid to the thread's very
    // end) says the cache was destroyed with the thread: later releases just free.
    struct Cache {
        std::vector<std::unique_ptr<char[]>> blocks;
        ~Cache() { gone() = true; }
    };
    static bool& gone() {
        thread_local bool g = false;
        return g;
    }
    static Cache& cache() {
        thread_local Cache c;
        return c;
    }
    // Not inlined: a coroutine that takes or releases a block may resume on another
    // thread, and a compiler that keeps a thread_local's address across the suspension
    // (clang before 16) would then use the first thread's cache; inside a call of its
    // own the address is always this thread's.
    [[gnu::noinline]] static std::unique_ptr<char[]> take() {
        if (gone() || cache().blocks.empty()) return std::unique_ptr<char[]>(new char[Size]);
        Cache& c = cache();
        std::unique_ptr<char[]> p = std::move(c.blocks.back());
        c.blocks.pop_back();
        return p;
    }
    [[gnu::noinline]] static void give(std::unique_ptr<char[]> p) {
        if (!p || gone()) return;
        Cache& c = cache();
        if (c.blocks.size() >= Keep) return;  // p frees it
        if (c.blocks.empty()) c.blocks.reserve(Keep);
        c.blocks.push_back(std::move(p));
    }
    std::unique_ptr<char[]> p_;
};

// The body copy's chunks (a thread keeps up to 2 MiB of them) and the body path's read
// and decode buffers (up to 3 MiB): 64 KiB, and room for what decoding adds to one
// canonical read plus the final dot.
using BodyChunk = PooledBlock<16384, 128>;
using IoBlock = PooledBlock<65536 + 16, 48>;

// Bytes in spill files across all sessions (any thread), at most `limit`.
class SpillQuota {
public:
    explicit SpillQuota(std::uint64_t limit) : limit_(limit) {}
    bool reserve(std::uint64_t n);
    void release(std::uint64_t n);  // n: at most what was reserved
    std::uint64_t used() const { return used_.load(); }
    std::uint64_t limit() const { return limit_; }

private:
    const std::uint64_t limit_;
    std::atomic<std::uint64_t> used_{0};
};

class BodyBuffer {
public:
    // quota: nullptr for no limit.
    BodyBuffer(std::size_t threshold, std::string spool_dir, SpillQuota* quota = nullptr)
        : threshold_(threshold), dir_(std::move(spool_dir)), quota_(quota) {}
    ~BodyBuffer() { clear(); }
    BodyBuffer(const BodyBuffer&) = delete;
    BodyBuffer& operator=(const BodyBuffer&) = delete;

    // Appends bytes; spills to the file when the threshold would be crossed. false with
    // *error when the file cannot be created or written (the buffer is then unusable
    // until clear()).
    bool append(std::string_view data, std::string* error);
    // Copies up to n bytes from offset `off` into buf (across chunks); returns the count
    // (0 at the end), or -1 on a read error.
    long read_at(std::uint64_t off, char* buf, std::size_t n) const;
    std::uint64_t size() const { return size_; }
    bool spilled() const { return static_cast<bool>(fd_); }
    bool failed() const { return failed_; }
    bool over_quota() const { return over_quota_; }
    // Heap bytes held: the chunks, at most the threshold rounded up to a chunk.
    std::size_t memory() const { return chunks_.size() * BodyChunk::kSize; }
    void clear();

private:
    bool spill(std::string* error);
    bool reserve(std::uint64_t n, std::string* error);
    std::size_t threshold_;
    std::string dir_;
    SpillQuota* quota_;
    std::uint64_t reserved_ = 0;  // of quota_, for the bytes in the file
    bool over_quota_ = false;
    std::vector<BodyChunk> chunks_;  // the copy while in memory: size_ bytes, the last chunk partly filled
    UniqueFd fd_;                    // the spill file, once spilled
    std::uint64_t size_ = 0;
    bool failed_ = false;
};

}  // namespace xproxy::xproxyd
