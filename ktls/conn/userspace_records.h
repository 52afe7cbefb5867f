// The data path when the kernel does not take the connection, as steps (internal to
// ktls/conn): OpenSSL (the handshake's Session) encrypts and decrypts; ciphertext is received
// straight into the Session's input buffer and sent from one output buffer taken from it by
// swapping, never copied on the way. What reading makes OpenSSL write (an alert, its answer to
// a KeyUpdate) goes out through the write side like everything else.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "handshake/session.h"
#include "ktls/conn/record_path.h"

namespace wasi_ktls {

class UserspaceRecords final : public RecordPath {
 public:
  UserspaceRecords(Session session, std::chrono::milliseconds io_timeout);
  void start(LaneOp& op) override;
  void complete(LaneOp& op, long result) override;
  bool owes_writes() const override {
    return !tx_dead_ && (sent_ < sending_.size() || !session_.pending_output().empty());
  }

 private:
  enum class TxStep : std::uint8_t { send, pread, shutdown };

  void read_step(LaneOp& op);
  void write_step(LaneOp& op);
  void tx_fail(LaneOp& op, Error e);
  void release_idle_buffers();

  Session session_;
  std::chrono::milliseconds io_timeout_;
  std::vector<std::uint8_t> sending_;  // ciphertext handed to the socket from here
  std::size_t sent_ = 0;
  std::unique_ptr<std::uint8_t[]> file_buf_;  // send_file: file bytes on their way to OpenSSL
  TxStep tx_step_ = TxStep::send;
  bool close_queued_ = false;
  bool shut_down_ = false;
  bool peer_closed_ = false;
  std::optional<Error> rx_dead_;
  std::optional<Error> tx_dead_;
};

}  // namespace wasi_ktls
