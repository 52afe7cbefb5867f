// Internal to ktls/conn: one operation in progress on a lane of a ConnectionCore, and the
// interface of the two record paths (kernel_records.h, userspace_records.h) the core hands
// operations to after the hand-over.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "ktls/conn/step.h"

namespace wasi_ktls {

struct LaneOp {
  enum class Kind : std::uint8_t { idle, handshake, read, write, send_file, close, flush };

  Kind kind = Kind::idle;
  Step step;                                  // what the driver does next; done when finished
  std::optional<Result<std::size_t>> result;  // set when finished

  // Arguments, consumed as the operation goes.
  std::span<std::uint8_t> in;         // read
  std::span<const std::uint8_t> out;  // write: the part not yet handed to the socket
  bool all = true;                    // write: all of it, or complete after the first send
  // read, write, flush: wait for the socket, or end where a step would block (the _now
  // operations of core.h and flush(false)).
  bool wait = true;
  int file = -1;                      // send_file
  std::uint64_t offset = 0;           // send_file: the next byte's place in the file
  std::uint64_t left = 0;             // send_file: bytes still to send
  // Progress.
  std::size_t bytes = 0;      // plaintext bytes that reached the socket (or, read, arrived)
  std::size_t unflushed = 0;  // userspace: plaintext encrypted, its ciphertext not yet sent

  void finish(Result<std::size_t> r) {
    result.emplace(std::move(r));
    step = Step{};
  }
  bool reading() const { return kind == Kind::read; }
};

// A connection's data path after the hand-over. start() begins the operation `op` describes
// (its kind and arguments are set), complete() takes the result of op.step; both leave the
// next step in op.step or finish op.
class RecordPath {
 public:
  virtual ~RecordPath() = default;
  virtual void start(LaneOp& op) = 0;
  virtual void complete(LaneOp& op, long result) = 0;
  // The read side left work for the write side (an alert, a KeyUpdate, OpenSSL's output).
  virtual bool owes_writes() const = 0;
};

// Terminal results of socket steps, in words, shared by both paths: a timeout (the driver's
// bound passed: -ETIMEDOUT or an engine's -ETIME), a cancellation, or the errno itself.
Error step_error(long result, const char* what, std::chrono::milliseconds timeout);

// How a read that must not wait (ConnectionCore::read_now) ends when its socket is not ready.
Error not_ready();

}  // namespace wasi_ktls
