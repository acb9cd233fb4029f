// daemon_tls_test: TLS contexts as the daemons set them up (xproxy/daemon/tls.hpp): TLS
// 1.2 at least and no renegotiation on both sides, the client's verification on or off,
// unusable files refused at start-up, private keys readable by their owner only.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <xproxy/daemon/tls.hpp>

namespace {

namespace ssl = boost::asio::ssl;
using namespace xproxy;

}  // namespace

TEST(Tls, BothSidesAreHardened) {
    for (auto method : {ssl::context::tls_client, ssl::context::tls_server}) {
        auto ctx = daemon::hardened_tls_context(method);
        EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->native_handle()), TLS1_2_VERSION);
        EXPECT_NE(SSL_CTX_get_options(ctx->native_handle()) & SSL_OP_NO_RENEGOTIATION, 0u);
    }
}

TEST(Tls, ClientVerifiesOnlyWhenAsked) {
    auto verify = daemon::tls_client_context(true, "");
    EXPECT_EQ(SSL_CTX_get_verify_mode(verify->native_handle()), SSL_VERIFY_PEER);
    EXPECT_EQ(SSL_CTX_get_min_proto_version(verify->native_handle()), TLS1_2_VERSION);
    auto none = daemon::tls_client_context(false, "");
    EXPECT_EQ(SSL_CTX_get_verify_mode(none->native_handle()), SSL_VERIFY_NONE);
}

TEST(Tls, UnusableFilesThrow) {
    EXPECT_ANY_THROW(daemon::tls_client_context(true, "/nonexistent/ca.pem"));
    EXPECT_ANY_THROW(daemon::tls_server_context("/nonexistent/cert.pem", "/nonexistent/key.pem"));
}

TEST(Tls, PrivateKeyFileModeIsChecked) {
    char path[] = "/tmp/xproxy-tls-key-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_EQ(chmod(path, 0600), 0);
    EXPECT_TRUE(daemon::check_private_key_file(path));
    ASSERT_EQ(chmod(path, 0640), 0);
    auto open = daemon::check_private_key_file(path);
    ASSERT_FALSE(open);
    EXPECT_EQ(open.error(), std::string(path) + " must not be readable by group or others (mode 0600 or tighter)");
    unlink(path);
    auto gone = daemon::check_private_key_file(path);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error(), "cannot stat " + std::string(path));
}
