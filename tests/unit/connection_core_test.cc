// The connection core without sockets: the test is its driver, so it can hand the core any
// result a kernel gives, in any order, and check every step the core asks for. Where a step
// carries keys, they are checked against the key schedule (itself checked against RFC 8448 in
// key_schedule_test). Which results a real kernel gives is what the lab tests check.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <netinet/tcp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "handshake/key_schedule.h"
#include "handshake/tls_codes.h"
#include "ktls/conn/core.h"
#include "ktls/probe/probe.h"
#include "ktls/record/crypto_info.h"
#include "ktls/record/tls_uapi.h"

using namespace wasi_ktls;
using Lane = ConnectionCore::Lane;
using Kind = Step::Kind;
using Bytes = std::vector<std::uint8_t>;

namespace {

constexpr Cipher kCipher = Cipher::aes_128_gcm;

// A kernel that takes every version and cipher both ways, and can rekey or not.
Probe probe(bool can_rekey) {
  Probe p;
  p.ulp = Verdict{true, "accepted", 0};
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers)
      for (Direction d : {Direction::tx, Direction::rx})
        p.combos.push_back({v, c, d, Verdict{true, "accepted", 0}});
  p.rekey = can_rekey ? Verdict{true, "accepted", 0} : Verdict{false, "EBUSY: no rekey", EBUSY};
  return p;
}

Bytes random_bytes(std::size_t n) {
  Bytes b(n);
  REQUIRE(RAND_bytes(b.data(), static_cast<int>(n)) == 1);
  return b;
}

TrafficKeys tls13_keys() {
  TrafficKeys k;
  k.version = TlsVersion::tls13;
  k.cipher = kCipher;
  k.tx = *tls13_direction_keys(kCipher, random_bytes(32), 0);
  k.rx = *tls13_direction_keys(kCipher, random_bytes(32), 0);
  return k;
}

Bytes bytes_of(const KernelCryptoInfo& i) { return Bytes(i.bytes().begin(), i.bytes().end()); }

Bytes kernel_struct(const DirectionKeys& k) {
  return bytes_of(*KernelCryptoInfo::build(TlsVersion::tls13, kCipher, k));
}

// Runs the install steps with the given results (0 = success).
void install(ConnectionCore& core, long ulp = 0, long rx = 0, long tx = 0) {
  REQUIRE(core.handshake().ok());
  REQUIRE(core.step(Lane::write).kind == Kind::tcp_state);
  core.complete(Lane::write, TCP_ESTABLISHED);
  REQUIRE(core.step(Lane::write).kind == Kind::attach_ulp);
  core.complete(Lane::write, ulp);
  if (ulp < 0) return;
  REQUIRE(core.step(Lane::write).kind == Kind::set_key);
  CHECK(core.step(Lane::write).key_direction == Direction::rx);  // RX first
  core.complete(Lane::write, rx);
  if (rx < 0) return;
  REQUIRE(core.step(Lane::write).kind == Kind::set_key);
  CHECK(core.step(Lane::write).key_direction == Direction::tx);
  core.complete(Lane::write, tx);
}

// Answers a recvmsg step with one control record, as the kernel would.
void deliver_record(ConnectionCore& core, std::uint8_t type, const Bytes& payload) {
  const Step& s = core.step(Lane::read);
  REQUIRE(s.kind == Kind::recvmsg);
  msghdr* m = s.msg;
  REQUIRE(m->msg_iov[0].iov_len >= payload.size());
  std::memcpy(m->msg_iov[0].iov_base, payload.data(), payload.size());
  cmsghdr* c = CMSG_FIRSTHDR(m);
  REQUIRE(c != nullptr);
  c->cmsg_level = SOL_TLS;
  c->cmsg_type = TLS_GET_RECORD_TYPE;
  c->cmsg_len = CMSG_LEN(1);
  *CMSG_DATA(c) = type;
  m->msg_controllen = CMSG_SPACE(1);
  m->msg_flags = MSG_EOR;
  core.complete(Lane::read, static_cast<long>(payload.size()));
}

// The record a sendmsg step carries: its type (from the cmsg) and payload.
std::pair<std::uint8_t, Bytes> sent_record(const Step& s) {
  REQUIRE(s.kind == Kind::sendmsg);
  const msghdr* m = s.msg;
  const cmsghdr* c = CMSG_FIRSTHDR(m);
  REQUIRE(c != nullptr);
  REQUIRE(c->cmsg_level == SOL_TLS);
  REQUIRE(c->cmsg_type == TLS_SET_RECORD_TYPE);
  const auto* p = static_cast<const std::uint8_t*>(m->msg_iov[0].iov_base);
  return {*CMSG_DATA(c), Bytes(p, p + m->msg_iov[0].iov_len)};
}

ConnectionOptions options(const Probe& p) {
  ConnectionOptions o;
  o.backend = Backend::ktls;
  o.probe = &p;
  return o;
}

}  // namespace

TEST_CASE("install: RX, then TX; the connection is then on the kernel transport") {
  const Probe p = probe(false);
  const TrafficKeys keys = tls13_keys();
  ConnectionCore core = ConnectionCore::with_keys(keys, Role::client, options(p));
  REQUIRE(core.handshake().ok());
  core.complete(Lane::write, TCP_ESTABLISHED);
  core.complete(Lane::write, 0);  // ULP
  REQUIRE(core.step(Lane::write).kind == Kind::set_key);
  CHECK(bytes_of(*core.step(Lane::write).key) == kernel_struct(keys.rx));
  core.complete(Lane::write, 0);
  CHECK(bytes_of(*core.step(Lane::write).key) == kernel_struct(keys.tx));
  core.complete(Lane::write, 0);
  REQUIRE(core.step(Lane::write).done());
  REQUIRE(core.take_result(Lane::write).ok());
  CHECK(core.established());
  CHECK(core.transport() == Transport::kernel);
}

TEST_CASE("install: a refusal before RX leaves plain TCP; a refusal of TX ends the connection") {
  const Probe p = probe(false);
  {
    ConnectionCore core = ConnectionCore::with_keys(tls13_keys(), Role::client, options(p));
    install(core, -EEXIST);
    auto r = core.take_result(Lane::write);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::backend_unavailable);
    CHECK(r.error().sys_errno == EEXIST);
    CHECK(r.error().message.find("TCP_ULP") != std::string::npos);
  }
  {
    ConnectionCore core = ConnectionCore::with_keys(tls13_keys(), Role::client, options(p));
    install(core, 0, 0, -ENOMEM);
    auto r = core.take_result(Lane::write);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::kernel_install);
    CHECK(r.error().message.find("half-way") != std::string::npos);
    CHECK_FALSE(core.read(std::span<std::uint8_t>()).ok());  // nothing runs on it any more
  }
}

TEST_CASE("TLS 1.3 rekey is a sequence of steps: RX at once, TX after the data in flight, "
          "tolerating a full send buffer") {
  const Probe p = probe(true);
  const TrafficKeys keys = tls13_keys();
  ConnectionCore core = ConnectionCore::with_keys(keys, Role::client, options(p));
  install(core);
  REQUIRE(core.take_result(Lane::write).ok());

  // A write is in flight when the peer's KeyUpdate(update_requested) arrives.
  const Bytes data = random_bytes(100'000);
  REQUIRE(core.write(data).ok());
  REQUIRE(core.step(Lane::write).kind == Kind::send);
  const std::size_t first = core.step(Lane::write).out.size();

  Bytes buf(4096);
  REQUIRE(core.read(buf).ok());
  REQUIRE(core.step(Lane::read).kind == Kind::recv);
  core.complete(Lane::read, -EIO);  // a control record is next
  deliver_record(core, content_type::handshake, {handshake_type::key_update, 0, 0, 1, 1});
  // RX gets its next key at once: the kernel holds further records until it has it.
  REQUIRE(core.step(Lane::read).kind == Kind::set_key);
  CHECK(core.step(Lane::read).key_direction == Direction::rx);
  const DirectionKeys rx1 = *tls13_next_direction_keys(kCipher, keys.rx);
  CHECK(bytes_of(*core.step(Lane::read).key) == kernel_struct(rx1));
  core.complete(Lane::read, 0);
  CHECK(core.step(Lane::read).kind == Kind::recv);  // and reading goes on

  // The data in flight finishes first; then our KeyUpdate, then our next key, then data.
  core.complete(Lane::write, static_cast<long>(first));
  auto [type, payload] = sent_record(core.step(Lane::write));
  CHECK(type == content_type::handshake);
  CHECK(payload == Bytes{handshake_type::key_update, 0, 0, 1, 0});  // update_not_requested
  core.complete(Lane::write, -EAGAIN);  // the send buffer is full: the same step again
  CHECK(sent_record(core.step(Lane::write)).second == payload);
  core.complete(Lane::write, -EAGAIN);
  core.complete(Lane::write, static_cast<long>(payload.size()));
  REQUIRE(core.step(Lane::write).kind == Kind::set_key);
  CHECK(core.step(Lane::write).key_direction == Direction::tx);
  const DirectionKeys tx1 = *tls13_next_direction_keys(kCipher, keys.tx);
  CHECK(bytes_of(*core.step(Lane::write).key) == kernel_struct(tx1));
  core.complete(Lane::write, 0);
  std::size_t sent = first;
  while (!core.step(Lane::write).done()) {
    REQUIRE(core.step(Lane::write).kind == Kind::send);
    CHECK(core.step(Lane::write).out.data() == data.data() + sent);  // from the caller's memory
    sent += core.step(Lane::write).out.size();
    core.complete(Lane::write, static_cast<long>(core.step(Lane::write).out.size()));
  }
  auto w = core.take_result(Lane::write);
  REQUIRE(w.ok());
  CHECK(*w == data.size());
  CHECK_FALSE(core.owes_writes());

  // A second KeyUpdate, with nothing being written: the write side owes it; a flush that
  // does not wait stops at a full socket and leaves it owed.
  core.complete(Lane::read, -EIO);
  deliver_record(core, content_type::handshake, {handshake_type::key_update, 0, 0, 1, 1});
  const DirectionKeys rx2 = *tls13_next_direction_keys(kCipher, rx1);
  CHECK(bytes_of(*core.step(Lane::read).key) == kernel_struct(rx2));
  core.complete(Lane::read, 0);
  REQUIRE(core.owes_writes());
  REQUIRE(core.flush(/*wait=*/false).ok());
  core.complete(Lane::write, -EAGAIN);
  REQUIRE(core.step(Lane::write).done());
  REQUIRE(core.take_result(Lane::write).ok());
  REQUIRE(core.owes_writes());  // still
  REQUIRE(core.flush().ok());
  core.complete(Lane::write, 5);
  const DirectionKeys tx2 = *tls13_next_direction_keys(kCipher, tx1);
  CHECK(bytes_of(*core.step(Lane::write).key) == kernel_struct(tx2));
  core.complete(Lane::write, 0);
  REQUIRE(core.step(Lane::write).done());
  REQUIRE(core.take_result(Lane::write).ok());
  CHECK_FALSE(core.owes_writes());
}

TEST_CASE("KeyUpdate where the kernel cannot rekey: fatal, internal_error owed, nothing after") {
  const Probe p = probe(false);
  ConnectionCore core = ConnectionCore::with_keys(tls13_keys(), Role::server, options(p));
  install(core);
  REQUIRE(core.take_result(Lane::write).ok());
  Bytes buf(100);
  REQUIRE(core.read(buf).ok());
  core.complete(Lane::read, -EIO);
  deliver_record(core, content_type::handshake, {handshake_type::key_update, 0, 0, 1, 0});
  REQUIRE(core.step(Lane::read).done());
  auto r = core.take_result(Lane::read);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("cannot rekey kTLS (needs Linux >= 6.14)") != std::string::npos);
  REQUIRE(core.owes_writes());
  // A write now sends the alert and fails: no data follows our fatal alert.
  REQUIRE(core.write(buf).ok());
  auto [type, payload] = sent_record(core.step(Lane::write));
  CHECK(type == content_type::alert);
  CHECK(payload == Bytes{alert_level::fatal, alert_desc::internal_error});
  core.complete(Lane::write, 2);
  REQUIRE(core.step(Lane::write).done());
  CHECK_FALSE(core.take_result(Lane::write).ok());
  CHECK_FALSE(core.owes_writes());
  REQUIRE(core.close().ok());  // nothing more to send, not even close_notify
  CHECK(core.step(Lane::write).done());
}

TEST_CASE("the TX record limit ends only the write side; its close_notify is the last record") {
  const Probe p = probe(false);
  ConnectionOptions o = options(p);
  o.tx_record_limit = 3;
  ConnectionCore core = ConnectionCore::with_keys(tls13_keys(), Role::client, o);
  install(core);
  REQUIRE(core.take_result(Lane::write).ok());
  const Bytes data = random_bytes(3 * 16384);
  REQUIRE(core.write(data).ok());
  REQUIRE(core.step(Lane::write).kind == Kind::send);
  CHECK(core.step(Lane::write).out.size() == 2 * 16384);  // the third record is close_notify's
  core.complete(Lane::write, 2 * 16384);
  // The limit is acted on with the kernel's own count.
  REQUIRE(core.step(Lane::write).kind == Kind::tx_seq);
  core.complete(Lane::write, 2);
  auto [type, payload] = sent_record(core.step(Lane::write));
  CHECK(payload == Bytes{alert_level::warning, alert_desc::close_notify});
  core.complete(Lane::write, 2);
  REQUIRE(core.step(Lane::write).kind == Kind::shutdown_write);
  core.complete(Lane::write, 0);
  auto w = core.take_result(Lane::write);
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().kind == ErrorKind::record_limit);
  // Reading goes on.
  Bytes buf(100);
  REQUIRE(core.read(buf).ok());
  core.complete(Lane::read, 42);
  auto r = core.take_result(Lane::read);
  REQUIRE(r.ok());
  CHECK(*r == 42);
}

TEST_CASE("the limit is acted on with the kernel's count, not the estimate") {
  const Probe p = probe(false);
  ConnectionOptions o = options(p);
  o.tx_record_limit = 10;
  ConnectionCore core = ConnectionCore::with_keys(tls13_keys(), Role::client, o);
  install(core);
  REQUIRE(core.take_result(Lane::write).ok());
  // Nine 16 KiB writes: nine records by the estimate, all the budget but close_notify's.
  const Bytes block = random_bytes(16384);
  for (int i = 0; i < 9; ++i) {
    REQUIRE(core.write(block).ok());
    REQUIRE(core.step(Lane::write).kind == Kind::send);
    core.complete(Lane::write, 16384);
    REQUIRE(core.take_result(Lane::write).ok());
  }
  REQUIRE(core.write(block).ok());
  REQUIRE(core.step(Lane::write).kind == Kind::tx_seq);
  // The kernel made fewer (sends cut short merged into open records): writing goes on.
  core.complete(Lane::write, 6);
  REQUIRE(core.step(Lane::write).kind == Kind::send);
  core.complete(Lane::write, 16384);
  REQUIRE(core.take_result(Lane::write).ok());
}

TEST_CASE("read_now and write_now end where the socket would block, and never keep the buffer") {
  const Probe p = probe(false);
  ConnectionCore core = ConnectionCore::with_keys(tls13_keys(), Role::client, options(p));
  install(core);
  REQUIRE(core.take_result(Lane::write).ok());

  Bytes buf(100);
  // Nothing to read: the read ends with would_block instead of waiting.
  REQUIRE(core.read_now(buf).ok());
  REQUIRE(core.step(Lane::read).kind == Kind::recv);
  CHECK(core.step(Lane::read).in.data() == buf.data());  // straight into the caller's buffer
  core.complete(Lane::read, -EAGAIN);
  REQUIRE(core.step(Lane::read).done());
  auto r = core.take_result(Lane::read);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::would_block);
  // The lane is free again, and a read that finds data delivers it.
  REQUIRE(core.read_now(buf).ok());
  core.complete(Lane::read, 42);
  REQUIRE(core.step(Lane::read).done());
  CHECK(*core.take_result(Lane::read) == 42);

  // A write the socket takes in part reports what went; one it refuses reports 0.
  const Bytes data(1000, 7);
  REQUIRE(core.write_now(data).ok());
  REQUIRE(core.step(Lane::write).kind == Kind::send);
  CHECK(core.step(Lane::write).out.data() == data.data());  // from the caller's memory
  core.complete(Lane::write, 300);
  REQUIRE(core.step(Lane::write).done());
  CHECK(*core.take_result(Lane::write) == 300);
  REQUIRE(core.write_now(std::span(data).subspan(300)).ok());
  core.complete(Lane::write, -EAGAIN);
  REQUIRE(core.step(Lane::write).done());
  CHECK(*core.take_result(Lane::write) == 0);
  CHECK(core.bytes_written() == 300);
}
