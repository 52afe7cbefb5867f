#include "tests/support/kernel_evidence.h"

#include "ktls/record/install.h"
#include "ktls/probe/tls_stat.h"
#include "tests/support/message_of.h"
#include "tests/support/timer.h"

namespace wasi_ktls::test {

TlsCounters tls_counters() {
  auto st = read_tls_stat();
  REQUIRE_MESSAGE(st.ok(), message_of(st));
  TlsCounters c;
  c.tx_sw = st->get("TlsCurrTxSw").value_or(~0ull);
  c.rx_sw = st->get("TlsCurrRxSw").value_or(~0ull);
  c.decrypt_errors = st->get("TlsDecryptError").value_or(~0ull);
  return c;
}

std::uint64_t tls_stat_counter(const char* name) {
  auto st = read_tls_stat();
  REQUIRE_MESSAGE(st.ok(), message_of(st));
  auto v = st->get(name);
  REQUIRE_MESSAGE(v.has_value(), name);
  return *v;
}

void with_balanced_sessions(const std::string& what,
                            const std::function<void(const TlsCounters& before)>& body) {
  const Timer t;
  const TlsCounters before = tls_counters();
  body(before);
  const TlsCounters after = tls_counters();
  CHECK(after.tx_sw == before.tx_sw);
  CHECK(after.rx_sw == before.rx_sw);
  CHECK(after.decrypt_errors == before.decrypt_errors);
  MESSAGE(what << ": " << t.seconds() << " s");
}

std::uint64_t kernel_seq(int fd, Direction d) {
  auto info = read_kernel_crypto_info(fd, d);
  REQUIRE_MESSAGE(info.ok(), message_of(info));
  return info->rec_seq();
}

void check_moved(int fd, Direction d, std::uint64_t& seq, std::size_t n, std::uint64_t extra,
                 const char* what) {
  const std::uint64_t now = kernel_seq(fd, d);
  INFO(what << ": rec_seq " << now << ", before " << seq << ", bytes " << n);
  CHECK(now >= seq + extra + records(n));
  CHECK(now <= seq + extra + n);
  seq = now;
}

std::uint64_t Seqs::take_tickets(std::size_t n_read) {
  if (n_read == 0 || !tickets_pending) return 0;
  tickets_pending = false;
  return tickets;
}

Seqs initial_seqs(TlsVersion v, Role role, std::uint64_t server_tickets) {
  Seqs s;
  if (v == TlsVersion::tls12) {
    s.tx = s.rx = 1;
  } else if (role == Role::server) {
    s.tx = server_tickets;
  } else {
    s.tickets_pending = server_tickets > 0;
    s.tickets = server_tickets;
  }
  return s;
}

void check_seqs(int fd, const Seqs& want, const char* who) {
  INFO(who);
  CHECK(kernel_seq(fd, Direction::tx) == want.tx);
  CHECK(kernel_seq(fd, Direction::rx) == want.rx);
}

void check_rx_range(int fd, Seqs& s, std::size_t n) {
  check_moved(fd, Direction::rx, s.rx, n, s.take_tickets(n), "kernel RX");
}

}  // namespace wasi_ktls::test
