// config_test: xproxy-depositd's configuration checks name the option at fault: required
// options, key files that others may read, one key source, ranges, listener and MTA forms;
// an --audience that is not the server's own https origin is a warning only.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "config.hpp"

using namespace xproxy::depositd;

namespace {

class ConfigCheck : public ::testing::Test {
protected:
    void SetUp() override {
        if (dir_.empty()) {  // SetUp() again within a test starts from a valid configuration
            char tmpl[] = "/tmp/depositd-config-XXXXXX";
            ASSERT_NE(mkdtemp(tmpl), nullptr);
            dir_ = tmpl;
        }
        c_ = Config{};
        c_.listen = {"inet:127.0.0.1:8443"};
        c_.tls_cert = file("cert.pem", 0644);
        c_.tls_key = file("key.pem", 0600);
        c_.keyring = file("keyring", 0600);
        c_.receipt_key = file("receipt.key", 0600);
        c_.receipt_kid = "r1";
        c_.issuer = "https://idp.example";
        c_.audience = "xproxy";
        c_.jwks_file = file("jwks.json", 0644);
        c_.directory = file("directory", 0644);
    }
    void TearDown() override { (void)std::system(("rm -rf " + dir_).c_str()); }
    std::string file(const std::string& name, mode_t mode) {
        const std::string p = dir_ + "/" + name;
        std::ofstream(p) << "x\n";
        chmod(p.c_str(), mode);
        return p;
    }
    std::string error() {
        auto r = check_config(c_);
        return r ? std::string() : r.error();
    }
    std::string dir_;
    Config c_;
};

TEST_F(ConfigCheck, ValidAndDefaults) {
    EXPECT_EQ(error(), "");
    EXPECT_FALSE(c_.server_name.empty()) << "the host name by default";
    EXPECT_FALSE(c_.helo_name.empty());
}

TEST_F(ConfigCheck, Required) {
    c_.listen.clear();
    EXPECT_NE(error().find("--listen is required"), std::string::npos);
    SetUp();
    c_.audience.clear();
    EXPECT_NE(error().find("--audience is required"), std::string::npos);
    SetUp();
    c_.directory.clear();
    EXPECT_NE(error().find("--directory is required"), std::string::npos);
}

TEST_F(ConfigCheck, KeyFilesOwnerOnly) {
    for (auto member : {&Config::tls_key, &Config::keyring, &Config::receipt_key}) {
        SetUp();
        chmod((c_.*member).c_str(), 0640);
        const std::string e = error();
        EXPECT_NE(e.find("--"), std::string::npos) << e;
        EXPECT_NE(e.find("0600 or tighter"), std::string::npos) << e;
    }
}

TEST_F(ConfigCheck, OneKeySource) {
    c_.jwks_discovery = true;
    EXPECT_NE(error().find("exactly one of --jwks-file and --jwks-discovery"), std::string::npos);
    c_.jwks_file.clear();
    EXPECT_EQ(error(), "");
    c_.discovery_url = "http://idp.example/.well-known/openid-configuration";
    EXPECT_NE(error().find("--discovery-url must be an https:// URL"), std::string::npos);
    c_.discovery_url.clear();
    c_.jwks_discovery = false;
    EXPECT_NE(error().find("exactly one"), std::string::npos);
}

TEST_F(ConfigCheck, Forms) {
    c_.listen = {"unix:/run/x.sock"};
    EXPECT_NE(error().find("TCP only"), std::string::npos);
    SetUp();
    c_.mta = "smtp.example:25";
    EXPECT_NE(error().find("--mta must be"), std::string::npos);
    SetUp();
    c_.mta = "unix:/var/spool/postfix/public/smtp";
    EXPECT_EQ(error(), "");
    c_.receipt_kid = "";
    EXPECT_NE(error().find("--receipt-kid"), std::string::npos);
}

TEST_F(ConfigCheck, Ranges) {
    c_.max_recipients = 0;
    EXPECT_NE(error().find("--max-recipients"), std::string::npos);
    SetUp();
    c_.max_connections = 0;
    EXPECT_NE(error().find("--max-connections"), std::string::npos);
    SetUp();
    c_.max_connections_per_client = 0;
    EXPECT_NE(error().find("--max-connections-per-client"), std::string::npos);
    SetUp();
    c_.clock_skew = -1;
    EXPECT_NE(error().find("--clock-skew"), std::string::npos);
    SetUp();
    c_.max_message_size = 0;
    EXPECT_NE(error().find("--max-message-size"), std::string::npos);
}

}  // namespace

TEST_F(ConfigCheck, AudienceNotTheServersOriginIsAWarningOnly) {
    c_.server_name = "mx.example.org";
    EXPECT_EQ(error(), "");  // "xproxy": still valid
    EXPECT_NE(audience_warning(c_).find("--audience xproxy is not an https URL naming --server-name mx.example.org"),
              std::string::npos)
        << audience_warning(c_);
    for (const char* aud : {"https://mx.example.org", "https://MX.example.org:8443", "https://mx.example.org/"}) {
        c_.audience = aud;
        EXPECT_EQ(audience_warning(c_), "") << aud;
    }
    for (const char* aud :
         {"http://mx.example.org", "https://other.example.org", "https://mx.example.org.evil.test", "mx.example.org"}) {
        c_.audience = aud;
        EXPECT_EQ(error(), "") << aud;
        EXPECT_NE(audience_warning(c_), "") << aud;
    }
}
