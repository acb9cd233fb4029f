// tools_deposit_client_test: the deposit client's HTTP flow (tools/deposit/deposit_client.hpp)
// against an in-process TLS server: a POST that gets no answer is sent once more with the
// same Idempotency-Key; a Location on another host gets neither a request nor the token;
// the server's refusals map to their exit codes with reason and detail; an endpoint whose
// certificate is for another name is skipped for the next one before anything is sent; a
// token goes only to an endpoint its "aud" names (unless allow_any_audience).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "deposit_client.hpp"
#include "https_test_server.hpp"
#include <xproxy/jose/base64url.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::deposit;
using test::HttpsTestServer;
using test::TestPki;
using Answer = std::optional<HttpsTestServer::Answer>;

DepositOutcome run(DepositJob job) {
    boost::asio::io_context io;
    DepositOutcome out;
    auto body = [&out, &io, &job]() -> boost::asio::awaitable<void> {
        out = co_await run_deposit(io.get_executor(), std::move(job));
    };
    boost::asio::co_spawn(io, body, boost::asio::detached);
    io.run();
    return out;
}

// A JWT-shaped token (its signature is the server's business) whose "aud" is the JSON given.
std::string token_for(const std::string& aud_json) {
    return jose::base64url_encode(R"({"alg":"ES256"})") + "." +
           jose::base64url_encode(R"({"sub":"tok-secret","aud":)" + aud_json + "}") + ".c2ln";
}

DepositJob job_for(const TestPki& pki, std::uint16_t port) {
    DepositJob job;
    job.endpoints = {Endpoint{"https://localhost:" + std::to_string(port) + "/v1/deposit", {"127.0.0.1"}}};
    job.message = "From: a@x.test\r\nTo: b@y.test\r\n\r\nhi\r\n";
    job.recipients = {"b@y.test"};
    const std::string p = std::to_string(port);
    job.token = token_for(R"(["https://localhost:)" + p + R"(","https://mx.other.test:)" + p + R"("])");
    job.idempotency_key = "key-1";
    job.ca_file = pki.ca_file();
    job.timeout = std::chrono::milliseconds(2000);
    return job;
}

HttpsTestServer::Answer with(unsigned status, const std::string& body, const std::string& field = {},
                             const std::string& value = {}) {
    auto r = HttpsTestServer::response(status, body);
    if (!field.empty()) r.set(field, value);
    return {r};
}

}  // namespace

TEST(DepositClient, UnansweredPostIsSentOnceMoreWithTheSameKey) {
    TestPki pki;
    std::mutex m;
    std::vector<std::string> posts;
    HttpsTestServer server(pki.server(), [&](const test::TestRequest& req) -> Answer {
        std::lock_guard<std::mutex> lock(m);
        if (req.method_string() != "POST") return with(404, "");
        posts.push_back(std::string(req["Idempotency-Key"]) + " " + std::string(req.target()));
        if (posts.size() == 1) return std::nullopt;  // no answer: the client times out
        return with(303, R"({"queue_id":"Q1"})", "Location", "/v1/receipts/abc");
    });
    auto job = job_for(pki, server.port());
    job.timeout = std::chrono::milliseconds(500);
    auto out = run(std::move(job));
    EXPECT_TRUE(out.delivered);
    EXPECT_EQ(out.queue_id, "Q1");
    EXPECT_EQ(out.exit_code, kExitSoftware);  // the receipt: 404
    EXPECT_NE(out.error.find("receipt could not be fetched"), std::string::npos) << out.error;
    std::lock_guard<std::mutex> lock(m);
    EXPECT_EQ(posts,
              (std::vector<std::string>{"key-1 /v1/deposit?rcpt=b%40y.test", "key-1 /v1/deposit?rcpt=b%40y.test"}));
}

TEST(DepositClient, LocationOnAnotherHostGetsNoRequest) {
    TestPki pki;
    HttpsTestServer server(pki.server(), [](const test::TestRequest&) -> Answer {
        return with(303, "{}", "Location", "https://elsewhere.test/v1/receipts/abc");
    });
    auto out = run(job_for(pki, server.port()));
    EXPECT_TRUE(out.delivered);
    EXPECT_EQ(out.exit_code, kExitSoftware);
    EXPECT_NE(out.error.find("Location is not on https://localhost:"), std::string::npos) << out.error;
    EXPECT_EQ(server.requests(), 1);
}

TEST(DepositClient, RefusalsMapToExitCodes) {
    TestPki pki;
    struct Row {
        unsigned status;
        const char* reason;
        int want_exit;
    };
    const Row rows[] = {{400, "bad_request", kExitData},
                        {401, "expired", kExitNoPerm},
                        {403, "sender_not_allowed", kExitNoPerm},
                        {404, "not_found", kExitUnavailable},
                        {413, "too_large", kExitData},
                        {422, "mta_refused", kExitData},
                        {429, "rate_limited", kExitTempFail},
                        {503, "mta_tempfail", kExitTempFail},
                        {200, "", kExitProtocol}};
    for (const auto& row : rows) {
        const std::string body = std::string(R"({"type":"about:blank","status":)") + std::to_string(row.status) +
                                 R"(,"reason":")" + row.reason + R"(","detail":"said \"no\"\n"})";
        HttpsTestServer server(pki.server(), [&](const test::TestRequest&) -> Answer {
            return with(row.status, body, "Retry-After", "30");
        });
        auto out = run(job_for(pki, server.port()));
        EXPECT_EQ(out.exit_code, row.want_exit) << row.status;
        EXPECT_FALSE(out.delivered);
        EXPECT_NE(out.error.find("answered " + std::to_string(row.status)), std::string::npos) << out.error;
        if (*row.reason) {
            EXPECT_NE(out.error.find(std::string("(") + row.reason + ": said \"no\"\\x0a)"), std::string::npos)
                << out.error;
        }
        EXPECT_NE(out.error.find("retry after 30 s"), std::string::npos) << out.error;
        EXPECT_EQ(out.error.find(token_for("1").substr(0, 20)), std::string::npos);
    }
}

TEST(DepositClient, EndpointWithAnotherNameIsSkippedBeforeSending) {
    TestPki pki;
    HttpsTestServer server(pki.server(),
                           [](const test::TestRequest&) -> Answer { return with(403, R"({"reason":"x"})"); });
    auto job = job_for(pki, server.port());
    const std::string good = job.endpoints[0].url;
    job.endpoints.insert(
        job.endpoints.begin(),
        Endpoint{"https://mx.other.test:" + std::to_string(server.port()) + "/v1/deposit", {"127.0.0.1"}});
    auto out = run(std::move(job));
    EXPECT_EQ(out.exit_code, kExitNoPerm);
    EXPECT_EQ(out.endpoint, good);
    EXPECT_EQ(server.requests(), 1);
    // No endpoint with a certificate for its name: temporary, nothing sent.
    auto none = job_for(pki, server.port());
    none.endpoints[0].url = "https://mx.other.test:" + std::to_string(server.port()) + "/v1/deposit";
    auto failed = run(std::move(none));
    EXPECT_EQ(failed.exit_code, kExitTempFail);
    EXPECT_NE(failed.error.find("hostname mismatch"), std::string::npos) << failed.error;
    EXPECT_EQ(server.requests(), 1);
}

TEST(DepositClient, TokenGoesOnlyToAnEndpointItsAudienceNames) {
    TestPki pki;
    std::mutex m;
    std::vector<std::string> authorizations;
    HttpsTestServer server(pki.server(), [&](const test::TestRequest& req) -> Answer {
        std::lock_guard<std::mutex> lock(m);
        authorizations.emplace_back(req["Authorization"]);
        return with(401, R"({"reason":"wrong_audience"})");
    });
    const std::string port = std::to_string(server.port());
    // A token for another server (or a bare audience): refused before any connection.
    const std::vector<std::string> others = {R"("https://mx.home.test")", R"("xproxy-deposit")",
                                             R"(["https://localhost"])", R"(["https://localhost:)" + port + R"(0"])"};
    for (const auto& aud : others) {
        auto job = job_for(pki, server.port());
        job.token = token_for(aud);
        auto out = run(std::move(job));
        EXPECT_EQ(out.exit_code, kExitNoPerm) << aud;
        EXPECT_FALSE(out.delivered);
        EXPECT_NE(out.error.find("is not for this deposit service"), std::string::npos) << out.error;
        EXPECT_NE(out.error.find("needs the audience \"https://localhost:" + port + "\""), std::string::npos)
            << out.error;
        EXPECT_TRUE(out.endpoint.empty());
    }
    // Not a JWT: its audience cannot be checked, so it is not sent either.
    auto opaque = job_for(pki, server.port());
    opaque.token = "opaque-tok-secret";
    auto refused = run(std::move(opaque));
    EXPECT_EQ(refused.exit_code, kExitNoPerm);
    EXPECT_EQ(refused.error.find("opaque-tok-secret"), std::string::npos) << refused.error;
    EXPECT_EQ(server.connections(), 0);
    // Of two endpoints, the one the audience does not name is dropped unasked.
    auto two = job_for(pki, server.port());
    two.token = token_for(R"("https://LOCALHOST:)" + port + R"(")");
    two.endpoints.insert(two.endpoints.begin(),
                         Endpoint{"https://mx.other.test:" + port + "/v1/deposit", {"127.0.0.1"}});
    auto named = run(std::move(two));
    EXPECT_EQ(named.exit_code, kExitNoPerm);  // the server's 401
    EXPECT_EQ(named.endpoint, "https://localhost:" + port + "/v1/deposit");
    EXPECT_NE(named.error.find("answered 401 (wrong_audience)"), std::string::npos) << named.error;
    EXPECT_EQ(server.connections(), 1);  // mx.other.test was not even tried
    // --allow-any-audience: the old behaviour, the token goes where the endpoint is.
    auto any = job_for(pki, server.port());
    any.token = token_for(R"("https://mx.home.test")");
    any.allow_any_audience = true;
    auto sent = run(std::move(any));
    EXPECT_EQ(sent.exit_code, kExitNoPerm);
    EXPECT_NE(sent.error.find("answered 401"), std::string::npos) << sent.error;
    std::lock_guard<std::mutex> lock(m);
    EXPECT_EQ(authorizations, (std::vector<std::string>{"Bearer " + token_for(R"("https://LOCALHOST:)" + port + R"(")"),
                                                        "Bearer " + token_for(R"("https://mx.home.test")")}));
}
