#include "tests/support/test_pki.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace wasi_ktls::test {
namespace fs = std::filesystem;

TestPki::TestPki(TestPki&& o) noexcept
    : dir(std::exchange(o.dir, {})),
      ca(std::move(o.ca)),
      ca_key(std::move(o.ca_key)),
      server_cert(std::move(o.server_cert)),
      server_key(std::move(o.server_key)),
      client_cert(std::move(o.client_cert)),
      client_key(std::move(o.client_key)),
      expired_cert(std::move(o.expired_cert)),
      expired_key(std::move(o.expired_key)),
      wronghost_cert(std::move(o.wronghost_cert)),
      wronghost_key(std::move(o.wronghost_key)),
      other_ca(std::move(o.other_ca)) {}

TestPki::~TestPki() {
  if (dir.empty()) return;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

namespace {

std::string find_script() {
  std::vector<std::string> candidates;
  if (const char* srcdir = std::getenv("TEST_SRCDIR"))
    candidates.push_back(std::string(srcdir) + "/wasi_ktls/tools/make-test-pki");
  if (const char* root = std::getenv("WASI_KTLS_ROOT"))
    candidates.push_back(std::string(root) + "/tools/make-test-pki");
  candidates.push_back("tools/make-test-pki");
  for (auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return c;
  return {};
}

// Runs argv, waiting at most `timeout`; the exit status, or an error.
Status run(const std::vector<std::string>& args, std::chrono::seconds timeout) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (int err = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ); err != 0)
    return errno_error(err, "cannot run " + args[0]);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return errno_error(errno, "waitpid");
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return make_error("{} did not finish within {} s", args[0], timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return make_error("{} failed (status {})", args[0], status);
  return {};
}

}  // namespace

Result<TestPki> make_test_pki() {
  std::string script = find_script();
  if (script.empty())
    return make_error("tools/make-test-pki not found (no TEST_SRCDIR, WASI_KTLS_ROOT, or cwd repo root)");
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string templ = std::string(tmp != nullptr ? tmp : "/tmp") + "/wasi-ktls-pki.XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return errno_error(errno, "mkdtemp " + templ);
  TestPki pki;
  pki.dir = templ;
  if (auto s = run({script, pki.dir}, std::chrono::seconds(60)); !s) return s.error();
  auto at = [&pki](const char* f) { return pki.dir + "/" + f; };
  pki.ca = at("ca.pem");
  pki.ca_key = at("ca.key");
  pki.server_cert = at("server.pem");
  pki.server_key = at("server.key");
  pki.client_cert = at("client.pem");
  pki.client_key = at("client.key");
  pki.expired_cert = at("expired.pem");
  pki.expired_key = at("expired.key");
  pki.wronghost_cert = at("wronghost.pem");
  pki.wronghost_key = at("wronghost.key");
  pki.other_ca = at("other-ca.pem");
  return pki;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error("cannot open {}", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace wasi_ktls::test
