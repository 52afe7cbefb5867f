// `wasi-ktls serve` run as a user runs it, on the host (no kTLS here: the userspace transport):
// the kernel probe before the workers.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "ktls/conn/connection.h"
#include "ktls/io/tcp_socket.h"
#include "tests/support/child_process.h"
#include "tests/support/fd_count.h"
#include "tests/support/message_of.h"
#include "tests/support/tls_contexts.h"
#include "tools/http_message.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;

namespace {

std::string serve_binary() {
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    std::string p = std::string(srcdir) + "/wasi_ktls/tools/wasi-ktls";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "bazel-bin/tools/wasi-ktls";  // by hand, from the repo root
}

std::size_t count_of(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + needle.size()))
    ++n;
  return n;
}

// The end of a log, for failure messages that stay readable when a log floods.
std::string tail(const std::string& log, std::size_t n = 1500) {
  return log.size() > n ? "..." + log.substr(log.size() - n) : log;
}

// A running `serve --port 0`: its log (stdout and stderr merged) and the port it reported.
struct Serve {
  std::optional<ChildProcess> child;
  std::uint16_t port = 0;

  const std::string& log() const { return child->output(); }
  // Waits (bounded) for `text` in the log.
  Status wait_log(std::string_view text, std::chrono::milliseconds timeout = 10s) {
    return child->read_until([&](const std::string& out) { return out.find(text) != out.npos; },
                             timeout);
  }
  // utime + stime of the whole process so far, in seconds.
  double cpu_seconds() const {
    std::ifstream f("/proc/" + std::to_string(child->pid()) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto after_comm = stat.rfind(')');
    if (after_comm == std::string::npos) return -1;
    std::vector<std::string> fields;  // fields[0] is the state, field 3 of proc_pid_stat(5)
    std::string rest = stat.substr(after_comm + 2);
    for (std::size_t at = 0; at < rest.size();) {
      auto sp = rest.find(' ', at);
      fields.push_back(rest.substr(at, sp == std::string::npos ? sp : sp - at));
      if (sp == std::string::npos) break;
      at = sp + 1;
    }
    if (fields.size() < 13) return -1;
    double ticks = std::stod(fields[11]) + std::stod(fields[12]);  // utime, stime
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
};

// Starts serve with the test PKI and `args`; with `nofile`, under that RLIMIT_NOFILE.
Serve start_serve(const std::vector<std::string>& args, int nofile = 0) {
  std::vector<std::string> argv;
  if (nofile > 0)  // exec keeps the pid: the Serve's pid is serve's own
    argv = {"sh", "-c", "ulimit -n " + std::to_string(nofile) + " && exec \"$0\" \"$@\""};
  argv.push_back(serve_binary());
  for (const std::string& a : {std::string("serve"), std::string("--cert"), pki().server_cert,
                               std::string("--key"), pki().server_key, std::string("--port"),
                               std::string("0")})
    argv.push_back(a);
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv);
  REQUIRE_MESSAGE(child.ok(), message_of(child));
  Serve s;
  s.child.emplace(std::move(*child));
  // "serving HTTP/1.1 on 127.0.0.1:PORT with ..." names the port; the workers follow.
  Status up = s.wait_log(" thread(s) (backend ");
  REQUIRE_MESSAGE(up.ok(), message_of(up) << "\nlog:\n" << tail(s.log()));
  auto at = s.log().find("on 127.0.0.1:");
  REQUIRE(at != std::string::npos);
  s.port = static_cast<std::uint16_t>(std::atoi(s.log().c_str() + at + 13));
  REQUIRE(s.port != 0);
  Status worker = s.wait_log("worker 0: engine");
  REQUIRE_MESSAGE(worker.ok(), message_of(worker) << "\nlog:\n" << tail(s.log()));
  return s;
}

}  // namespace

TEST_CASE("serve probes the kernel once, before any worker starts, and logs what it found") {
  Serve s = start_serve({"--threads", "2"});
  auto probe = s.log().find("kernel probe: ");
  auto worker = s.log().find("worker ");
  INFO("log:\n" << tail(s.log()));
  REQUIRE(probe != std::string::npos);
  CHECK(probe < worker);
  CHECK(count_of(s.log(), "kernel probe: ") == 1);
}
