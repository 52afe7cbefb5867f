#include "handshake/session.h"

#include "base/byte_queue.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "handshake/key_schedule.h"
#include "handshake/openssl_error.h"
#include "handshake/openssl_memory.h"
#include "handshake/tls_codes.h"

namespace wasi_ktls {
namespace {

constexpr std::uint64_t kNoSnapshot = ~std::uint64_t{0};

// Counts the TLS records in a byte stream (5-byte header, then the body it announces).
struct RecordCounter {
  std::array<std::uint8_t, 5> header{};
  std::size_t header_len = 0;
  std::size_t body_left = 0;
  std::uint64_t complete = 0;

  void add(const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      if (body_left > 0) {
        std::size_t k = std::min(n, body_left);
        body_left -= k;
        p += k;
        n -= k;
        if (body_left == 0) ++complete;
        continue;
      }
      header[header_len++] = *p++;
      --n;
      if (header_len == header.size()) {
        header_len = 0;
        body_left = static_cast<std::size_t>(header[3]) << 8 | header[4];
        if (body_left == 0) ++complete;
      }
    }
  }
  bool at_boundary() const { return header_len == 0 && body_left == 0; }
};

// A captured TLS 1.3 traffic secret; wiped when dropped.
struct Secret {
  std::array<std::uint8_t, 48> bytes{};
  std::size_t len = 0;
  bool malformed = false;
  void wipe() {
    OPENSSL_cleanse(bytes.data(), bytes.size());
    len = 0;
  }
  ~Secret() { wipe(); }
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes straight from OpenSSL's line into the wiped buffer: no copy of the text is made.
void parse_secret(std::string_view hex, Secret& out) {
  out.wipe();
  out.malformed = true;
  if (hex.size() % 2 != 0 || hex.size() / 2 > out.bytes.size()) return;
  for (std::size_t i = 0; i < hex.size() / 2; ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      out.wipe();
      return;
    }
    out.bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  out.len = hex.size() / 2;
  out.malformed = false;
}

std::optional<Cipher> cipher_of(const SSL_CIPHER* c) {
  switch (SSL_CIPHER_get_cipher_nid(c)) {
    case NID_aes_128_gcm: return Cipher::aes_128_gcm;
    case NID_aes_256_gcm: return Cipher::aes_256_gcm;
    case NID_chacha20_poly1305: return Cipher::chacha20_poly1305;
    default: return std::nullopt;
  }
}

bool is_ip_literal(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

struct Session::Impl {
  std::shared_ptr<const TlsContext::State> ctx;  // keeps callbacks' arguments alive
  SSL* ssl = nullptr;
  Role role = Role::client;

  ByteQueue in;  // fed, not yet read by OpenSSL
  std::size_t want = 0;  // length of OpenSSL's last read that found `in` empty
  std::vector<std::uint8_t> out;  // written by OpenSSL, not yet consumed: out[out_pos..]
  std::size_t out_pos = 0;

  RecordCounter written;
  std::uint64_t written_at_app_key = kNoSnapshot;  // server: records before its app key
  bool app_key_at_boundary = false;
  Secret client_secret, server_secret;  // CLIENT_/SERVER_TRAFFIC_SECRET_0

  bool done = false;
  bool keys_taken = false;
  bool data_used = false;
  std::optional<Error> failed;
  HandshakeInfo info;
  std::string alert_received, alert_sent;

  ~Impl() {
    SSL_free(ssl);  // also frees the BIO, which points back here
  }

  std::size_t buffered() const { return in.size(); }

  void on_keylog(std::string_view line) {
    auto sp = line.find(' ');
    auto last = line.rfind(' ');
    if (sp == std::string_view::npos || last == sp) return;
    std::string_view label = line.substr(0, sp);
    if (label == "CLIENT_TRAFFIC_SECRET_0") {
      parse_secret(line.substr(last + 1), client_secret);
    } else if (label == "SERVER_TRAFFIC_SECRET_0") {
      parse_secret(line.substr(last + 1), server_secret);
      // The server derives its application write key right after writing its Finished:
      // every record written from here on is under that key (NewSessionTickets).
      if (role == Role::server) {
        written_at_app_key = written.complete;
        app_key_at_boundary = written.at_boundary();
      }
    }
  }

  // During the handshake its failure is a handshake error; after it, the peer's alert or a
  // protocol error ended the connection.
  Error failure(std::string_view what, int ssl_error) {
    const ErrorKind kind = !done                    ? ErrorKind::handshake
                           : !alert_received.empty() ? ErrorKind::peer_alert
                                                     : ErrorKind::protocol;
    std::string msg(what);
    auto add = [&msg, what](std::string_view part) {
      msg += msg.size() == what.size() ? ": " : "; ";
      msg += part;
    };
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK)
      add(fmt::format("certificate verification failed: {}", X509_verify_cert_error_string(vr)));
    std::string reasons = drain_openssl_errors();
    if (!reasons.empty()) add(reasons);
    if (!alert_received.empty()) add("peer sent alert: " + alert_received);
    else if (!alert_sent.empty()) add("sent alert: " + alert_sent);
    if (msg.size() == what.size()) add(fmt::format("SSL error {}", ssl_error));
    return Error{std::move(msg), 0, kind};
  }

  void fill_info() {
    info.version = SSL_version(ssl) == TLS1_3_VERSION ? TlsVersion::tls13 : TlsVersion::tls12;
    const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
    info.cipher = cipher_of(c);
    info.suite = SSL_CIPHER_get_name(c);
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
    if (X509* peer = SSL_get0_peer_certificate(ssl)) {
      BIO* b = BIO_new(BIO_s_mem());
      if (b != nullptr) {
        X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
        char* p = nullptr;
        long n = BIO_get_mem_data(b, &p);
        info.peer_subject.assign(p, static_cast<std::size_t>(n));
        BIO_free(b);
      }
    }
    info.resumed = SSL_session_reused(ssl) == 1;
    SSL_SESSION* sess = SSL_get_session(ssl);
    info.max_fragment_length =
        sess != nullptr &&
        SSL_SESSION_get_max_fragment_length(sess) != TLSEXT_max_fragment_length_DISABLED;
  }
};

namespace {

// Our own ex_data slot (not app_data): an SSL made from the same SSL_CTX by someone else has
// nothing here, and the context's keylog callback then ignores it.
int session_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

Session::Impl* session_of(const SSL* ssl) {
  return static_cast<Session::Impl*>(SSL_get_ex_data(ssl, session_index()));
}

Session::Impl* impl_of(BIO* b) { return static_cast<Session::Impl*>(BIO_get_data(b)); }

int bio_read(BIO* b, char* buf, std::size_t len, std::size_t* readbytes) {
  BIO_clear_retry_flags(b);
  Session::Impl* s = impl_of(b);
  if (s->buffered() == 0) {
    s->want = len;  // without read-ahead: 5 for a header, then exactly the body
    BIO_set_retry_read(b);
    *readbytes = 0;
    return 0;
  }
  std::size_t n = std::min(len, s->buffered());
  std::memcpy(buf, s->in.readable().data(), n);
  s->in.consume(n);
  s->want = 0;
  *readbytes = n;
  return 1;
}

int bio_write(BIO* b, const char* buf, std::size_t len, std::size_t* written) {
  BIO_clear_retry_flags(b);
  Session::Impl* s = impl_of(b);
  auto* p = reinterpret_cast<const std::uint8_t*>(buf);
  s->out.insert(s->out.end(), p, p + len);
  s->written.add(p, len);
  *written = len;
  return 1;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return static_cast<long>(impl_of(b)->buffered());
    case BIO_CTRL_WPENDING: return 0;  // everything written is visible in pending_output()
    default: return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 0);
  return 1;
}

int bio_destroy(BIO* b) {
  BIO_set_data(b, nullptr);
  BIO_set_init(b, 0);
  return 1;
}

struct BioMethodFree {
  void operator()(BIO_METHOD* m) const { BIO_meth_free(m); }
};

// Created once (thread-safe static initialisation), freed at exit.
BIO_METHOD* session_bio_method() {
  static const std::unique_ptr<BIO_METHOD, BioMethodFree> method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wasi-ktls session");
    if (m != nullptr) {
      BIO_meth_set_read_ex(m, bio_read);
      BIO_meth_set_write_ex(m, bio_write);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
      BIO_meth_set_destroy(m, bio_destroy);
    }
    return std::unique_ptr<BIO_METHOD, BioMethodFree>(m);
  }();
  return method.get();
}

void info_callback(const SSL* ssl, int where, int ret) {
  if ((where & SSL_CB_ALERT) == 0) return;
  Session::Impl* s = session_of(ssl);
  if (s == nullptr) return;
  (where & SSL_CB_READ ? s->alert_received : s->alert_sent) =
      describe_alert(static_cast<std::uint8_t>(ret & 0xff));
}

}  // namespace

void detail::keylog_to_session(const SSL* ssl, const char* line) {
  Session::Impl* s = session_of(ssl);
  if (s != nullptr && line != nullptr) s->on_keylog(line);
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

static Result<std::unique_ptr<Session::Impl>> new_impl(
    std::shared_ptr<const TlsContext::State> state, SSL_CTX* ctx, Role role) {
  ERR_clear_error();
  auto impl = std::make_unique<Session::Impl>();
  impl->ctx = std::move(state);
  impl->role = role;
  impl->ssl = SSL_new(ctx);
  if (impl->ssl == nullptr) return make_error("SSL_new failed: {}", drain_openssl_errors());
  BIO_METHOD* method = session_bio_method();
  BIO* bio = method != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) return make_error("cannot create the session BIO: {}", drain_openssl_errors());
  BIO_set_data(bio, impl.get());
  BIO_set_init(bio, 1);
  SSL_set_bio(impl->ssl, bio, bio);  // one reference, used for both directions
  if (session_index() < 0 || SSL_set_ex_data(impl->ssl, session_index(), impl.get()) != 1)
    return make_error("cannot attach the session to its SSL: {}", drain_openssl_errors());
  SSL_set_info_callback(impl->ssl, info_callback);
  return impl;
}

Result<Session> Session::client(const TlsContext& ctx, std::string_view server_name) {
  if (ctx.role() != Role::client) return make_error("Session::client needs a client TlsContext");
  auto impl = new_impl(ctx.state_, ctx.native(), Role::client);
  if (!impl) return impl.error();
  SSL* ssl = (*impl)->ssl;
  SSL_set_connect_state(ssl);
  std::string name(server_name);
  if (name.find('\0') != std::string::npos) return make_error("server name contains a NUL byte");
  bool ip = is_ip_literal(name);
  // RFC 6066: SNI carries host names only, never address literals.
  if (!name.empty() && !ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1)
    return make_error("cannot use '{}' as server name: {}", name, drain_openssl_errors());
  if (ctx.verifies_peer()) {
    if (name.empty())
      return make_error("a server name is needed to verify the server's certificate");
    if (ip) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1)
        return make_error("cannot check the certificate against IP {}", name);
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(ssl, name.c_str()) != 1)
        return make_error("cannot check the certificate against '{}': {}", name,
                          drain_openssl_errors());
    }
  }
  return Session(std::move(*impl));
}

Result<Session> Session::server(const TlsContext& ctx) {
  if (ctx.role() != Role::server) return make_error("Session::server needs a server TlsContext");
  auto impl = new_impl(ctx.state_, ctx.native(), Role::server);
  if (!impl) return impl.error();
  SSL_set_accept_state((*impl)->ssl);
  return Session(std::move(*impl));
}

Result<Session> Session::from_context(SSL_CTX* ctx) {
  // Links openssl_memory.o from a static library too: its load-time initialiser makes
  // OpenSSL wipe what it frees (TlsContext::create does the same).
  (void)openssl_frees_are_wiped();
  // A keylog callback of the user's stays theirs: TLS 1.3 then runs in userspace (take_keys
  // says the secrets were not captured).
  if (SSL_CTX_get_keylog_callback(ctx) == nullptr)
    SSL_CTX_set_keylog_callback(ctx, detail::keylog_to_session);
  auto impl = new_impl(nullptr, ctx, Role::client);
  if (!impl) return impl.error();
  SSL* ssl = (*impl)->ssl;
  SSL_clear_options(ssl, SSL_OP_ENABLE_KTLS);
  SSL_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_set_read_ahead(ssl, 0);
  return Session(std::move(*impl));
}

void Session::begin(Role role) {
  impl_->role = role;
  if (role == Role::client)
    SSL_set_connect_state(impl_->ssl);
  else
    SSL_set_accept_state(impl_->ssl);
}

Role Session::role() const { return impl_->role; }
SSL* Session::native_handle() const { return impl_->ssl; }

Result<HandshakeStatus> Session::advance() {
  Impl& s = *impl_;
  if (s.failed) return *s.failed;
  if (s.done) return HandshakeStatus{true, 0};
  ERR_clear_error();
  int r = SSL_do_handshake(s.ssl);
  if (r == 1) {
    s.done = true;
    s.fill_info();
    return HandshakeStatus{true, 0};
  }
  int e = SSL_get_error(s.ssl, r);
  if (e == SSL_ERROR_WANT_READ && want_read() > 0) return HandshakeStatus{false, want_read()};
  s.failed = e == SSL_ERROR_WANT_READ
                 ? make_error(ErrorKind::handshake,
                              "TLS handshake stalled: OpenSSL waits for input but asked for none")
                 : s.failure("TLS handshake failed", e);
  return *s.failed;
}

std::size_t Session::want_read() const {
  return impl_->want > impl_->buffered() ? impl_->want - impl_->buffered() : 0;
}

void Session::feed(std::span<const std::uint8_t> ciphertext) {
  impl_->in.append(ciphertext);
}

std::span<std::uint8_t> Session::input_space(std::size_t n) { return impl_->in.space(n); }

void Session::commit_input(std::size_t n) { impl_->in.commit(n); }

std::span<const std::uint8_t> Session::pending_output() const {
  return std::span(impl_->out).subspan(impl_->out_pos);
}

void Session::consume_output(std::size_t n) {
  Impl& s = *impl_;
  s.out_pos += std::min(n, s.out.size() - s.out_pos);
  if (s.out_pos == s.out.size()) {
    s.out.clear();
    s.out_pos = 0;
  }
}

void Session::take_output(std::vector<std::uint8_t>& into) {
  Impl& s = *impl_;
  into.clear();
  s.out.erase(s.out.begin(), s.out.begin() + static_cast<std::ptrdiff_t>(s.out_pos));
  s.out_pos = 0;
  s.out.swap(into);
}

bool Session::has_unconsumed_input() const {
  return impl_->buffered() > 0 || SSL_pending(impl_->ssl) > 0 || SSL_has_pending(impl_->ssl) == 1;
}

const HandshakeInfo& Session::info() const { return impl_->info; }

Result<TrafficKeys> Session::take_keys() {
  Impl& s = *impl_;
  if (!s.done) return make_error("the handshake is not finished");
  if (s.keys_taken) return make_error("the traffic keys were already taken");
  if (s.data_used)
    return make_error("records were already exchanged in userspace; the keys are stale");
  if (!s.info.cipher)
    return make_error("negotiated suite {} is not an AEAD the kernel path supports", s.info.suite);
  if (s.info.max_fragment_length)
    return make_error("the peer negotiated max_fragment_length; kernel records would be too big");
  if (has_unconsumed_input())
    return make_error("bytes past the handshake were received and are buffered in userspace");
  const Cipher cipher = *s.info.cipher;
  const SSL_CIPHER* c = SSL_get_current_cipher(s.ssl);
  const EVP_MD* md = SSL_CIPHER_get_handshake_digest(c);
  if (md == nullptr || static_cast<std::size_t>(EVP_MD_get_size(md)) != suite_hash_length(cipher))
    return make_error("suite {} uses an unexpected hash", s.info.suite);
  s.keys_taken = true;

  if (s.info.version == TlsVersion::tls12) {
    std::array<std::uint8_t, 48> master{};
    std::array<std::uint8_t, 32> client_random{}, server_random{};
    std::size_t mlen = SSL_SESSION_get_master_key(SSL_get_session(s.ssl), master.data(), master.size());
    SSL_get_client_random(s.ssl, client_random.data(), client_random.size());
    SSL_get_server_random(s.ssl, server_random.data(), server_random.size());
    auto keys = mlen == master.size()
                    ? tls12_traffic_keys(cipher, s.role == Role::client, master, client_random,
                                         server_random)
                    : Result<TrafficKeys>(make_error("TLS 1.2 master secret unavailable"));
    OPENSSL_cleanse(master.data(), master.size());
    return keys;
  }

  Secret& own = s.role == Role::client ? s.client_secret : s.server_secret;
  Secret& peer = s.role == Role::client ? s.server_secret : s.client_secret;
  if (own.len == 0 || peer.len == 0 || own.malformed || peer.malformed)
    return make_error("the TLS 1.3 application traffic secrets were not captured{}",
                      SSL_CTX_get_keylog_callback(SSL_get_SSL_CTX(s.ssl)) == nullptr
                          ? " (the context does not capture them: Policy::capture_tls13_secrets)"
                      : SSL_CTX_get_keylog_callback(SSL_get_SSL_CTX(s.ssl)) != detail::keylog_to_session
                          ? " (the SSL_CTX has a keylog callback of its own)"
                          : "");
  // Client: its Finished was the last record under the handshake key; nothing followed.
  // Server: NewSessionTickets were already written under the application key.
  std::uint64_t tx_seq = 0;
  if (s.role == Role::server) {
    if (s.written_at_app_key == kNoSnapshot || !s.app_key_at_boundary || !s.written.at_boundary())
      return make_error("cannot tell how many records were written under the application key");
    tx_seq = s.written.complete - s.written_at_app_key;
  }
  // RX: the handshake ended with the peer's Finished (the last record under its handshake
  // key), reads were exact and nothing is buffered, so no application record was read.
  TrafficKeys keys;
  keys.version = TlsVersion::tls13;
  keys.cipher = cipher;
  auto tx = tls13_direction_keys(cipher, std::span(own.bytes).first(own.len), tx_seq);
  auto rx = tls13_direction_keys(cipher, std::span(peer.bytes).first(peer.len), 0);
  own.wipe();
  peer.wipe();
  if (!tx) return tx.error();
  if (!rx) return rx.error();
  keys.tx = *tx;
  keys.rx = *rx;
  return keys;
}

Result<std::size_t> Session::write_plaintext(std::span<const std::uint8_t> data) {
  Impl& s = *impl_;
  if (!s.done) return make_error("write before the handshake finished");
  if (s.failed) return *s.failed;
  s.data_used = true;
  if (data.empty()) return std::size_t{0};
  ERR_clear_error();
  std::size_t written = 0;
  int r = SSL_write_ex(s.ssl, data.data(), data.size(), &written);
  if (r == 1) return written;
  s.failed = s.failure("TLS write failed", SSL_get_error(s.ssl, r));
  return *s.failed;
}

Result<ReadResult> Session::read_plaintext(std::span<std::uint8_t> out) {
  Impl& s = *impl_;
  if (!s.done) return make_error("read before the handshake finished");
  if (s.failed) return *s.failed;
  s.data_used = true;
  ERR_clear_error();
  std::size_t n = 0;
  int r = SSL_read_ex(s.ssl, out.data(), out.size(), &n);
  if (r == 1) return ReadResult{ReadResult::Kind::data, n};
  int e = SSL_get_error(s.ssl, r);
  if (e == SSL_ERROR_WANT_READ) return ReadResult{ReadResult::Kind::need_input, 0};
  if (e == SSL_ERROR_ZERO_RETURN) return ReadResult{ReadResult::Kind::eof, 0};
  s.failed = s.failure("TLS read failed", e);
  return *s.failed;
}

Status Session::shutdown() {
  Impl& s = *impl_;
  if (!s.done) return make_error("shutdown before the handshake finished");
  ERR_clear_error();
  int r = SSL_shutdown(s.ssl);
  if (r >= 0) return {};
  return s.failure("TLS shutdown failed", SSL_get_error(s.ssl, r));
}

void Session::release_idle_buffers() {
  Impl& s = *impl_;
  if (s.in.empty()) s.in = ByteQueue{};
  if (s.out_pos == s.out.size()) {
    s.out = std::vector<std::uint8_t>();  // `= {}` would keep the capacity
    s.out_pos = 0;
  }
  // Refuses (0) while a record is partly read or written; then they stay, rightly.
  (void)SSL_free_buffers(s.ssl);
}

}  // namespace wasi_ktls
