// The plaintext streams of a wasi:tls client-connection: thin views of its TlsSession.
#pragma once

#include <memory>

#include "wasi_binding/streams/stream.h"
#include "wasi_binding/streams/tls_session.h"

namespace wasi_ktls::wasi {

class TlsInput final : public InputStream {
 public:
  explicit TlsInput(std::shared_ptr<TlsSession> s) : s_(std::move(s)) {}
  StreamResult read(std::span<std::uint8_t> into) override { return s_->read(into); }
  bool ready() override { return s_->readable(); }
  Wait wait() override { return s_->read_wait(); }

 private:
  std::shared_ptr<TlsSession> s_;
};

class TlsOutput final : public OutputStream {
 public:
  explicit TlsOutput(std::shared_ptr<TlsSession> s) : s_(std::move(s)) {}
  StreamResult check_write() override { return s_->check_write(); }
  StreamResult write(std::span<const std::uint8_t> d) override { return s_->write(d); }
  StreamResult flush() override {
    const StreamResult r = s_->check_write();  // moves what is buffered on
    return r.is_ok() ? StreamResult::ok_n(0) : r;
  }
  bool flushed() override { return s_->write_idle(); }
  bool ready() override {
    const StreamResult r = s_->check_write();
    return !r.is_ok() || r.n > 0;
  }
  Wait wait() override { return s_->write_wait(); }

 private:
  std::shared_ptr<TlsSession> s_;
};

}  // namespace wasi_ktls::wasi
