// front_side.cpp: the queued replies' write; see front_side.hpp.
#include "front_side.hpp"

namespace xproxy::xproxyd {

asio::awaitable<bool> FrontSide::flush() {
    if (out_.empty()) co_return true;
    error_code ec;
    co_await conn_->write(out_, timeout_, ec);
    out_.clear();
    if (out_.capacity() > 16384) out_.shrink_to_fit();
    co_return !ec;
}

}  // namespace xproxy::xproxyd
