// The data path once the kernel holds the keys, as steps (internal to ktls/conn):
//  - data goes straight between the caller's buffers and the socket (send/recv; splice for
//    files), never through a buffer of ours;
//  - a recv that fails with EIO means the next record is not data: it is read with recvmsg and
//    its record-type cmsg and interpreted by the ControlRecordParser;
//  - what the read side owes the peer (a fatal alert, our KeyUpdate after its
//    update_requested) is sent by the write side before its next data, with the same
//    non-blocking steps as data, so a full send buffer only makes it wait;
//  - TX records are counted against the AEAD limit; the count is an estimate per send and is
//    resynchronised from the kernel's own rec_seq after a splice and before the limit is
//    acted on;
//  - TLS 1.3 KeyUpdate: where the kernel can rekey, RX gets its next key at once (the kernel
//    holds further records until it has it) and TX follows as write-side steps (KeyUpdate
//    record, then the new key); elsewhere a clear fatal error.
//
// Failure is per direction: the AEAD limit or a failed send ends TX only, so the peer's data
// and close_notify stay readable; a truncation or a reset ends RX; a fatal protocol error (ours
// or the peer's) ends both, and nothing follows our fatal alert.
#pragma once

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "handshake/tls_params.h"
#include "handshake/traffic_keys.h"
#include "ktls/conn/record_path.h"
#include "ktls/record/control_record.h"
#include "ktls/record/crypto_info.h"
#include "ktls/record/record_limit.h"
#include "ktls/record/record_msg.h"

namespace wasi_ktls {

struct KernelRecordsConfig {
  TlsVersion version = TlsVersion::tls13;
  Cipher cipher = Cipher::aes_128_gcm;
  Role role = Role::client;
  std::uint64_t tx_seq = 0;           // the next TX record number at the hand-over
  std::uint64_t tx_record_limit = 0;  // records per TX key; 0: default_record_limit()
  // Present only for TLS 1.3 on a kernel that can rekey (the probe says so): a KeyUpdate is
  // then carried out; without, it is a fatal error naming the kernel's limit.
  std::unique_ptr<TrafficSecrets> secrets;
  std::chrono::milliseconds io_timeout{30'000};  // for messages only: the driver enforces it
};

class KernelRecords final : public RecordPath {
 public:
  explicit KernelRecords(KernelRecordsConfig config);
  void start(LaneOp& op) override;
  void complete(LaneOp& op, long result) override;
  bool owes_writes() const override {
    return alert_owed_.has_value() || (key_update_owed_ && !tx_dead_);
  }

 private:
  enum class RxStep : std::uint8_t { recv, recvmsg, set_key };
  enum class TxStep : std::uint8_t {
    take_error, alert, key_update, set_key, close_notify, shutdown, seq, data
  };

  // Read side.
  void recv_next(LaneOp& op);
  void on_recv(LaneOp& op, long r);
  void on_recvmsg(LaneOp& op, long r);
  void on_rx_key(LaneOp& op, long r);
  void on_rx_error(LaneOp& op, long r, const char* what);
  void deliver(LaneOp& op, std::size_t n);
  void on_key_update(LaneOp& op, bool update_requested);
  // Both directions end; `alert` (if any) is owed to the peer.
  void fatal(LaneOp& op, Error e, std::optional<std::uint8_t> alert);
  void rx_fail(LaneOp& op, Error e);

  // Write side.
  void write_step(LaneOp& op);
  void send_control(LaneOp& op, TxStep what, std::uint8_t type,
                    std::initializer_list<std::uint8_t> payload);
  void tx_fail(LaneOp& op, long r, const char* what);
  Error limit_error(std::string_view how) const;

  // The next key in direction `d` after a KeyUpdate; advances the kept secret.
  Result<KernelCryptoInfo> next_key(Direction d);

  KernelRecordsConfig cfg_;
  ControlRecordParser parser_;
  RecordBudget budget_;

  // Read side.
  RxStep rx_step_ = RxStep::recv;
  std::unique_ptr<std::uint8_t[]> control_buf_;  // one control record, while it is read
  RecordMsg rx_msg_;
  std::vector<std::uint8_t> pending_;  // data that came through recvmsg and did not fit
  std::size_t pending_pos_ = 0;
  std::optional<KernelCryptoInfo> rx_next_;
  bool update_requested_ = false;
  bool peer_closed_ = false;
  std::optional<Error> rx_dead_;

  // Write side.
  TxStep tx_step_ = TxStep::data;
  std::array<std::uint8_t, 5> tx_payload_{};
  std::size_t tx_len_ = 0;
  RecordMsg tx_msg_;
  std::optional<KernelCryptoInfo> tx_next_;
  std::optional<std::uint8_t> alert_owed_;
  // A record the kernel could not decrypt leaves its error set on the socket (6.1: sk_err),
  // and every send fails with it until it is taken: our alert would never go out.
  bool socket_error_pending_ = false;
  bool key_update_owed_ = false;
  bool close_sent_ = false;   // close_notify went out
  bool fatal_sent_ = false;   // our fatal alert went out (or was attempted)
  bool limit_close_ = false;  // the close_notify in flight is the AEAD limit's
  bool seq_exact_ = true;     // budget_ holds the kernel's count, not an estimate
  bool seq_stale_ = false;    // a splice went out: resync before the next decision
  std::optional<Error> tx_dead_;
};

}  // namespace wasi_ktls
