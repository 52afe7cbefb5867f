// A process that may not use io_uring (a seccomp filter makes io_uring_setup fail with EPERM,
// as container runtimes do) gets the poll engine, with the reason, and it works. The filter
// is installed before any test runs and can't be removed: this binary is its own test.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ktls/io/engine.h"
#include "tests/native/engine_scenarios.h"
#include "tests/support/async_scenarios.h"

namespace wasi_ktls {
namespace {

#if defined(__x86_64__)
constexpr unsigned kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kArch = AUDIT_ARCH_AARCH64;
#else
#error "add this architecture's AUDIT_ARCH_ value"
#endif

// io_uring_setup -> EPERM; every other syscall (and any other ABI) allowed.
bool deny_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    std::perror("prctl(PR_SET_NO_NEW_PRIVS)");
    return false;
  }
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    std::perror("prctl(PR_SET_SECCOMP)");
    return false;
  }
  return true;
}

TEST_CASE("the filter is real: io_uring_setup itself fails with EPERM") {
  errno = 0;
  long rc = ::syscall(__NR_io_uring_setup, 4, nullptr);
  int err = errno;
  CHECK(rc == -1);
  CHECK(err == EPERM);
}

TEST_CASE("automatic falls back to poll and says why in one line") {
  auto choice = make_engine(EngineKind::automatic, 64);
  if (!choice.ok()) FAIL(choice.error().message);
  CHECK(choice->engine->name() == "poll");
  const std::string& why = choice->reason;
  INFO("reason: " << why);
  CHECK(why.find("io_uring_setup") != std::string::npos);
  CHECK(why.find("EPERM") != std::string::npos);
  CHECK(why.find('\n') == std::string::npos);
}

TEST_CASE("asking for io_uring is a clear error") {
  auto choice = make_engine(EngineKind::io_uring, 64);
  REQUIRE_FALSE(choice.ok());
  INFO("error: " << choice.error().message);
  CHECK(choice.error().sys_errno == EPERM);
  CHECK(choice.error().message.find("io_uring_setup") != std::string::npos);
  CHECK(choice.error().message.find("EPERM") != std::string::npos);
}

TEST_CASE("the fallback engine moves data: echo and send_file") {
  auto choice = make_engine(EngineKind::automatic, 64);
  REQUIRE(choice.ok());
  testing::check_echo(*choice->engine);
  testing::check_send_file(*choice->engine);
}

TEST_CASE("TLS connections run on the fallback engine: many at once, send_file, timeouts") {
  auto choice = make_engine(EngineKind::automatic);
  REQUIRE(choice.ok());
  REQUIRE(choice->engine->name() == "poll");
  const test::ScenarioExpect userspace{Backend::auto_, Transport::userspace};
  test::many_connections(*choice->engine, userspace, 16, 1 << 20);
  test::send_file_intact(*choice->engine, userspace, 4u << 20);
  test::silent_peer_times_out(*choice->engine);
  test::abort_mid_transfer(*choice->engine, userspace);
}

}  // namespace
}  // namespace wasi_ktls

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (!wasi_ktls::deny_io_uring_setup()) return 1;
  doctest::Context context(argc, argv);
  return context.run();
}
