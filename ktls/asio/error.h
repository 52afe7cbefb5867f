// The Asio layer's error codes: the library's Error values (base/result.h) become
// boost::system::error_codes by their kind, as Asio code expects them (truncation is
// ssl::error::stream_truncated, cancellation operation_aborted, ...); errors of our own are in
// the "wasi_ktls" category. An error_code cannot carry the full reason: the stream keeps it
// (last_error()).
#pragma once

#include <type_traits>

#include <boost/system/error_code.hpp>

#include "base/result.h"

namespace wasi_ktls::asio {

enum class errc {
  handshake_failed = 1,   // the TLS handshake failed (last_error(): the verify reason or alert)
  backend_unavailable,    // backend ktls requested (or WASI_KTLS_BACKEND invalid): why not
  kernel_install_failed,  // the kernel took one key and refused the other: connection is over
  tls_error,              // a fatal TLS error after the handshake (alert, bad record, KeyUpdate)
  shut_down,              // write after shutdown (or after our fatal alert)
  not_established,        // read/write before a successful handshake, or a second handshake
  operation_in_progress,  // a second read (or write) while one is outstanding
};

const boost::system::error_category& error_category();
boost::system::error_code make_error_code(errc e);

// The error_code an Asio caller gets for `e`.
boost::system::error_code error_code_of(const Error& e);

}  // namespace wasi_ktls::asio

template <>
struct boost::system::is_error_code_enum<wasi_ktls::asio::errc> : std::true_type {};
