// https_client.cpp: see https_client.hpp. (Placeholder until the client is written: every
// request fails.)
#include <xproxy/daemon/https_client.hpp>

namespace xproxy::http {

Expected<HttpsUrl> parse_https_url(std::string_view url) {
    return Failure{"https client not available: " + std::string(url.substr(0, 0))};
}

std::string HttpsResponse::header(std::string_view name) const {
    (void)name;
    return {};
}

boost::asio::awaitable<Expected<HttpsResponse>> https_request(boost::asio::any_io_executor ex, HttpsRequest request) {
    (void)ex;
    (void)request;
    co_return Failure{"https client not available"};
}

struct HttpsSession::Impl {};

HttpsSession::HttpsSession(boost::asio::any_io_executor ex, std::string ca_file, std::string cert_file,
                           std::string key_file)
    : impl_(std::make_unique<Impl>()) {
    (void)ex;
    (void)ca_file;
    (void)cert_file;
    (void)key_file;
}
HttpsSession::~HttpsSession() = default;

boost::asio::awaitable<Expected<HttpsResponse>> HttpsSession::request(HttpsRequest request) {
    (void)request;
    co_return Failure{"https client not available"};
}

}  // namespace xproxy::http
