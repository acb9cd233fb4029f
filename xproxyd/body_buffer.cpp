// body_buffer.cpp: memory below the threshold, an anonymous file above; see the header.
#include "body_buffer.hpp"
#include "relay_metrics.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include <xproxy/base/invariant.hpp>

namespace xproxy::xproxyd {

namespace {

// n bytes at offset `off`.
bool write_all(int fd, const char* p, std::size_t n, std::uint64_t off) {
    while (n > 0) {
        ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
        off += static_cast<std::uint64_t>(w);
    }
    return true;
}

// The chunks' first n bytes at the file's start, in one pwritev where the system takes
// them all.
bool write_chunks(int fd, const std::vector<BodyChunk>& chunks, std::size_t n) {
    std::vector<iovec> iov;
    iov.reserve(chunks.size());
    for (const BodyChunk& c : chunks) {
        const std::size_t len = std::min(n, BodyChunk::kSize);
        if (len == 0) break;
        iov.push_back(iovec{c.data(), len});
        n -= len;
    }
    std::size_t i = 0;
    std::uint64_t off = 0;
    while (i < iov.size()) {
        ssize_t w = ::pwritev(fd, iov.data() + i, static_cast<int>(std::min<std::size_t>(iov.size() - i, IOV_MAX)),
                              static_cast<off_t>(off));
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        off += static_cast<std::uint64_t>(w);
        auto done = static_cast<std::size_t>(w);
        while (i < iov.size() && done >= iov[i].iov_len) done -= iov[i++].iov_len;
        if (i < iov.size()) {
            iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + done;
            iov[i].iov_len -= done;
        }
    }
    return true;
}

UniqueFd open_anonymous(const std::string& dir) {
#ifdef O_TMPFILE
    UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600));
    if (fd) return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return fd;
#endif
    std::string tmpl = dir + "/body.XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    UniqueFd fd2(::mkostemp(name.data(), O_CLOEXEC));
    if (fd2) ::unlink(name.data());
    return fd2;
}

}  // namespace

bool SpillQuota::reserve(std::uint64_t n) {
    std::uint64_t cur = used_.load();
    do {
        if (n > limit_ || cur > limit_ - n) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n));
    return true;
}

void SpillQuota::release(std::uint64_t n) {
    const std::uint64_t before = used_.fetch_sub(n);
    XPROXY_INVARIANT(before >= n);  // never more than was reserved
}

bool BodyBuffer::reserve(std::uint64_t n, std::string* error) {
    if (!quota_) return true;
    if (!quota_->reserve(n)) {
        if (error) *error = "spill quota of " + std::to_string(quota_->limit()) + " bytes exhausted";
        failed_ = over_quota_ = true;
        return false;
    }
    reserved_ += n;
    return true;
}

bool BodyBuffer::spill(std::string* error) {
    const auto held = static_cast<std::size_t>(size_);
    if (!reserve(held, error)) return false;
    fd_ = open_anonymous(dir_);
    if (!fd_ || !write_chunks(fd_.get(), chunks_, held)) {
        if (error) *error = "spill file in " + dir_ + ": " + std::strerror(errno);
        failed_ = true;
        return false;
    }
    std::vector<BodyChunk>().swap(chunks_);
    count_spill_file();
    count_spill_bytes(held);
    return true;
}

bool BodyBuffer::append(std::string_view data, std::string* error) {
    if (failed_) return false;
    if (!fd_ && size_ + data.size() > threshold_) {
        if (!spill(error)) return false;
    }
    if (fd_) {
        if (!reserve(data.size(), error)) return false;
        if (!write_all(fd_.get(), data.data(), data.size(), size_)) {
            if (error) *error = std::string("spill file write: ") + std::strerror(errno);
            failed_ = true;
            return false;
        }
        count_spill_bytes(data.size());
    } else {
        const char* p = data.data();
        std::size_t n = data.size();
        auto used = static_cast<std::size_t>(size_ % BodyChunk::kSize);  // in the last chunk
        if (used == 0 && n > 0) chunks_.emplace_back();                  // the last chunk is full (or there is none)
        while (n > 0) {
            const std::size_t k = std::min(n, BodyChunk::kSize - used);
            std::memcpy(chunks_.back().data() + used, p, k);
            p += k;
            n -= k;
            used = 0;
            if (n > 0) chunks_.emplace_back();
        }
    }
    size_ += data.size();
    return true;
}

long BodyBuffer::read_at(std::uint64_t off, char* buf, std::size_t n) const {
    if (off >= size_) return 0;
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - off));
    if (!fd_) {
        std::size_t done = 0;
        while (done < want) {
            const std::uint64_t at = off + done;
            const auto in = static_cast<std::size_t>(at % BodyChunk::kSize);
            const std::size_t k = std::min(want - done, BodyChunk::kSize - in);
            std::memcpy(buf + done, chunks_[static_cast<std::size_t>(at / BodyChunk::kSize)].data() + in, k);
            done += k;
        }
        return static_cast<long>(want);
    }
    for (;;) {
        ssize_t r = ::pread(fd_.get(), buf, want, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        return static_cast<long>(r);
    }
}

void BodyBuffer::clear() {
    std::vector<BodyChunk>().swap(chunks_);
    fd_.reset();
    size_ = 0;
    if (quota_) quota_->release(reserved_);
    reserved_ = 0;
    failed_ = over_quota_ = false;
}

}  // namespace xproxy::xproxyd
