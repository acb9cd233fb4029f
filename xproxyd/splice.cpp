// splice.cpp: the byte copy of the layer-4 mode; see splice.hpp.
#include "splice.hpp"

#include <array>

namespace xproxy::xproxyd {

namespace {

// Per-operation deadlines are the idle watchdog's job here (a Conn has one deadline for
// its reads and writes together, and each connection is read by one pump and written by
// the other at the same time).
constexpr std::chrono::seconds kNoDeadline{24 * 3600};

struct SpliceState {
    explicit SpliceState(const asio::any_io_executor& ex) : wake(ex) {}
    asio::steady_timer wake;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    int running = 2;
    SpliceResult result;
};

void close_both(Conn& a, Conn& b) {
    a.close();
    b.close();
}

// One direction: `from`'s buffered bytes, then reads, each written to `to`.
asio::awaitable<void> pump(std::shared_ptr<Conn> from, std::shared_ptr<Conn> to, std::shared_ptr<SpliceState> st,
                           bool to_target) {
    std::uint64_t& count = to_target ? st->result.to_target : st->result.to_source;
    error_code ec;
    if (from->buffered() > 0) {
        const std::string pending(from->peek());
        from->consume(pending.size());
        co_await to->write(pending, kNoDeadline, ec);
        count += pending.size();
    }
    std::array<char, 16384> buf{};
    while (!ec) {
        const std::size_t n = co_await from->read_some(buf.data(), buf.size(), kNoDeadline, ec);
        if (ec) break;
        st->last = std::chrono::steady_clock::now();
        co_await to->write(std::string_view(buf.data(), n), kNoDeadline, ec);
        count += n;
    }
    if (!*st->result.ended)
        st->result.ended = ec == asio::error::eof ? (to_target ? "source closed" : "target closed") : "error";
    close_both(*from, *to);
    if (--st->running == 0) st->wake.cancel();
}

}  // namespace

asio::awaitable<SpliceResult> splice(std::shared_ptr<Conn> source, std::shared_ptr<Conn> target,
                                     std::chrono::seconds idle) {
    auto ex = co_await asio::this_coro::executor;
    auto st = std::make_shared<SpliceState>(ex);
    asio::co_spawn(ex, pump(source, target, st, true), asio::detached);
    asio::co_spawn(ex, pump(target, source, st, false), asio::detached);
    while (st->running > 0) {
        st->wake.expires_at(st->last + idle);
        error_code ec;
        co_await st->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (st->running > 0 && std::chrono::steady_clock::now() >= st->last + idle) {
            if (!*st->result.ended) st->result.ended = "idle";
            close_both(*source, *target);  // the pumps end with an error
            st->last = std::chrono::steady_clock::now();
        }
    }
    co_return st->result;
}

}  // namespace xproxy::xproxyd
