#include "ktls/io/uring_probe.h"

#include <liburing.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>

#include "base/errno_name.h"

namespace wasi_ktls {
namespace {

struct OpName {
  int op;
  const char* name;
};

// The opcodes the data path and the ring engine may use.
constexpr OpName kOps[] = {
    {IORING_OP_SEND, "SEND"},           {IORING_OP_RECV, "RECV"},
    {IORING_OP_SENDMSG, "SENDMSG"},     {IORING_OP_RECVMSG, "RECVMSG"},
    {IORING_OP_SPLICE, "SPLICE"},       {IORING_OP_SEND_ZC, "SEND_ZC"},
    {IORING_OP_SENDMSG_ZC, "SENDMSG_ZC"}, {IORING_OP_POLL_ADD, "POLL_ADD"},
    {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
    {IORING_OP_ACCEPT, "ACCEPT"},       {IORING_OP_CONNECT, "CONNECT"},
};

class Ring {
 public:
  int init(unsigned entries) {
    int rc = ::io_uring_queue_init(entries, &ring_, 0);
    live_ = rc == 0;
    return rc;
  }
  ~Ring() {
    if (live_) ::io_uring_queue_exit(&ring_);
  }
  io_uring* get() { return &ring_; }

 private:
  io_uring ring_{};
  bool live_ = false;
};

struct ProbeDeleter {
  void operator()(io_uring_probe* p) const { ::io_uring_free_probe(p); }
};

// /proc/sys/kernel/io_uring_disabled (6.6+): 0 on, 1 only for io_uring_group / CAP_SYS_ADMIN,
// 2 off. Empty when the knob doesn't exist.
std::string disabled_knob() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  std::string v;
  if (!(in >> v)) return {};
  return v;
}

std::string explain_setup_errno(int err) {
  std::string reason = errno_name(err) + ": ";
  std::string knob = disabled_knob();
  switch (err) {
    case ENOSYS:
      reason += "kernel has no io_uring (CONFIG_IO_URING off, or the syscall is filtered)";
      break;
    case EPERM:
      if (knob == "2")
        reason += "io_uring is disabled system-wide (/proc/sys/kernel/io_uring_disabled=2)";
      else if (knob == "1")
        reason += "io_uring is restricted to io_uring_group members and CAP_SYS_ADMIN "
                  "(/proc/sys/kernel/io_uring_disabled=1)";
      else
        reason += "io_uring refused by policy (seccomp, LSM or container)";
      break;
    case ENOMEM:
      reason += "cannot allocate the ring (RLIMIT_MEMLOCK too low on older kernels?)";
      break;
    case EMFILE:
    case ENFILE:
      reason += "out of file descriptors";
      break;
    default:
      reason += std::strerror(err);
      break;
  }
  if (!knob.empty() && err != EPERM) reason += " (io_uring_disabled=" + knob + ")";
  return reason;
}

}  // namespace

bool UringProbe::offers(std::string_view op) const {
  for (const UringOp& o : ops)
    if (o.name == op) return o.supported;
  return false;
}

UringProbe probe_io_uring() {
  UringProbe result;
  Ring ring;
  if (int rc = ring.init(4); rc < 0) {
    result.sys_errno = -rc;
    result.reason = "io_uring_queue_init: " + explain_setup_errno(-rc);
    return result;
  }
  std::unique_ptr<io_uring_probe, ProbeDeleter> probe(::io_uring_get_probe_ring(ring.get()));
  if (!probe) {
    // The ring works but IORING_REGISTER_PROBE (5.6+) doesn't: opcodes unknown.
    result.sys_errno = EINVAL;
    result.reason = "EINVAL: ring set up, but the kernel has no opcode probe (Linux < 5.6)";
    return result;
  }
  result.ok = true;
  result.reason = "accepted";
  for (const OpName& o : kOps)
    result.ops.push_back({o.name, ::io_uring_opcode_supported(probe.get(), o.op) != 0});
  return result;
}

}  // namespace wasi_ktls
