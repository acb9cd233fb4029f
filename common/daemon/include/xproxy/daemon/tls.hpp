// tls.hpp: TLS contexts as every xproxy daemon sets them up (Boost.Asio over OpenSSL).
//
// Both sides: TLS 1.2 at least, set in code so that a lax system OpenSSL configuration
// cannot lower it, and no renegotiation in either direction (TLS 1.2 renegotiation only
// gives a peer a way to make us redo handshakes; OpenSSL 3 already refuses a client's by
// default, this also refuses a server's request and holds whatever the defaults). The
// context builders throw (boost::system::system_error, std::runtime_error) with OpenSSL's
// reason when a file cannot be used; the caller names the option at fault.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include <xproxy/base/result.hpp>

namespace xproxy::daemon {

// A context with the settings above and nothing else.
std::unique_ptr<boost::asio::ssl::context> hardened_tls_context(boost::asio::ssl::context::method method);

// The server side: a PEM certificate chain and its private key.
std::unique_ptr<boost::asio::ssl::context> tls_server_context(const std::string& cert_file,
                                                              const std::string& key_file);

// The client side. verify: the server's chain is checked against ca_file (PEM), or the
// system's store when ca_file is empty; the name to check is set per connection.
// Otherwise the certificate is not checked.
std::unique_ptr<boost::asio::ssl::context> tls_client_context(bool verify, const std::string& ca_file);

// A private key file must be readable by its owner only (mode 0600 or tighter).
Expected<void> check_private_key_file(const std::string& path);

}  // namespace xproxy::daemon
