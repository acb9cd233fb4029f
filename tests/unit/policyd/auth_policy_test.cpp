// policyd_auth_policy_test: xproxy-policyd's Dovecot auth policy service
// (policyd/auth_policy.hpp) without sockets: the API key as Dovecot sends it (X-API-Key
// with the space Dovecot leaves after ':', or Authorization: Bearer) is required and
// compared exactly; method, command and body are checked; allow answers come from the
// directory, over TLS also for imaps; a report is answered 0; the start-up checks of the
// options refuse a TCP listener without a key and unfit key files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "auth_policy.hpp"
#include <xproxy/daemon/log.hpp>
#include <xproxy/policy/directory_file.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::policyd;
namespace bhttp = boost::beast::http;

const char* const kKey = "0123456789abcdef-key";

const char* const kDirectory = R"(domain example.com services=smtp,submission,imap
user alice@example.com
domain paused.example state=inactive services=imap
user dave@paused.example
domain secure.example services=imaps
user sue@secure.example
)";

class AuthPolicyServiceTest : public ::testing::Test {
protected:
    void SetUp() override {
        log::init("xproxy-test", log::Sink::off);
        use_key(kKey);
    }
    void use_key(const char* key) {
        auto s = std::make_shared<State>();
        auto d = parse_directory(kDirectory);
        ASSERT_TRUE(d) << d.error();
        s->directory = DirectoryBackend::fixed(std::make_shared<const Directory>(std::move(*d)));
        if (key) s->auth_policy_key.assign(key, std::strlen(key));
        states_.set(s);
    }
    static http::Request post(const std::string& target, const std::string& body) {
        http::Request r{bhttp::verb::post, target, 11};
        r.set(bhttp::field::content_type, "application/json");
        r.body() = body;
        r.prepare_payload();
        return r;
    }
    static http::Request keyed(const std::string& target, const std::string& body) {
        auto r = post(target, body);
        r.set("X-API-Key", std::string(" ") + kKey);  // Dovecot: the value after ':' as it is
        return r;
    }
    http::Response ask(const http::Request& r) const { return service_.handle(r, "127.0.0.1:4711"); }

    StateHolder states_;
    AuthPolicyService service_{states_};
};

const std::string kAlice = R"({"login":"alice@example.com","protocol":"imap","remote":"192.0.2.1","tls":false})";

}  // namespace

TEST_F(AuthPolicyServiceTest, KeyIsRequiredAndComparedExactly) {
    struct Row {
        const char* header;
        const char* value;
        unsigned want_status;
    };
    const Row rows[] = {
        {"X-API-Key", "0123456789abcdef-key", 200},
        {"X-API-Key", " 0123456789abcdef-key ", 200},
        {"Authorization", "Bearer 0123456789abcdef-key", 200},
        {"Authorization", "bearer  0123456789abcdef-key", 200},
        {"X-API-Key", "0123456789abcdef-ke", 401},
        {"X-API-Key", "0123456789abcdef-key2", 401},
        {"X-API-Key", "", 401},
        {"Authorization", "Basic 0123456789abcdef-key", 401},
        {"Authorization", "0123456789abcdef-key", 401},
        {"X-Other", "0123456789abcdef-key", 401},
    };
    for (const auto& row : rows) {
        auto r = post("/?command=allow", kAlice);
        r.set(row.header, row.value);
        EXPECT_EQ(ask(r).result_int(), row.want_status) << row.header << ": " << row.value;
    }
    auto none = post("/?command=allow", kAlice);
    EXPECT_EQ(ask(none).result_int(), 401u);
    auto both = keyed("/?command=allow", kAlice);  // two places for a key: ambiguous
    both.set(bhttp::field::authorization, std::string("Bearer ") + kKey);
    EXPECT_EQ(ask(both).result_int(), 401u);
}

TEST_F(AuthPolicyServiceTest, UnauthorizedRequestsAreLoggedOncePerBurst) {
    log::init("xproxy-test", log::Sink::stderr_, log::Level::info);
    testing::internal::CaptureStderr();
    for (int i = 0; i < 2000; ++i) EXPECT_EQ(ask(post("/?command=allow", kAlice)).result_int(), 401u);
    EXPECT_EQ(ask(keyed("/?command=allow", kAlice)).result_int(), 200u);
    const std::string err = testing::internal::GetCapturedStderr();
    std::size_t lines = 0;
    for (char c : err) lines += c == '\n';
    EXPECT_LE(lines, 3u) << err;
    EXPECT_NE(err.find("event=auth_policy_unauthorized peer=127.0.0.1:4711 status=401"), std::string::npos) << err;
    EXPECT_NE(err.find("event=auth_policy_unauthorized_end refused=2000"), std::string::npos) << err;
}

TEST_F(AuthPolicyServiceTest, WithoutAConfiguredKeyNoneIsAsked) {
    use_key(nullptr);  // a unix-socket listener
    EXPECT_EQ(ask(post("/?command=allow", kAlice)).body(), R"({"msg":"","status":0})");
}

TEST_F(AuthPolicyServiceTest, MethodCommandAndBodyAreChecked) {
    auto get = keyed("/?command=allow", kAlice);
    get.method(bhttp::verb::get);
    EXPECT_EQ(ask(get).result_int(), 405u);
    EXPECT_EQ(ask(keyed("/", kAlice)).result_int(), 400u);
    EXPECT_EQ(ask(keyed("/?command=deny", kAlice)).result_int(), 400u);
    auto bad = ask(keyed("/?command=allow", "[]"));
    EXPECT_EQ(bad.result_int(), 400u);
    EXPECT_EQ(bad.body(), "not a JSON object\n");
    EXPECT_EQ(ask(keyed("/?command=allow", R"({"login":"alice@example.com")")).result_int(), 400u);
}

TEST_F(AuthPolicyServiceTest, AllowAnswersFromTheDirectory) {
    struct Row {
        std::string body;
        std::string want;
    };
    const Row rows[] = {
        {kAlice, R"({"msg":"","status":0})"},
        {R"({"login":"ALICE@Example.COM","protocol":"imap"})", R"({"msg":"","status":0})"},
        {R"({"login":"alice@example.com","protocol":"smtp"})", R"({"msg":"","status":0})"},
        {R"({"login":"dave@paused.example","protocol":"imap"})",
         R"({"msg":"Domain temporarily suspended","status":-1})"},
        {R"({"login":"nobody@example.com","protocol":"imap"})", R"({"msg":"Unknown user","status":-1})"},
        {R"({"login":"alice@example.com","protocol":"pop3"})",
         R"({"msg":"Service pop3 not enabled for domain example.com","status":-1})"},
        {R"({"login":"alice@example.com","protocol":"sieve"})", R"({"msg":"Service not available","status":-1})"},
        {R"({"login":"alice@example.com"})",
         R"({"msg":"Login refused: the policy request lacks the login or the protocol","status":-1})"},
        // imaps only: IMAP over TLS is let in, plain IMAP is not
        {R"({"login":"sue@secure.example","protocol":"imap","tls":true})", R"({"msg":"","status":0})"},
        {R"({"login":"sue@secure.example","protocol":"imap","tls":false})",
         R"({"msg":"Service imap not enabled for domain secure.example","status":-1})"},
    };
    for (const auto& row : rows) {
        auto res = ask(keyed("/?command=allow", row.body));
        EXPECT_EQ(res.result_int(), 200u) << row.body;
        EXPECT_EQ(res[bhttp::field::content_type], "application/json") << row.body;
        EXPECT_EQ(res.body(), row.want) << row.body;
    }
}

TEST_F(AuthPolicyServiceTest, MasterUserLoginsAreJudgedAsTheUserOpenedAndLogged) {
    // Dovecot sends the user a master login opens as the login, and the master user as
    // "master": the decision is the login's, the master user only named in the log. A
    // "user*master" login (an attribute that is not %{requested_username}) is no user.
    log::init("xproxy-test", log::Sink::stderr_, log::Level::info);
    testing::internal::CaptureStderr();
    const std::string dave =
        R"({"login":"dave@paused.example","master":"admin","protocol":"imap","remote":"192.0.2.1"})";
    EXPECT_EQ(ask(keyed("/?command=allow", dave)).body(), R"({"msg":"Domain temporarily suspended","status":-1})");
    EXPECT_EQ(
        ask(keyed("/?command=allow", R"({"login":"alice@example.com","master":"admin","protocol":"imap"})")).body(),
        R"({"msg":"","status":0})");
    EXPECT_EQ(ask(keyed("/?command=allow", R"({"login":"alice@example.com*admin","protocol":"imap"})")).body(),
              R"({"msg":"Unknown user","status":-1})");
    EXPECT_EQ(ask(keyed("/?command=report", R"({"login":"alice@example.com","master":"a\"b c","protocol":"imap",)"
                                            R"("success":true,"policy_reject":false})"))
                  .body(),
              R"({"msg":"","status":0})");
    EXPECT_EQ(ask(keyed("/?command=allow", R"({"login":"dave@paused.example","master":"","protocol":"imap"})")).body(),
              R"({"msg":"Domain temporarily suspended","status":-1})");
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find(R"(event=auth_policy_refuse login="dave@paused.example" master="admin" remote=192.0.2.1 )"
                       R"(protocol=imap service=imap tls=no reason=domain_inactive )"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(R"(event=auth_policy_refuse login="alice@example.com*admin" remote=- protocol=imap )"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(R"(event=auth_policy_report login="alice@example.com" master="a\x22b c" remote=- )"
                       R"(protocol=imap success=yes policy_reject=no )"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(R"(event=auth_policy_refuse login="dave@paused.example" remote=- protocol=imap )"),
              std::string::npos)
        << err;
}

TEST_F(AuthPolicyServiceTest, ReportIsAnsweredZero) {
    auto res = ask(keyed("/?command=report",
                         R"({"login":"dave@paused.example","protocol":"imap","success":false,"policy_reject":true})"));
    EXPECT_EQ(res.body(), R"({"msg":"","status":0})");
}

TEST(AuthPolicyOptions, StartUpChecks) {
    char dir[] = "/tmp/xproxy-authpolicy-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    auto write = [&](const std::string& name, const std::string& text, mode_t mode) {
        const std::string path = std::string(dir) + "/" + name;
        std::ofstream(path) << text;
        chmod(path.c_str(), mode);
        return path;
    };
    Options o;
    o.auth_policy_socket_group = "";
    o.auth_policy_listen = "inet:127.0.0.1:10041";
    SecretBytes key;
    auto r = check_auth_policy_options(o, &key);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("needs --auth-policy-secret-file"), std::string::npos) << r.error();
    o.auth_policy_listen = "unix:/run/xproxy/auth-policy.sock";  // the socket's mode decides
    EXPECT_TRUE(check_auth_policy_options(o, &key));
    o.auth_policy_listen = "systemd";
    EXPECT_FALSE(check_auth_policy_options(o, &key));
    o.auth_policy_listen = "inet:127.0.0.1:10041";
    struct Row {
        const char* name;
        std::string text;
        mode_t mode;
        const char* want_error;  // "" = accepted
    };
    const Row rows[] = {
        {"ok", std::string(kKey), 0640, ""},
        {"ok_nl", std::string(kKey) + "\n", 0600, ""},
        {"loose", std::string(kKey), 0644, "must be a regular file of mode 0640 or tighter"},
        {"group_write", std::string(kKey), 0660, "must be a regular file of mode 0640 or tighter"},
        {"short", "0123456789", 0600, "holds fewer than 16 bytes"},
        {"space", "0123456789 abcdef-key", 0600, "must hold printable ASCII without spaces"},
    };
    for (const auto& row : rows) {
        o.auth_policy_secret_file = write(row.name, row.text, row.mode);
        SecretBytes k;
        auto got = check_auth_policy_options(o, &k);
        if (*row.want_error == 0) {
            ASSERT_TRUE(got) << row.name << ": " << got.error();
            EXPECT_EQ(k.view(), kKey) << row.name;
        } else {
            ASSERT_FALSE(got) << row.name;
            EXPECT_NE(got.error().find(row.want_error), std::string::npos) << row.name << ": " << got.error();
        }
        unlink(o.auth_policy_secret_file.c_str());
    }
    // An address other than a loopback one is reachable from other hosts: refused without
    // --allow-peers, accepted with it (its peers are then checked against the list).
    o.auth_policy_secret_file = write("open", std::string(kKey), 0600);
    for (const char* spec : {"inet:0.0.0.0:10041", "inet6:[::]:10041", "inet:192.0.2.1:10041"}) {
        o.auth_policy_listen = spec;
        o.allow_peers = "";
        auto open = check_auth_policy_options(o, &key);
        ASSERT_FALSE(open) << spec;
        EXPECT_NE(open.error().find("needs --allow-peers"), std::string::npos) << open.error();
        o.allow_peers = "10.0.0.0/8";
        EXPECT_TRUE(check_auth_policy_options(o, &key)) << spec;
    }
    o.allow_peers = "";
    for (const char* spec : {"inet:127.0.0.1:10041", "inet:127.0.0.2:10041", "inet6:[::1]:10041"}) {
        o.auth_policy_listen = spec;
        EXPECT_TRUE(check_auth_policy_options(o, &key)) << spec;
    }
    auto with = daemon::parse_listen("inet:0.0.0.0:10041");
    ASSERT_TRUE(with);
    const CidrSet allow = *CidrSet::parse("10.0.0.0/8");
    EXPECT_TRUE(auth_policy_limits(&*with, &allow).allow_peers);
    auto loop = daemon::parse_listen("inet:127.0.0.1:10041");
    ASSERT_TRUE(loop);
    EXPECT_FALSE(auth_policy_limits(&*loop, &allow).allow_peers);
    unlink(o.auth_policy_secret_file.c_str());
    rmdir(dir);
}
