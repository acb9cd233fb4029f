// header_reader.cpp: see header_reader.hpp. v1 is at most 107 bytes and v2's first 16
// bytes say how long it is, so one peek of 256 bytes decides most headers; a longer v2
// header is peeked again at its exact length, once all of it is queued.
#include "header_reader.hpp"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <memory>
#include <string_view>

#include "log.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::preload {

namespace {
// recv() without libc's cancellation-point bookkeeping: the header is read with
// MSG_DONTWAIT and never blocks, so there is nothing to cancel (accept() itself stays a
// cancellation point).
ssize_t recv_nocancel(int fd, void* buf, std::size_t len, int flags) {
    return syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
}

ReadResult dropped(std::string_view reason) {
    ReadResult r;
    r.status = ReadStatus::drop;
    r.reason = reason;
    return r;
}
}  // namespace

bool peek_wake_magic(int fd) {
    char buf[kWakeMagicLength];
    ssize_t n = recv_nocancel(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    return n == static_cast<ssize_t>(kWakeMagicLength) && std::memcmp(buf, kWakeMagic, kWakeMagicLength) == 0;
}

ReadResult read_header(int fd, const Config& cfg, std::size_t& need) {
    int queued = 0;
    if (need > 0 && ioctl(fd, FIONREAD, &queued) == 0 && queued >= 0 && static_cast<std::size_t>(queued) < need)
        return ReadResult{};  // nothing new worth a peek
    std::uint8_t small[256];
    ssize_t n = recv_nocancel(fd, small, sizeof small, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        need = static_cast<std::size_t>(n) + 1;  // if this does not decide it, at least one more byte
        if (log_enabled(kDebug)) log_line(kDebug, "event=peek fd=%d bytes=%zd", fd, n);
    }
    if (n == 0) return dropped("connection closed before a complete PROXY header");
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return ReadResult{};
        return dropped("read error before a complete PROXY header");
    }
    const std::uint8_t* data = small;
    std::size_t size = static_cast<std::size_t>(n);
    if (size >= kWakeMagicLength && std::memcmp(small, kWakeMagic, kWakeMagicLength) == 0) {
        ReadResult r;
        r.status = ReadStatus::wake;
        return r;
    }
    std::unique_ptr<std::uint8_t[]> big;
    pp::Header h;
    DecodeResult d = pp::decode(data, size, h);
    if (d.need_more() && size >= pp::kV2HeaderLength && small[0] == pp::kV2Signature[0]) {
        std::size_t total = pp::kV2HeaderLength + ((std::size_t{small[14]} << 8) | small[15]);
        if (total > size) {
            need = total;
            if (ioctl(fd, FIONREAD, &queued) == 0 && queued >= 0 && static_cast<std::size_t>(queued) < total)
                return ReadResult{};  // peeked whole once all of it is there
            big.reset(new std::uint8_t[total]);
            ssize_t m = recv_nocancel(fd, big.get(), total, MSG_PEEK | MSG_DONTWAIT);
            if (m <= 0) return ReadResult{};  // need_more; a close is seen on the next attempt
            if (log_enabled(kDebug)) log_line(kDebug, "event=peek fd=%d bytes=%zd", fd, m);
            data = big.get();
            size = static_cast<std::size_t>(m);
            d = pp::decode(data, size, h);
        }
    }
    if (d.need_more()) return ReadResult{};
    if (d.invalid()) {
        ReadResult r = dropped(d.reason);
        r.first_bytes = escape(std::string_view(reinterpret_cast<const char*>(data), size < 32 ? size : 32), 128);
        return r;
    }
    // decode() said complete: the header lies within the bytes it was given (the HMAC is
    // checked over them and exactly that many are consumed below).
    XPROXY_INVARIANT(d.complete() && d.consumed <= size);
    const auto hmac = cfg.hmac_key.empty()
                          ? pp::HmacVerdict::ok
                          : pp::verify_hmac(data, d.consumed, h, {cfg.hmac_key, std::time(nullptr), cfg.hmac_window});
    if (hmac != pp::HmacVerdict::ok) return dropped(pp::describe(hmac));
    // Consume exactly the header: what follows belongs to the application.
    std::uint8_t sink[256];
    std::size_t left = d.consumed;
    while (left > 0) {
        ssize_t m = recv_nocancel(fd, sink, left < sizeof sink ? left : sizeof sink, MSG_DONTWAIT);
        if (m < 0 && errno == EINTR) continue;
        if (m <= 0) return dropped("read error while consuming the PROXY header");
        left -= static_cast<std::size_t>(m);
    }
    ReadResult r;
    r.status = ReadStatus::complete;
    r.version = h.version;
    if (h.command == pp::Command::proxy && h.has_addresses &&
        (h.family == pp::Family::inet || h.family == pp::Family::inet6)) {
        r.client = h.source;
        r.destination = h.destination;
    }
    return r;
}

}  // namespace xproxy::preload
