// unique_fd.hpp: one owned file descriptor, closed exactly once.
//
// Where a function opens, accepts or receives a descriptor and may leave early, ownership
// is the point: UniqueFd closes on every path and says in the type who closes. Descriptors
// handed to a framework (Boost.Asio, libmilter) or returned to the application (the shim)
// are released with release(). close() is not retried on EINTR (on Linux the descriptor is
// gone whatever close() returns).
#pragma once

#include <unistd.h>

#include <utility>

namespace xproxy {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    // Gives up ownership: the caller closes the descriptor.
    [[nodiscard]] int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

}  // namespace xproxy
