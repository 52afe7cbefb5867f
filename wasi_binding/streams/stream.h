// The host side of wasi:io streams. Every stream the guest can hold (a TCP socket's, a TLS
// connection's plaintext, stdio) implements these, so wasi:io/streams (interfaces/) and the
// TLS handshake over streams of any origin use one interface. No call here ever waits:
// blocking variants are the poll loop plus these.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "wasi_binding/abi/resource_table.h"
#include "wasi_binding/streams/pollee.h"

namespace wasi_ktls::wasi {

struct StreamResult {
  enum class Kind : std::uint8_t { ok, closed, failed };
  Kind kind = Kind::ok;
  std::uint64_t n = 0;  // ok: bytes read / written, or the write permit
  std::string error;    // failed: last-operation-failed's io-error text

  static StreamResult ok_n(std::uint64_t n) { return {Kind::ok, n, {}}; }
  static StreamResult closed() { return {Kind::closed, 0, {}}; }
  static StreamResult failed(std::string e) { return {Kind::failed, 0, std::move(e)}; }
  bool is_ok() const { return kind == Kind::ok; }
};

class InputStream : public Resource, public Pollee {
 public:
  std::string_view type() const override { return "input-stream"; }
  // Up to into.size() bytes that are here now; ok(0) when none are yet. ready() is true when
  // this would give bytes, `closed` or an error.
  virtual StreamResult read(std::span<std::uint8_t> into) = 0;
  // The TCP socket these bytes come straight from, with none of them buffered in the host,
  // or -1: a TLS handshake given this stream may run on the socket itself. What the guest
  // read before (a plaintext prologue such as PostgreSQL's SSLRequest answer) is no obstacle.
  virtual int raw_socket() const { return -1; }
};

class OutputStream : public Resource, public Pollee {
 public:
  std::string_view type() const override { return "output-stream"; }
  // How many bytes write() takes now (0: wait for ready()), or closed / failed.
  virtual StreamResult check_write() = 0;
  // At most the last permit: all of `data` is taken (sent now, or the rest buffered).
  virtual StreamResult write(std::span<const std::uint8_t> data) = 0;
  // Starts sending what is buffered; flushed() once it is all gone. ready() is then true.
  virtual StreamResult flush() = 0;
  virtual bool flushed() = 0;
  virtual int raw_socket() const { return -1; }

  // What the guest's last check-write permitted and it has not written yet: a write beyond
  // it traps, as the WIT says.
  std::uint64_t permit = 0;
};

}  // namespace wasi_ktls::wasi
