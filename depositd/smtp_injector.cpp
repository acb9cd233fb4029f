// smtp_injector.cpp: see smtp_injector.hpp. (Placeholder: every injection fails temporarily.)
#include "smtp_injector.hpp"

namespace xproxy::depositd {

boost::asio::awaitable<InjectResult> SmtpInjector::inject(boost::asio::any_io_executor ex,
                                                          const InjectRequest& request) const {
    (void)ex;
    (void)request;
    InjectResult r;
    r.text = "injection not available";
    r.stage = "connect";
    co_return r;
}

}  // namespace xproxy::depositd
