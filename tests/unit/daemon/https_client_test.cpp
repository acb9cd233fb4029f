// daemon_https_client_test: the HTTPS client (xproxy/daemon/https_client.hpp) against an
// in-process TLS server with a CA made by the test: a 200 with its body and a POST's body
// and fields delivered; a certificate for another name, another address or from an
// untrusted CA refused before any request is sent; a body or header block over the limit
// refused, not truncated; a server that never answers (before or after the handshake)
// fails at the deadline; redirects handed back, not followed; request fields with CR/LF
// refused; keep-alive reuse in HttpsSession, a fresh connection when the server closes;
// a client certificate presented; parse_https_url's accepted and refused forms.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include <xproxy/daemon/https_client.hpp>

#include "https_test_server.hpp"

namespace {

using namespace xproxy;
using namespace std::chrono_literals;
using test::HttpsTestServer;
using test::TestPki;
namespace asio = boost::asio;

asio::awaitable<void> one_request(http::HttpsRequest request, std::optional<Expected<http::HttpsResponse>>* out) {
    auto ex = co_await asio::this_coro::executor;
    *out = co_await http::https_request(ex, std::move(request));
}

Expected<http::HttpsResponse> fetch(http::HttpsRequest request) {
    asio::io_context io;
    std::optional<Expected<http::HttpsResponse>> out;
    asio::co_spawn(io, one_request(std::move(request), &out), asio::detached);
    io.run();
    if (!out) return Failure{"the request never completed"};
    return std::move(*out);
}

asio::awaitable<void> session_requests(http::HttpsSession* session, std::vector<http::HttpsRequest> requests,
                                       std::vector<Expected<http::HttpsResponse>>* out) {
    for (auto& r : requests) out->push_back(co_await session->request(std::move(r)));
}

std::vector<Expected<http::HttpsResponse>> fetch_in_session(const std::string& ca_file,
                                                            std::vector<http::HttpsRequest> requests,
                                                            const std::string& cert = {}, const std::string& key = {}) {
    asio::io_context io;
    std::vector<Expected<http::HttpsResponse>> out;
    {
        http::HttpsSession session(io.get_executor(), ca_file, cert, key);
        asio::co_spawn(io, session_requests(&session, std::move(requests), &out), asio::detached);
        io.run();
    }
    return out;
}

http::HttpsRequest get(const std::string& url, const TestPki& pki) {
    http::HttpsRequest r;
    r.url = url;
    r.ca_file = pki.ca_file();
    r.timeout = 5s;
    return r;
}

std::string local(std::uint16_t port, const std::string& path = "/") {
    return "https://localhost:" + std::to_string(port) + path;
}

HttpsTestServer::Handler answer(unsigned status, const std::string& body = {}) {
    return [status, body](const test::TestRequest&) {
        return std::optional<HttpsTestServer::Answer>{{HttpsTestServer::response(status, body)}};
    };
}

}  // namespace

TEST(HttpsClient, GetReturnsStatusBodyAndFields) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest& req) {
        auto r = HttpsTestServer::response(200, "hello " + std::string(req.target()));
        r.set("X-Test", "yes");
        return std::optional<HttpsTestServer::Answer>{{r}};
    });
    auto got = fetch(get(local(server.port(), "/doc?a=1"), pki));
    ASSERT_TRUE(got) << got.error();
    EXPECT_EQ(got->status, 200);
    EXPECT_EQ(got->body, "hello /doc?a=1");
    EXPECT_EQ(got->header("x-test"), "yes");
    EXPECT_EQ(got->header("absent"), "");
}

TEST(HttpsClient, PostSendsBodyFieldsAndHost) {
    TestPki pki;
    std::string seen;
    HttpsTestServer server(pki.server(), [&seen](const test::TestRequest& req) {
        seen = std::string(req.method_string()) + " " + std::string(req[boost::beast::http::field::host]) + " " +
               std::string(req["Authorization"]) + " " + req.body();
        return std::optional<HttpsTestServer::Answer>{{HttpsTestServer::response(303)}};
    });
    auto r = get(local(server.port(), "/v1/deposit"), pki);
    r.method = "POST";
    r.headers = {{"Authorization", "Bearer t0k"}, {"Content-Type", "message/rfc822"}};
    r.body = "Subject: x\r\n\r\nbody\r\n";
    auto got = fetch(r);
    ASSERT_TRUE(got) << got.error();
    EXPECT_EQ(got->status, 303);
    EXPECT_EQ(seen, "POST localhost:" + std::to_string(server.port()) + " Bearer t0k Subject: x\r\n\r\nbody\r\n");
}

TEST(HttpsClient, AddressLiteralIsVerifiedAsAnAddress) {
    TestPki pki;
    HttpsTestServer server(pki.server(), answer(200, "ok"));
    auto good = fetch(get("https://127.0.0.1:" + std::to_string(server.port()) + "/", pki));
    ASSERT_TRUE(good) << good.error();
    EXPECT_EQ(good->body, "ok");
    // 127.0.0.2 is not in the certificate (the connection still goes to 127.0.0.1)
    auto other = get("https://127.0.0.2:" + std::to_string(server.port()) + "/", pki);
    other.connect_address = "127.0.0.1";
    auto bad = fetch(other);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("server certificate not accepted"), std::string::npos) << bad.error();
    EXPECT_EQ(server.requests(), 1);
}

TEST(HttpsClient, NameMismatchIsRefusedBeforeTheRequest) {
    TestPki pki;
    HttpsTestServer server(pki.server(), answer(200, "secret"));
    auto r = get("https://mx.example.test:" + std::to_string(server.port()) + "/", pki);
    r.connect_address = "127.0.0.1";
    r.headers = {{"Authorization", "Bearer do-not-leak"}};
    auto got = fetch(r);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error(), "https://mx.example.test:" + std::to_string(server.port()) +
                               ": server certificate not accepted: hostname mismatch");
    EXPECT_EQ(server.requests(), 0);
    EXPECT_EQ(got.error().find("do-not-leak"), std::string::npos);
}

TEST(HttpsClient, UntrustedCaIsRefused) {
    TestPki pki;
    TestPki other("Other CA");
    HttpsTestServer server(pki.server(), answer(200));
    auto got = fetch(get(local(server.port()), other));
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find("server certificate not accepted"), std::string::npos) << got.error();
    EXPECT_EQ(server.requests(), 0);
}

TEST(HttpsClient, OversizeBodyIsRefusedNotTruncated) {
    TestPki pki;
    HttpsTestServer server(pki.server(), answer(200, std::string(1000, 'x')));
    auto r = get(local(server.port()), pki);
    r.max_body_bytes = 999;
    auto got = fetch(r);
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find("response body larger than 999 bytes"), std::string::npos) << got.error();
    r.max_body_bytes = 1000;
    auto exact = fetch(r);
    ASSERT_TRUE(exact) << exact.error();
    EXPECT_EQ(exact->body.size(), 1000u);
}

TEST(HttpsClient, OversizeChunkedBodyIsRefused) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest&) {
        auto r = HttpsTestServer::response(200, std::string(1000, 'x'));
        r.chunked(true);
        return std::optional<HttpsTestServer::Answer>{{r}};
    });
    auto r = get(local(server.port()), pki);
    r.max_body_bytes = 999;
    auto got = fetch(r);
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find("response body larger than 999 bytes"), std::string::npos) << got.error();
    r.max_body_bytes = 1000;
    auto exact = fetch(r);
    ASSERT_TRUE(exact) << exact.error();
    EXPECT_EQ(exact->body, std::string(1000, 'x'));
}

TEST(HttpsClient, OversizeHeaderBlockIsRefused) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest&) {
        auto r = HttpsTestServer::response(200, "x");
        r.set("X-Big", std::string(17 * 1024, 'h'));
        return std::optional<HttpsTestServer::Answer>{{r}};
    });
    auto got = fetch(get(local(server.port()), pki));
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find("response header block larger than 16384 bytes"), std::string::npos) << got.error();
}

TEST(HttpsClient, ServerThatNeverHandshakesTimesOut) {
    TestPki pki;
    HttpsTestServer server(pki.server(), answer(200), /*handshake=*/false);
    auto r = get(local(server.port()), pki);
    r.timeout = 300ms;
    const auto start = std::chrono::steady_clock::now();
    auto got = fetch(r);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find("timed out"), std::string::npos) << got.error();
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 3s);
}

TEST(HttpsClient, ServerThatNeverAnswersTimesOut) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest&) { return std::nullopt; });
    auto r = get(local(server.port()), pki);
    r.timeout = 300ms;
    auto got = fetch(r);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error(),
              "https://localhost:" + std::to_string(server.port()) + ": cannot read the response: timed out");
    EXPECT_EQ(server.requests(), 1);
}

TEST(HttpsClient, RedirectIsNotFollowed) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest&) {
        auto r = HttpsTestServer::response(302);
        r.set("Location", "https://elsewhere.test/");
        return std::optional<HttpsTestServer::Answer>{{r}};
    });
    auto got = fetch(get(local(server.port()), pki));
    ASSERT_TRUE(got) << got.error();
    EXPECT_EQ(got->status, 302);
    EXPECT_EQ(got->header("Location"), "https://elsewhere.test/");
    EXPECT_EQ(server.requests(), 1);
}

TEST(HttpsClient, RequestFieldsWithLineBreaksAreRefused) {
    TestPki pki;
    HttpsTestServer server(pki.server(), answer(200));
    auto r = get(local(server.port()), pki);
    r.headers = {{"X-A", "v\r\nX-Injected: 1"}};
    auto got = fetch(r);
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find("request header field X-A has a bad name or value"), std::string::npos) << got.error();
    r.headers = {{"Bad Name", "v"}};
    EXPECT_FALSE(fetch(r));
    r.headers = {};
    r.method = "FETCH ME";
    EXPECT_FALSE(fetch(r));
    EXPECT_EQ(server.connections(), 0);
}

TEST(HttpsClient, BadCaFileIsAFailureNotAThrow) {
    auto r = http::HttpsRequest{};
    r.url = "https://localhost:1/";
    r.ca_file = "/nonexistent/ca.pem";
    auto got = fetch(r);
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find("cannot use the CA file /nonexistent/ca.pem"), std::string::npos) << got.error();
}

TEST(HttpsSession, KeepAliveReusesTheConnection) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest& req) {
        return std::optional<HttpsTestServer::Answer>{{HttpsTestServer::response(200, std::string(req.target()))}};
    });
    auto out = fetch_in_session(pki.ca_file(),
                                {get(local(server.port(), "/a"), pki), get(local(server.port(), "/b"), pki),
                                 get(local(server.port(), "/c"), pki)});
    ASSERT_EQ(out.size(), 3u);
    for (auto& r : out) ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(out[0]->body, "/a");
    EXPECT_EQ(out[2]->body, "/c");
    EXPECT_EQ(server.connections(), 1);
    EXPECT_EQ(server.requests(), 3);
}

TEST(HttpsSession, ConnectionCloseOpensAFreshConnection) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest&) {
        auto r = HttpsTestServer::response(200, "x");
        r.keep_alive(false);
        return std::optional<HttpsTestServer::Answer>{{r}};
    });
    auto out = fetch_in_session(pki.ca_file(), {get(local(server.port()), pki), get(local(server.port()), pki)});
    ASSERT_EQ(out.size(), 2u);
    for (auto& r : out) ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(server.connections(), 2);
}

TEST(HttpsSession, IdleConnectionClosedByTheServerIsRetriedOnce) {
    TestPki pki;
    // Closes after each answer without "Connection: close": the next request finds the
    // connection gone before any response byte.
    HttpsTestServer server(pki.server(), [](const test::TestRequest&) {
        return std::optional<HttpsTestServer::Answer>{{HttpsTestServer::response(200, "x"), true}};
    });
    auto out = fetch_in_session(pki.ca_file(), {get(local(server.port()), pki), get(local(server.port()), pki)});
    ASSERT_EQ(out.size(), 2u);
    for (auto& r : out) ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(server.connections(), 2);
    EXPECT_EQ(server.requests(), 2);
}

TEST(HttpsSession, AnotherHostGetsAnotherConnection) {
    TestPki pki;
    HttpsTestServer one(pki.server(), answer(200, "one"));
    HttpsTestServer two(pki.server(), answer(200, "two"));
    auto out = fetch_in_session(pki.ca_file(), {get(local(one.port()), pki), get(local(two.port()), pki)});
    ASSERT_EQ(out.size(), 2u);
    ASSERT_TRUE(out[0]) << out[0].error();
    ASSERT_TRUE(out[1]) << out[1].error();
    EXPECT_EQ(out[0]->body, "one");
    EXPECT_EQ(out[1]->body, "two");
}

TEST(HttpsSession, ClientCertificateIsPresented) {
    TestPki pki;
    HttpsTestServer server(pki.server(), answer(200, "hello client"));
    server.require_client_cert(pki.ca_file());
    auto without = fetch_in_session(pki.ca_file(), {get(local(server.port()), pki)});
    ASSERT_EQ(without.size(), 1u);
    EXPECT_FALSE(without[0]);
    auto with = fetch_in_session(pki.ca_file(), {get(local(server.port()), pki)}, pki.client_cert_file(),
                                 pki.client_key_file());
    ASSERT_EQ(with.size(), 1u);
    ASSERT_TRUE(with[0]) << with[0].error();
    EXPECT_EQ(with[0]->body, "hello client");
}

TEST(HttpsUrl, Parses) {
    struct Row {
        const char* url;
        bool want_ok;
        const char* want_host;
        std::uint16_t want_port;
        const char* want_target;
    };
    const Row rows[] = {
        {"https://idp.example.test", true, "idp.example.test", 443, "/"},
        {"https://IdP.Example.Test/", true, "idp.example.test", 443, "/"},
        {"HTTPS://idp.test:8443/a/b?x=1&y=2", true, "idp.test", 8443, "/a/b?x=1&y=2"},
        {"https://idp.test?x=1", true, "idp.test", 443, "/?x=1"},
        {"https://mx.example.test.:8443/v1/deposit", true, "mx.example.test", 8443, "/v1/deposit"},
        {"https://127.0.0.1:1/", true, "127.0.0.1", 1, "/"},
        {"https://[::1]:8443/x", true, "::1", 8443, "/x"},
        {"https://[2001:db8::1]", true, "2001:db8::1", 443, "/"},
        {"https://a:65535/", true, "a", 65535, "/"},
        {"http://idp.test/", false, "", 0, ""},
        {"idp.test/", false, "", 0, ""},
        {"https://", false, "", 0, ""},
        {"https:///path", false, "", 0, ""},
        {"https://user:pw@idp.test/", false, "", 0, ""},
        {"https://idp.test:0/", false, "", 0, ""},
        {"https://idp.test:65536/", false, "", 0, ""},
        {"https://idp.test:/", false, "", 0, ""},
        {"https://idp.test:+443/", false, "", 0, ""},
        {"https://idp.test:44a/", false, "", 0, ""},
        {"https://[::1/", false, "", 0, ""},
        {"https://[::1]x/", false, "", 0, ""},
        {"https://[::1]:/", false, "", 0, ""},
        {"https://[fe80::1%eth0]/", false, "", 0, ""},
        {"https://[1.2.3.4]/", false, "", 0, ""},
        {"https://idp..test/", false, "", 0, ""},
        {"https://.idp.test/", false, "", 0, ""},
        {"https://idp_x.test/", false, "", 0, ""},
        {"https://idp.test/a b", false, "", 0, ""},
        {"https://idp.test/a\r\nHost: evil", false, "", 0, ""},
        {"https://idp.test/a#frag", false, "", 0, ""},
        {"https://idp.test/\xc3\xa9", false, "", 0, ""},
    };
    for (const auto& row : rows) {
        auto got = http::parse_https_url(row.url);
        ASSERT_EQ(static_cast<bool>(got), row.want_ok) << row.url << (got ? "" : ": " + got.error());
        if (!got) continue;
        EXPECT_EQ(got->host, row.want_host) << row.url;
        EXPECT_EQ(got->port, row.want_port) << row.url;
        EXPECT_EQ(got->target, row.want_target) << row.url;
    }
    EXPECT_FALSE(http::parse_https_url("https://a/" + std::string(9000, 'x')));
    EXPECT_FALSE(http::parse_https_url("https://" + std::string(64, 'a') + ".test/"));
    EXPECT_TRUE(http::parse_https_url("https://" + std::string(63, 'a') + ".test/"));
    auto bad = http::parse_https_url("http://idp.test/\n");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), "not an https:// URL: http://idp.test/\\x0a");
}

namespace {

asio::awaitable<void> connect_then_request(http::HttpsSession* session, std::string url, std::string address,
                                           http::HttpsRequest request, std::vector<std::string>* out) {
    auto connected = co_await session->connect(url, address, std::chrono::milliseconds(5000));
    out->push_back(connected ? "connected" : connected.error());
    if (!connected) co_return;
    auto r = co_await session->request(std::move(request));
    out->push_back(r ? r->body : r.error());
}

std::vector<std::string> connect_and_get(const TestPki& pki, const std::string& url, const std::string& address) {
    asio::io_context io;
    std::vector<std::string> out;
    http::HttpsSession session(io.get_executor(), pki.ca_file());
    auto r = get(url, pki);
    r.connect_address = address;
    asio::co_spawn(io, connect_then_request(&session, url, address, r, &out), asio::detached);
    io.run();
    return out;
}

}  // namespace

TEST(HttpsSession, ConnectOpensTheConnectionTheRequestUses) {
    TestPki pki;
    HttpsTestServer server(pki.server(), answer(200, "over the opened connection"));
    auto out = connect_and_get(pki, local(server.port()), "127.0.0.1");
    EXPECT_EQ(out, (std::vector<std::string>{"connected", "over the opened connection"}));
    EXPECT_EQ(server.connections(), 1);
    // A name the certificate does not have: refused at connect, nothing sent.
    auto wrong = connect_and_get(pki, "https://other.test:" + std::to_string(server.port()) + "/", "127.0.0.1");
    ASSERT_EQ(wrong.size(), 1u);
    EXPECT_NE(wrong[0].find("hostname mismatch"), std::string::npos) << wrong[0];
    EXPECT_EQ(server.requests(), 1);
}
