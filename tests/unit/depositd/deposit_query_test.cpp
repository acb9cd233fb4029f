// deposit_query_test: the query of POST /v1/deposit (rcpt= repeatable, from=), percent
// decoding, canonical addresses, and the problem documents of every error answer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "deposit_service.hpp"

using namespace xproxy::depositd;

namespace {

TEST(PercentDecode, Rows) {
    EXPECT_EQ(percent_decode("a%40b.example"), "a@b.example");
    EXPECT_EQ(percent_decode("a+b%2Bc"), "a+b+c") << "'+' is a plus sign, not a space";
    EXPECT_EQ(percent_decode("%41%4a%4A"), "AJJ");
    EXPECT_EQ(percent_decode(""), "");
    EXPECT_EQ(percent_decode("%"), std::nullopt);
    EXPECT_EQ(percent_decode("%4"), std::nullopt);
    EXPECT_EQ(percent_decode("%zz"), std::nullopt);
    EXPECT_EQ(percent_decode("a%0Db"), std::nullopt) << "no control bytes";
    EXPECT_EQ(percent_decode("a%00b"), std::nullopt);
    EXPECT_EQ(percent_decode("a%7Fb"), std::nullopt);
}

TEST(DepositQuery, RcptAndFrom) {
    auto q = parse_deposit_query("rcpt=bob%40Example.COM&rcpt=carol@example.com&from=%3Calice@example.org%3E", 10);
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ(q->rcpt, (std::vector<std::string>{"bob@example.com", "carol@example.com"}));
    EXPECT_EQ(q->from, "alice@example.org");
    auto empty = parse_deposit_query("", 10);
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->rcpt.empty());
    EXPECT_FALSE(empty->from);
}

TEST(DepositQuery, Refused) {
    const char* rows[] = {"rcpt=nobody",   "rcpt=",         "from=a@b&from=c@d", "to=bob@example.com",
                          "rcpt=a%ZZ@b.c", "rcpt=a%0A@b.c", "from=@b.example",   "rcpt=a@b&rcpt=c@d&rcpt=e@f"};
    for (const char* r : rows) EXPECT_FALSE(parse_deposit_query(r, 2)) << r;
}

TEST(Problem, Document) {
    const Response r = problem(403, "sender_not_allowed", "not yours: <a\x01@b>");
    EXPECT_EQ(r.status, 403);
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].second, "application/problem+json");
    const auto j = nlohmann::json::parse(r.body);
    EXPECT_EQ(j["type"], "about:blank");
    EXPECT_EQ(j["title"], "Forbidden");
    EXPECT_EQ(j["status"], 403);
    EXPECT_EQ(j["reason"], "sender_not_allowed");
    EXPECT_EQ(j["detail"].get<std::string>().find('\x01'), std::string::npos) << "control bytes escaped";
}

}  // namespace
