// tls.cpp: TLS contexts; see tls.hpp.
#include <xproxy/daemon/tls.hpp>

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <stdexcept>

namespace xproxy::daemon {

namespace ssl = boost::asio::ssl;

std::unique_ptr<ssl::context> hardened_tls_context(ssl::context::method method) {
    auto ctx = std::make_unique<ssl::context>(method);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
        throw std::runtime_error("cannot set TLS 1.2 as the minimum");
    return ctx;
}

std::unique_ptr<ssl::context> tls_server_context(const std::string& cert_file, const std::string& key_file) {
    auto ctx = hardened_tls_context(ssl::context::tls_server);
    ctx->use_certificate_chain_file(cert_file);
    ctx->use_private_key_file(key_file, ssl::context::pem);
    return ctx;
}

std::unique_ptr<ssl::context> tls_client_context(bool verify, const std::string& ca_file) {
    auto ctx = hardened_tls_context(ssl::context::tls_client);
    if (verify) {
        if (ca_file.empty()) ctx->set_default_verify_paths();
        else ctx->load_verify_file(ca_file);
        ctx->set_verify_mode(ssl::verify_peer);
    } else {
        ctx->set_verify_mode(ssl::verify_none);
    }
    return ctx;
}

Expected<void> check_private_key_file(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return Failure{"cannot stat " + path};
    if (st.st_mode & 077) return Failure{path + " must not be readable by group or others (mode 0600 or tighter)"};
    return {};
}

}  // namespace xproxy::daemon
