// body_buffer.hpp: the fast path's copy of a message body (doc/design.md, "The fast path"). The body is held in
// memory up to a threshold and spills to a private temporary file beyond it: O_TMPFILE
// in the spool directory (or mkostemp + unlink where O_TMPFILE is not supported), so the
// file never has a name another process could open and disappears with the descriptor.
// clear() releases both the memory and the file as soon as a transaction ends. The bytes
// in spill files count against a SpillQuota shared by all sessions: a body that would
// exceed it fails the buffer (over_quota()), and the transaction is refused, not lost.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <xproxy/base/unique_fd.hpp>

namespace xproxy::xproxyd {

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
    // Copies up to n bytes from offset `off` into buf; returns the count (0 at the end),
    // or -1 on a read error.
    long read_at(std::uint64_t off, char* buf, std::size_t n) const;
    std::uint64_t size() const { return size_; }
    bool spilled() const { return static_cast<bool>(fd_); }
    bool failed() const { return failed_; }
    bool over_quota() const { return over_quota_; }
    std::size_t memory() const { return mem_.capacity(); }
    void clear();

private:
    bool spill(std::string* error);
    bool reserve(std::uint64_t n, std::string* error);
    std::size_t threshold_;
    std::string dir_;
    SpillQuota* quota_;
    std::uint64_t reserved_ = 0;  // of quota_, for the bytes in the file
    bool over_quota_ = false;
    std::string mem_;
    UniqueFd fd_;  // the spill file, once spilled
    std::uint64_t size_ = 0;
    bool failed_ = false;
};

}  // namespace xproxy::xproxyd
