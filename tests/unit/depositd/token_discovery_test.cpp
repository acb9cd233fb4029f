// token_discovery_test.cpp: the token verifier with keys from the issuer's OpenID Connect
// discovery document, served by a small HTTPS identity provider in the test (Boost.Asio
// SSL on 127.0.0.1, a certificate made in the test) that counts the documents it serves:
// an unknown kid fetches the keys once more and accepts a rotated key; another unknown
// kid within refresh_min_interval fetches nothing; concurrent requests share one fetch;
// a provider that is down leaves the keys in hand; a failed first fetch answers
// `unavailable` and is retried in the background; an untrusted certificate is refused.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <xproxy/daemon/tls.hpp>

#include "token_test_support.hpp"
#include "token_verifier.hpp"

namespace xproxy::depositd {
namespace {

namespace asio = boost::asio;
using asio::use_awaitable;
using asio::ip::tcp;
using test::kNow;

// The identity provider: GET /.well-known/openid-configuration and GET /jwks.
class TestIdp {
public:
    TestIdp(asio::io_context& io, const test::TempDir& dir)
        : io_(io), acceptor_(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
        auto [cert, key] = test::make_loopback_certificate();
        ca_file = dir.write("idp-cert.pem", cert);
        key_file_ = dir.write("idp-key.pem", key, 0600);
        ctx_ = daemon::tls_server_context(ca_file, key_file_);
        issuer = "https://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
        discovery = nlohmann::json{{"issuer", issuer}, {"jwks_uri", issuer + "/jwks"}}.dump();
        asio::co_spawn(io_, accept_loop(), asio::detached);
    }

    // Connections are refused from now on.
    void take_down() {
        boost::system::error_code ec;
        acceptor_.close(ec);
    }

    std::string issuer;
    std::string ca_file;
    std::string discovery;  // the document served
    std::string jwks;       // the key set served
    std::chrono::milliseconds jwks_delay{0};
    int discovery_fetches = 0;
    int jwks_fetches = 0;

private:
    asio::awaitable<void> accept_loop() {
        for (;;) {
            tcp::socket socket(io_);
            boost::system::error_code ec;
            co_await acceptor_.async_accept(socket, asio::redirect_error(use_awaitable, ec));
            if (ec) co_return;
            asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        asio::ssl::stream<tcp::socket> tls(std::move(socket), *ctx_);
        boost::system::error_code ec;
        co_await tls.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        std::string request;
        co_await asio::async_read_until(tls, asio::dynamic_buffer(request), "\r\n\r\n",
                                        asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        auto sp = request.find(' ');
        auto path = request.substr(sp + 1, request.find(' ', sp + 1) - sp - 1);
        std::string status = "200 OK";
        std::string body;
        if (path == "/.well-known/openid-configuration") {
            ++discovery_fetches;
            body = discovery;
        } else if (path == "/jwks") {
            ++jwks_fetches;
            body = jwks;
            if (jwks_delay.count() > 0) co_await test::sleep_for(jwks_delay);
        } else {
            status = "404 Not Found";
        }
        std::string response = "HTTP/1.1 " + status +
                               "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nConnection: close\r\n\r\n" + body;
        co_await asio::async_write(tls, asio::buffer(response), asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        co_await tls.async_shutdown(asio::redirect_error(use_awaitable, ec));
    }

    asio::io_context& io_;
    tcp::acceptor acceptor_;
    std::string key_file_;
    std::unique_ptr<asio::ssl::context> ctx_;
};

class TokenDiscovery : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        first_ = new test::IdpKey(test::IdpKey::make("ES256", "k1"));
        second_ = new test::IdpKey(test::IdpKey::make("EdDSA", "k2"));
        third_ = new test::IdpKey(test::IdpKey::make("ES256", "k3"));
    }
    static void TearDownTestSuite() {
        delete first_;
        delete second_;
        delete third_;
    }

    void SetUp() override { idp_.jwks = test::jwks_of({first_}); }

    TokenConfig config() {
        TokenConfig c;
        c.policy.issuer = idp_.issuer;
        c.policy.audience = test::kAudience;
        c.use_discovery = true;
        c.ca_file = idp_.ca_file;
        c.fetch_timeout = std::chrono::seconds{2};
        return c;
    }

    std::unique_ptr<TokenVerifier> make(TokenConfig c) {
        auto v = TokenVerifier::create(io_, std::move(c));
        EXPECT_TRUE(v) << v.error();
        return v ? std::move(*v) : nullptr;
    }

    std::string token(const test::IdpKey& key) { return test::mint(key, test::good_claims(idp_.issuer)); }

    static test::IdpKey* first_;
    static test::IdpKey* second_;
    static test::IdpKey* third_;
    asio::io_context io_;
    test::TempDir dir_;
    TestIdp idp_{io_, dir_};
};

test::IdpKey* TokenDiscovery::first_ = nullptr;
test::IdpKey* TokenDiscovery::second_ = nullptr;
test::IdpKey* TokenDiscovery::third_ = nullptr;

TEST_F(TokenDiscovery, UnknownKidFetchesOnceAndAcceptsTheRotatedKey) {
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        EXPECT_EQ(idp_.discovery_fetches, 1);
        EXPECT_EQ(idp_.jwks_fetches, 1);
        auto t1 = token(*first_);
        auto out = co_await v->verify(t1, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;

        // The provider publishes k2 and signs with it.
        idp_.jwks = test::jwks_of({first_, second_});
        auto t2 = token(*second_);
        out = co_await v->verify(t2, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(idp_.discovery_fetches, 2);
        EXPECT_EQ(idp_.jwks_fetches, 2);
        out = co_await v->verify(t2, kNow);  // now known: no fetch
        EXPECT_TRUE(out.identity.has_value()) << out.detail;

        // Another unknown kid within refresh_min_interval: refused without a fetch, even
        // though the provider has it by now.
        idp_.jwks = test::jwks_of({first_, second_, third_});
        auto t3 = token(*third_);
        for (int i = 0; i < 3; ++i) {
            out = co_await v->verify(t3, kNow);
            EXPECT_EQ(out.refusal, jose::Refusal::unknown_kid) << out.detail;
        }
        EXPECT_EQ(idp_.discovery_fetches, 2);
        EXPECT_EQ(idp_.jwks_fetches, 2);
        EXPECT_EQ(v->key_loads(), 2u);
        EXPECT_EQ(v->key_load_failures(), 0u);
        // reload() (SIGHUP) fetches regardless.
        auto reloaded = co_await v->reload();
        EXPECT_TRUE(reloaded) << reloaded.error();
        out = co_await v->verify(t3, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(idp_.jwks_fetches, 3);
    });
}

TEST_F(TokenDiscovery, ConcurrentVerifiesShareOneFetch) {
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        idp_.jwks = test::jwks_of({first_, second_});
        idp_.jwks_delay = std::chrono::milliseconds{200};
        constexpr int kRequests = 8;
        int accepted = 0;
        int finished = 0;
        auto t2 = token(*second_);
        for (int i = 0; i < kRequests; ++i) {
            asio::co_spawn(
                io_,
                [&]() -> asio::awaitable<void> {
                    auto out = co_await v->verify(t2, kNow);
                    if (out.identity) ++accepted;
                    ++finished;
                },
                asio::detached);
        }
        while (finished < kRequests) co_await test::sleep_for(std::chrono::milliseconds{10});
        EXPECT_EQ(accepted, kRequests);
        EXPECT_EQ(idp_.discovery_fetches, 2);
        EXPECT_EQ(idp_.jwks_fetches, 2);
        EXPECT_EQ(v->key_loads(), 2u);
    });
}

TEST_F(TokenDiscovery, ProviderDownKeepsTheKeysInHand) {
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        idp_.take_down();
        auto reloaded = co_await v->reload();
        EXPECT_FALSE(reloaded);
        EXPECT_NE(reloaded.error().find("keeping the 1 keys"), std::string::npos) << reloaded.error();
        auto t1 = token(*first_);
        auto out = co_await v->verify(t1, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        auto t2 = token(*second_);
        out = co_await v->verify(t2, kNow);  // tries once, fails, refuses
        EXPECT_EQ(out.refusal, jose::Refusal::unknown_kid) << out.detail;
        out = co_await v->verify(t1, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(v->key_loads(), 1u);
        EXPECT_EQ(v->key_load_failures(), 2u);
    });
}

TEST_F(TokenDiscovery, FailedStartIsUnavailableAndRetriedInTheBackground) {
    // The document speaks for another issuer (Discovery section 4.3): not usable.
    idp_.discovery = nlohmann::json{{"issuer", "https://evil.example"}, {"jwks_uri", idp_.issuer + "/jwks"}}.dump();
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();  // the daemon serves, answering 503
        EXPECT_EQ(v->key_load_failures(), 1u);
        EXPECT_EQ(idp_.jwks_fetches, 0);
        auto t1 = token(*first_);
        auto out = co_await v->verify(t1, kNow);
        EXPECT_TRUE(out.unavailable) << out.detail;
        EXPECT_FALSE(out.identity.has_value());
        EXPECT_FALSE(out.refusal.has_value());
        // The provider is fixed; the first retry comes after 1 s.
        idp_.discovery = nlohmann::json{{"issuer", idp_.issuer}, {"jwks_uri", idp_.issuer + "/jwks"}}.dump();
        for (int i = 0; i < 40 && v->key_loads() == 0; ++i) co_await test::sleep_for(std::chrono::milliseconds{50});
        EXPECT_EQ(v->key_loads(), 1u);
        out = co_await v->verify(t1, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(idp_.discovery_fetches, 2);
    });
}

TEST_F(TokenDiscovery, UntrustedCertificateIsRefused) {
    auto c = config();
    c.ca_file = dir_.write("other-ca.pem", test::make_loopback_certificate().first);
    auto v = make(c);
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        auto t1 = token(*first_);
        auto out = co_await v->verify(t1, kNow);
        EXPECT_TRUE(out.unavailable) << out.detail;
        EXPECT_EQ(idp_.discovery_fetches, 0);
        EXPECT_EQ(v->key_load_failures(), 1u);
        v->stop();
    });
}

TEST_F(TokenDiscovery, DiscoveryUrlMustBeHttps) {
    auto c = config();
    c.discovery_url = "http://127.0.0.1/.well-known/openid-configuration";
    EXPECT_FALSE(TokenVerifier::create(io_, c));
    c.discovery_url = idp_.issuer + "/.well-known/openid-configuration";
    EXPECT_TRUE(TokenVerifier::create(io_, c));
    c.ca_file = dir_.path + "/no-such-ca.pem";
    EXPECT_FALSE(TokenVerifier::create(io_, c));
}

}  // namespace
}  // namespace xproxy::depositd
