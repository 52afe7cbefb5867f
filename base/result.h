// Errors are values: every fallible call returns Result<T>, never throws across a module.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace wasi_ktls {

// What kind of failure an Error is, so callers (the Asio error mapping, the wasm binding's
// error codes) decide by kind, never by matching message text.
enum class ErrorKind : std::uint8_t {
  unspecified,
  usage,                // the caller used the API out of order (wrong state, operation in flight)
  config,               // configuration that cannot be used (files, names, versions, policy)
  system,               // a system call failed; sys_errno says how
  timeout,              // a bound on a wait passed
  cancelled,            // the operation was cancelled (abort, Asio cancellation)
  handshake,            // the TLS handshake failed (verification, peer alert, protocol)
  backend_unavailable,  // backend ktls requested but the kernel cannot take the connection
  kernel_install,       // the kernel took one key and refused the other: connection is over
  truncated,            // the peer ended the TCP stream without close_notify
  peer_alert,           // the peer sent a fatal alert
  protocol,             // the peer broke the record protocol (bad record, unexpected message)
  record_limit,         // the TX key reached its AEAD record limit and cannot be changed
  closed,               // this side already sent close_notify or a fatal alert
  would_block,          // an operation that must not wait (read_now) found the socket not ready
};

std::string_view to_string(ErrorKind k);

// What went wrong, in words a user can act on; `sys_errno` is the errno behind it, or 0.
struct Error {
  std::string message;
  int sys_errno = 0;
  ErrorKind kind = ErrorKind::unspecified;
};

template <class... Args>
Error make_error(fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...), 0};
}

template <class... Args>
Error make_error(ErrorKind kind, fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...), 0, kind};
}

// errno-carrying variant: the message ends with ": <strerror>". Kind system, or timeout for
// ETIMEDOUT and cancelled for ECANCELED.
Error errno_error(int err, std::string what);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace wasi_ktls
