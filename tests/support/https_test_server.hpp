// https_test_server.hpp: for unit tests of HTTPS clients. TestPki makes a CA and a server
// certificate (P-256, made in memory with OpenSSL, written to a private temporary
// directory); HttpsTestServer serves HTTPS on 127.0.0.1 from its own thread, answering
// each request with what a handler returns (nothing = hold the connection unanswered),
// and counts the TCP connections it accepted (keep-alive checks). Its handshake can be
// withheld to model a server that accepts and then never speaks.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace xproxy::test {

namespace test_asio = boost::asio;
namespace test_http = boost::beast::http;

using TestRequest = test_http::request<test_http::string_body>;
using TestResponse = test_http::response<test_http::string_body>;

// A key and its certificate, PEM.
struct TestCert {
    std::string cert_pem;
    std::string key_pem;
};

class TestPki {
public:
    // A CA named `ca_name`, and a server certificate it issued for `san`
    // ("DNS:localhost,IP:127.0.0.1" form).
    explicit TestPki(const std::string& ca_name = "Test CA", const std::string& san = "DNS:localhost,IP:127.0.0.1") {
        char tmpl[] = "/tmp/xproxy-pki-XXXXXX";
        if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
        dir_ = tmpl;
        EVP_PKEY* ca_key = EVP_EC_gen("P-256");
        X509* ca = make_cert(ca_name, ca_key, nullptr, ca_key, "critical,CA:TRUE", "");
        ca_ = {pem(ca), pem(ca_key)};
        server_ = issue("server", san, ca, ca_key);
        client_ = issue("client", "DNS:client.test", ca, ca_key);
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        write("ca.pem", ca_.cert_pem, 0644);
        write("server.pem", server_.cert_pem, 0644);
        write("server.key", server_.key_pem, 0600);
        write("client.pem", client_.cert_pem, 0644);
        write("client.key", client_.key_pem, 0600);
    }
    ~TestPki() {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;

    const TestCert& server() const { return server_; }
    std::string ca_file() const { return dir_ + "/ca.pem"; }
    std::string client_cert_file() const { return dir_ + "/client.pem"; }
    std::string client_key_file() const { return dir_ + "/client.key"; }
    const std::string& dir() const { return dir_; }

private:
    static std::string pem(X509* x) {
        BIO* b = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(b, x);
        return drain(b);
    }
    static std::string pem(EVP_PKEY* k) {
        BIO* b = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
        return drain(b);
    }
    static std::string drain(BIO* b) {
        char* data = nullptr;
        long n = BIO_get_mem_data(b, &data);
        std::string out(data, static_cast<std::size_t>(n));
        BIO_free(b);
        return out;
    }
    static void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
        if (!ext) throw std::runtime_error("bad extension " + value);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    static X509* make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                           const std::string& basic, const std::string& san) {
        static long serial = 1;
        X509* x = X509_new();
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, key);
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
        add_ext(x, issuer, NID_basic_constraints, basic);
        if (!san.empty()) add_ext(x, issuer, NID_subject_alt_name, san);
        X509_sign(x, issuer_key, EVP_sha256());
        return x;
    }
    static TestCert issue(const std::string& cn, const std::string& san, X509* ca, EVP_PKEY* ca_key) {
        EVP_PKEY* key = EVP_EC_gen("P-256");
        X509* x = make_cert(cn, key, ca, ca_key, "critical,CA:FALSE", san);
        TestCert out{pem(x), pem(key)};
        X509_free(x);
        EVP_PKEY_free(key);
        return out;
    }
    void write(const std::string& name, const std::string& text, mode_t mode) const {
        const std::string path = dir_ + "/" + name;
        std::ofstream(path) << text;
        chmod(path.c_str(), mode);
    }

    std::string dir_;
    TestCert ca_;
    TestCert server_;
    TestCert client_;
};

class HttpsTestServer {
public:
    // The answer to a request; nullopt = send nothing and keep the connection open.
    // close_after: close the connection after this answer (without saying so).
    struct Answer {
        TestResponse response;
        bool close_after = false;
    };
    using Handler = std::function<std::optional<Answer>(const TestRequest&)>;

    HttpsTestServer(const TestCert& cert, Handler handler, bool handshake = true)
        : ctx_(test_asio::ssl::context::tls_server), handler_(std::move(handler)), handshake_(handshake) {
        ctx_.use_certificate_chain(test_asio::buffer(cert.cert_pem));
        ctx_.use_private_key(test_asio::buffer(cert.key_pem), test_asio::ssl::context::pem);
        acceptor_.open(test_asio::ip::tcp::v4());
        acceptor_.bind({test_asio::ip::make_address("127.0.0.1"), 0});
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        test_asio::co_spawn(io_, accept_loop(), test_asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~HttpsTestServer() {
        io_.stop();
        thread_.join();
    }
    HttpsTestServer(const HttpsTestServer&) = delete;
    HttpsTestServer& operator=(const HttpsTestServer&) = delete;

    // Require client certificates issued by this CA file.
    void require_client_cert(const std::string& ca_file) {
        ctx_.load_verify_file(ca_file);
        ctx_.set_verify_mode(test_asio::ssl::verify_peer | test_asio::ssl::verify_fail_if_no_peer_cert);
    }
    std::uint16_t port() const { return port_; }
    int connections() const { return connections_.load(); }
    int requests() const { return requests_.load(); }

    static TestResponse response(unsigned status, std::string body = {}) {
        TestResponse r{static_cast<test_http::status>(status), 11};
        r.body() = std::move(body);
        r.prepare_payload();
        return r;
    }

private:
    using Stream = test_asio::ssl::stream<test_asio::ip::tcp::socket>;

    test_asio::awaitable<void> accept_loop() {
        for (;;) {
            auto sock = co_await acceptor_.async_accept(test_asio::use_awaitable);
            ++connections_;
            auto stream = std::make_shared<Stream>(std::move(sock), ctx_);
            held_.push_back(stream);  // only the server thread touches held_
            if (handshake_) test_asio::co_spawn(io_, serve(stream), test_asio::detached);
        }
    }
    test_asio::awaitable<void> serve(std::shared_ptr<Stream> stream) {
        boost::system::error_code ec;
        co_await stream->async_handshake(test_asio::ssl::stream_base::server,
                                         test_asio::redirect_error(test_asio::use_awaitable, ec));
        if (ec) co_return;
        boost::beast::flat_buffer buffer;
        for (;;) {
            TestRequest req;
            co_await test_http::async_read(*stream, buffer, req,
                                           test_asio::redirect_error(test_asio::use_awaitable, ec));
            if (ec) co_return;
            ++requests_;
            auto answer = handler_(req);
            if (!answer) co_return;  // held_ keeps the connection open, silent
            co_await test_http::async_write(*stream, answer->response,
                                            test_asio::redirect_error(test_asio::use_awaitable, ec));
            if (ec || answer->close_after || !answer->response.keep_alive()) {
                stream->lowest_layer().close(ec);
                co_return;
            }
        }
    }

    test_asio::io_context io_;
    test_asio::ssl::context ctx_;
    test_asio::ip::tcp::acceptor acceptor_{io_};
    Handler handler_;
    bool handshake_;
    std::uint16_t port_ = 0;
    std::atomic<int> connections_{0};
    std::atomic<int> requests_{0};
    std::list<std::shared_ptr<Stream>> held_;
    std::thread thread_;
};

}  // namespace xproxy::test
