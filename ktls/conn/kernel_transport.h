// The kernel data path: after the keys are installed, plain send/recv on the socket; control
// records through KernelRecordIo.
#pragma once

#include <memory>

#include "handshake/traffic_keys.h"
#include "ktls/record/record_io.h"
#include "ktls/conn/transport.h"

namespace wasi_ktls {

// The record layer's configuration for installed `keys`: their version, cipher and sequence
// numbers, the AEAD budget, and (TLS 1.3) the KeyUpdate key derivation, which updates `keys`.
RecordIoConfig record_io_config(const std::shared_ptr<TrafficKeys>& keys, bool kernel_can_rekey,
                                std::uint64_t tx_record_limit);

class KernelTransport final : public TransportIo {
 public:
  // `keys` were installed on fd; their secrets are kept for a TLS 1.3 KeyUpdate where the
  // kernel can rekey.
  KernelTransport(int fd, const TrafficKeys& keys, bool kernel_can_rekey,
                  std::uint64_t tx_record_limit);

  Result<std::size_t> read(std::span<std::uint8_t> buf) override;
  Status write(std::span<const std::uint8_t> data) override;
  Status close() override;

 private:
  std::shared_ptr<TrafficKeys> keys_;
  KernelRecordIo io_;
};

}  // namespace wasi_ktls
