// Whether this process can set up an io_uring, and which opcodes the kernel offers: the ring
// engine and the backend decision read this instead of failing at first use.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wasi_ktls {

struct UringOp {
  std::string name;  // "SEND", "RECV", ... (IORING_OP_ without the prefix)
  bool supported = false;
};

struct UringProbe {
  bool ok = false;
  std::string reason;  // why not (errno name and meaning); "accepted" when ok
  int sys_errno = 0;
  std::vector<UringOp> ops;  // empty when !ok; fixed order otherwise

  bool offers(std::string_view op) const;
};

// Sets up a small ring, asks the kernel for its opcode table, tears the ring down.
UringProbe probe_io_uring();

}  // namespace wasi_ktls
