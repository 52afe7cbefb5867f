// Record I/O on a socket whose keys are in the kernel (blocking syscalls): data with plain
// send/recv, control records (alerts, close_notify, tickets, KeyUpdate) with sendmsg/recvmsg and
// the SOL_TLS record-type cmsg. The meaning of control records lives in control_record.h and
// the AEAD accounting in record_limit.h, so an io_uring engine can reuse both.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "handshake/tls_params.h"
#include "handshake/traffic_keys.h"
#include "ktls/record/control_record.h"
#include "ktls/record/crypto_info.h"
#include "ktls/record/record_limit.h"

namespace wasi_ktls {

struct RecvResult {
  enum class Kind { data, end_of_stream };
  Kind kind = Kind::data;
  std::size_t bytes = 0;  // data only

  static RecvResult data(std::size_t n) { return {Kind::data, n}; }
  static RecvResult end_of_stream() { return {Kind::end_of_stream, 0}; }
};

// The next generation of one direction's keys after a TLS 1.3 KeyUpdate
// (secret' = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length), then "key"/"iv";
// seq 0). The connection layer owns the traffic secrets and the key schedule, so it supplies
// this; the record layer only moves the result into the kernel.
using NextKeysFn = std::function<Result<DirectionKeys>(Direction)>;

struct RecordIoConfig {
  TlsVersion version = TlsVersion::tls13;
  Cipher cipher = Cipher::aes_128_gcm;
  // Next record numbers at the hand-over, i.e. records the keys have protected already.
  std::uint64_t tx_seq = 0;
  std::uint64_t rx_seq = 0;
  // From the probe: the kernel accepts a second TLS_TX/TLS_RX (Linux >= 6.14).
  bool kernel_can_rekey = false;
  NextKeysFn next_keys;  // needed to rekey; without it a KeyUpdate is fatal on any kernel
  // Records per TX key, close_notify included; 0 means default_record_limit().
  std::uint64_t tx_record_limit = 0;
};

// One connection's record I/O. Does not own the fd. Not thread-safe: one reader and one
// writer call must not overlap (an open record is kernel state).
class KernelRecordIo {
 public:
  KernelRecordIo(int fd, RecordIoConfig config);

  // Sends all of `data` as application data (MSG_NOSIGNAL, short sends resumed). Returns fewer
  // bytes only if an error or the record limit stopped it after some were sent; the next call
  // then reports it. At the limit with no rekey: sends close_notify, shuts down the write side
  // and fails with "AEAD record limit reached".
  Result<std::size_t> send(std::span<const std::uint8_t> data);

  // Receives application data, consuming control records on the way. end_of_stream after the
  // peer's close_notify (the caller answers with close_notify()). Errors name the TLS alert;
  // record-layer and protocol errors are terminal (every later call returns them). A timeout
  // (SO_RCVTIMEO) is an EAGAIN error and not terminal.
  Result<RecvResult> recv(std::span<std::uint8_t> buf);

  // For an event loop that performs the data recv itself (io_uring, Asio): what its result
  // means. result > 0: data in buf; 0: truncation; -EIO: the queued control record is read
  // here (recvmsg, which never waits: the kernel has it whole) and handled; other -errno as
  // recv() reports them. Returns what the caller gets, or nullopt: receive again.
  // Call take_pending() before each recv: a control read may leave data behind.
  Result<std::optional<RecvResult>> complete_recv(long result, std::span<std::uint8_t> buf);
  // The same for an event loop that also reads control records itself (io_uring RECVMSG):
  // on -EIO from its recv it receives into control_msghdr() (valid until the next call) and
  // hands that result to complete_control_recv().
  msghdr* control_msghdr();
  Result<std::optional<RecvResult>> complete_control_recv(long result,
                                                          std::span<std::uint8_t> buf);
  std::size_t take_pending(std::span<std::uint8_t> buf);
  bool peer_closed() const { return peer_closed_; }
  const std::optional<Error>& dead() const { return dead_; }

  // For an event loop that performs the data send itself: how many of `want` bytes the next
  // send may carry (0: at the AEAD limit: call limit_reached()), and the bytes it sent.
  std::size_t sendable_bytes(std::size_t want) const { return tx_budget_.sendable_bytes(want); }
  void complete_send(std::size_t sent) { tx_budget_.add(records_for_bytes(sent)); }
  // Sends close_notify and fails the connection with "AEAD record limit reached"; or, where
  // the kernel can rekey (TLS 1.3), rekeys TX and returns ok.
  Status at_record_limit();

  // close_notify as an alert record, then shutdown(SHUT_WR). Idempotent.
  Status close_notify();
  // A fatal alert to the peer, best effort (the connection is ending anyway).
  void send_alert(std::uint8_t level, std::uint8_t description);
  // One record of `type` (alert, handshake) with `payload` (at most 16384 bytes).
  Status send_control_record(std::uint8_t type, std::span<const std::uint8_t> payload);

  // Records under the current key: TX counted exactly per send call (ceil(bytes/16384)) plus
  // control records; RX estimated the same way per recv call (never below the true count).
  std::uint64_t tx_records() const { return tx_budget_.used(); }
  std::uint64_t rx_records() const { return rx_records_; }

 private:
  Result<std::optional<RecvResult>> read_control_record(std::span<std::uint8_t> buf);
  Status on_key_update(bool update_requested);
  Status rekey_tx();
  Error fail(Error e, std::optional<std::uint8_t> alert);
  Error limit_reached();

  int fd_;
  RecordIoConfig config_;
  ControlRecordParser parser_;
  RecordBudget tx_budget_;
  std::uint64_t rx_records_;
  std::vector<std::uint8_t> control_buf_;  // one record's plaintext
  iovec control_iov_{};
  msghdr control_msg_{};
  alignas(cmsghdr) unsigned char control_cmsg_[CMSG_SPACE(1)] = {};
  std::vector<std::uint8_t> pending_;      // data that arrived through recvmsg
  std::size_t pending_pos_ = 0;
  std::optional<Error> dead_;
  bool peer_closed_ = false;
  bool close_sent_ = false;
};

}  // namespace wasi_ktls
