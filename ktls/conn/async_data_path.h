// The two data paths of an AsyncConnection after its hand-over. Internal to ktls.
#pragma once

#include <memory>
#include <vector>

#include "handshake/traffic_keys.h"
#include "ktls/conn/async_connection.h"
#include "ktls/record/record_io.h"

namespace wasi_ktls {

class AsyncConnection::DataPath {
 public:
  virtual ~DataPath() = default;
  virtual void read(std::span<std::uint8_t> buf, IoDone done) = 0;
  virtual void write(std::span<const std::uint8_t> data, IoDone done) = 0;
  virtual void send_file(int file, std::uint64_t offset, std::uint64_t len, IoDone done) = 0;
  virtual void close(Done done) = 0;
};

// Kernel TLS: SEND/RECV on the socket with the caller's buffers; a RECV that fails with EIO
// (a control record is next) is followed by a RECVMSG with a cmsg buffer, whose record
// KernelRecordIo interprets.
class KernelDataPath final : public AsyncConnection::DataPath {
 public:
  KernelDataPath(AsyncConnection& c, const TrafficKeys& keys, bool kernel_can_rekey);
  void read(std::span<std::uint8_t> buf, AsyncConnection::IoDone done) override;
  void write(std::span<const std::uint8_t> data, AsyncConnection::IoDone done) override;
  void send_file(int file, std::uint64_t offset, std::uint64_t len,
                 AsyncConnection::IoDone done) override;
  void close(AsyncConnection::Done done) override;

 private:
  void read_control_record(std::span<std::uint8_t> buf, AsyncConnection::IoDone done);
  void deliver(Result<std::optional<RecvResult>> got, std::span<std::uint8_t> buf,
               AsyncConnection::IoDone done);
  void write_from(std::span<const std::uint8_t> rest, std::size_t sent,
                  AsyncConnection::IoDone done);
  void send_file_from(int file, std::uint64_t offset, std::uint64_t left, std::uint64_t sent,
                      AsyncConnection::IoDone done);
  // The chunk the AEAD budget allows next (rekeying or failing at the limit).
  Result<std::size_t> budget(std::size_t want);

  AsyncConnection& c_;
  std::shared_ptr<TrafficKeys> keys_;
  KernelRecordIo io_;
};

// Userspace OpenSSL over the engine: ciphertext in and out of the Session's buffers.
class UserspaceDataPath final : public AsyncConnection::DataPath {
 public:
  UserspaceDataPath(AsyncConnection& c, Session session);
  void read(std::span<std::uint8_t> buf, AsyncConnection::IoDone done) override;
  void write(std::span<const std::uint8_t> data, AsyncConnection::IoDone done) override;
  void send_file(int file, std::uint64_t offset, std::uint64_t len,
                 AsyncConnection::IoDone done) override;
  void close(AsyncConnection::Done done) override;

 private:
  // Sends whatever OpenSSL has written, one send in flight at a time; `flushed` (optional)
  // runs once everything written so far is on the socket.
  void pump(AsyncConnection::Done flushed);
  void send_from(std::size_t offset);
  void write_from(std::span<const std::uint8_t> rest, std::size_t done_bytes,
                  AsyncConnection::IoDone done);
  void send_file_from(int file, std::uint64_t offset, std::uint64_t left, std::uint64_t sent,
                      AsyncConnection::IoDone done);

  AsyncConnection& c_;
  Session session_;
  std::vector<std::uint8_t> sending_;
  std::vector<AsyncConnection::Done> flush_waiters_;
  std::vector<std::uint8_t> file_buf_;
  bool send_in_flight_ = false;
  bool closed_ = false;
};

}  // namespace wasi_ktls
