// A misbehaving or scripted peer for kernel-lab tests: one record of any content type sent
// with a raw sendmsg and the record-type cmsg on a kTLS socket, past our connection's logic
// (a ticket, a KeyUpdate, an alert, a type no RFC defines).
#pragma once

#include <cstdint>
#include <span>

#include "base/result.h"

namespace wasi_ktls::test {

Status try_send_record(int fd, std::uint8_t type, std::span<const std::uint8_t> payload);
// The same; the test fails if the kernel refuses it.
void send_record(int fd, std::uint8_t type, std::span<const std::uint8_t> payload);

}  // namespace wasi_ktls::test
