// token_verifier.cpp: see token_verifier.hpp. (Placeholder: no verifier can be created yet.)
#include "token_verifier.hpp"

namespace xproxy::depositd {

Expected<std::unique_ptr<TokenVerifier>> TokenVerifier::create(boost::asio::io_context& io, TokenConfig config) {
    (void)io;
    (void)config;
    return Failure{"token verification is not available"};
}

}  // namespace xproxy::depositd
