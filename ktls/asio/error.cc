#include "ktls/asio/error.h"

#include <string>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

namespace wasi_ktls::asio {

namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "wasi_ktls"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::handshake_failed: return "TLS handshake failed";
      case errc::backend_unavailable: return "requested TLS backend unavailable";
      case errc::kernel_install_failed: return "kernel TLS install failed half-way";
      case errc::tls_error: return "fatal TLS error";
      case errc::shut_down: return "write after TLS shutdown";
      case errc::not_established: return "TLS stream not established";
      case errc::operation_in_progress: return "another operation of this kind is outstanding";
    }
    return "unknown wasi_ktls error";
  }
};

}  // namespace

const boost::system::error_category& error_category() {
  static const Category c;
  return c;
}

boost::system::error_code make_error_code(errc e) {
  return {static_cast<int>(e), error_category()};
}

boost::system::error_code error_code_of(const Error& e) {
  switch (e.kind) {
    case ErrorKind::truncated: return boost::asio::ssl::error::stream_truncated;
    case ErrorKind::cancelled: return boost::asio::error::operation_aborted;
    case ErrorKind::timeout: return boost::asio::error::timed_out;
    case ErrorKind::handshake: return make_error_code(errc::handshake_failed);
    case ErrorKind::backend_unavailable: return make_error_code(errc::backend_unavailable);
    case ErrorKind::kernel_install: return make_error_code(errc::kernel_install_failed);
    case ErrorKind::closed: return make_error_code(errc::shut_down);
    case ErrorKind::usage: return make_error_code(errc::operation_in_progress);
    case ErrorKind::system:
      if (e.sys_errno != 0) return {e.sys_errno, boost::system::system_category()};
      return make_error_code(errc::tls_error);
    default: return make_error_code(errc::tls_error);
  }
}

}  // namespace wasi_ktls::asio
