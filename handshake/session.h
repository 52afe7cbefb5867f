// One TLS connection's OpenSSL state, transport-agnostic: it is fed ciphertext and yields
// ciphertext to send. During the handshake it says exactly how many bytes to read next, so
// nothing past the final handshake record is ever taken off the socket and the kernel can
// continue the stream. After the handshake it hands out the traffic keys (for kTLS) or keeps
// encrypting and decrypting in userspace.
//
// Driver loop:
//   auto st = session.advance();            // error: send pending_output() best-effort, close
//   send all of pending_output(); consume_output(n) as it goes out
//   if st->done: info(), take_keys() ... else read up to st->read_bytes, feed(), advance again
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "handshake/policy.h"
#include "handshake/tls_params.h"
#include "handshake/traffic_keys.h"

typedef struct ssl_st SSL;

namespace wasi_ktls {

struct HandshakeStatus {
  bool done = false;
  std::size_t read_bytes = 0;  // !done: read exactly this many bytes (fewer is fine), feed them
};

struct HandshakeInfo {
  TlsVersion version = TlsVersion::tls13;
  std::optional<Cipher> cipher;  // empty: negotiated an AEAD the kernel path does not know
  std::string suite;             // OpenSSL's name, e.g. TLS_AES_128_GCM_SHA256
  std::string alpn;              // "" if none was negotiated
  std::string peer_subject;      // RFC 2253 one-liner, "" if the peer sent no certificate
  bool resumed = false;
  bool max_fragment_length = false;  // peer negotiated smaller records: kernel path impossible
};

struct ReadResult {
  enum class Kind { data, need_input, eof };
  Kind kind = Kind::need_input;
  std::size_t bytes = 0;  // for data
};

class Session {
 public:
  // `server_name` is sent as SNI (unless it is an IP address) and the certificate is checked
  // against it (as a DNS name, or as an IP address) unless the context skips verification.
  static Result<Session> client(const TlsContext& ctx, std::string_view server_name);
  static Result<Session> server(const TlsContext& ctx);
  // An SSL made from a context configured elsewhere (a boost::asio::ssl::context): whatever
  // it sets (identity, trust, verification, options, ALPN callbacks) applies; this adds
  // what the kernel needs (no read-ahead, no renegotiation, OpenSSL's own kTLS off, the
  // keylog hook that captures TLS 1.3 secrets, unless `ctx` has a keylog callback of its
  // own). The owner may configure native_handle() (SNI, verification) until begin().
  static Result<Session> from_context(SSL_CTX* ctx);
  // from_context: the role this side takes; before the first advance().
  void begin(Role role);
  Role role() const;
  SSL* native_handle() const;

  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  // Runs the handshake as far as the fed bytes allow.
  Result<HandshakeStatus> advance();

  // Bytes OpenSSL still waits for to finish the record it is reading (0 if it waits for none).
  std::size_t want_read() const;
  void feed(std::span<const std::uint8_t> ciphertext);
  // The same without a staging copy: receive into input_space(n), then commit_input(got).
  // Only after the handshake (during it, reads must be exactly want_read() long).
  std::span<std::uint8_t> input_space(std::size_t n);
  void commit_input(std::size_t n);

  std::span<const std::uint8_t> pending_output() const;
  void consume_output(std::size_t n);
  // Moves all pending output into `into` by swapping buffers (no copy; `into`'s old contents
  // are dropped, its capacity reused). For drivers that send asynchronously: OpenSSL may
  // write more while that send is in flight.
  void take_output(std::vector<std::uint8_t>& into);

  // True if any received byte is not yet fully processed: fed but unread by OpenSSL, or held
  // inside OpenSSL. Must be false before the kernel takes over the receive side.
  bool has_unconsumed_input() const;

  // After done. Valid until the session is destroyed.
  const HandshakeInfo& info() const;

  // After done, before any read_plaintext/write_plaintext, once: the keys for the kernel from
  // this side's point of view, with the number of the next record in each direction.
  Result<TrafficKeys> take_keys();

  // Userspace transport, after done.
  Result<std::size_t> write_plaintext(std::span<const std::uint8_t> data);  // all of it
  Result<ReadResult> read_plaintext(std::span<std::uint8_t> out);
  Status shutdown();  // queues close_notify in pending_output()
  // While the connection waits for its peer: OpenSSL's record buffers (about 2 x 17 KiB,
  // wiped as they go) and our own empty input and output buffers go back to the heap; what is
  // needed again is allocated again. Buffers that hold unprocessed bytes stay.
  void release_idle_buffers();

  struct Impl;

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace detail {
// TlsContext's keylog callback: routes secrets to the Session owning `ssl`.
void keylog_to_session(const SSL* ssl, const char* line);
}  // namespace detail

}  // namespace wasi_ktls
