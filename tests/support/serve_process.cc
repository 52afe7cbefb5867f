#include "tests/support/serve_process.h"

#include <unistd.h>

#include <cstdlib>

namespace wasi_ktls::test {

Status ServeProcess::wait_log(std::string_view text, std::chrono::milliseconds timeout) {
  return child->read_until([&](const std::string& out) { return out.find(text) != out.npos; },
                           timeout);
}

std::string wasi_ktls_binary() {
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    std::string p = std::string(srcdir) + "/wasi_ktls/tools/wasi-ktls";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "bazel-bin/tools/wasi-ktls";
}

std::string log_tail(const std::string& log, std::size_t n) {
  return log.size() > n ? "..." + log.substr(log.size() - n) : log;
}

Result<ServeProcess> start_serve_process(const std::string& cert, const std::string& key,
                                         const std::vector<std::string>& args, int nofile) {
  std::vector<std::string> argv;
  if (nofile > 0)  // exec keeps the pid: the child's pid is serve's own
    argv = {"sh", "-c", "ulimit -n " + std::to_string(nofile) + " && exec \"$0\" \"$@\""};
  for (const std::string& a : {wasi_ktls_binary(), std::string("serve"), std::string("--cert"), cert,
                               std::string("--key"), key, std::string("--port"), std::string("0")})
    argv.push_back(a);
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv);
  if (!child) return child.error();
  ServeProcess s;
  s.child.emplace(std::move(*child));
  // "serving HTTP/1.1 on 127.0.0.1:PORT ..." comes first; the workers' lines follow.
  if (Status up = s.wait_log("worker 0: engine"); !up)
    return make_error("serve did not start: {}\nlog:\n{}", up.error().message, log_tail(s.log()));
  auto at = s.log().find("on 127.0.0.1:");
  if (at != std::string::npos) s.port = static_cast<std::uint16_t>(std::atoi(s.log().c_str() + at + 13));
  if (s.port == 0) return make_error("serve named no port\nlog:\n{}", log_tail(s.log()));
  return s;
}

}  // namespace wasi_ktls::test
