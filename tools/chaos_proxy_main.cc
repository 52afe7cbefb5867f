// chaos-proxy: a TCP proxy that understands TLS record framing and puts one fault on the wire
// of each connection it relays (tools/chaos/fault.h). Prints "listening on PORT" once ready,
// then one line per connection; runs until SIGINT or SIGTERM.
//   chaos-proxy --listen 9443 --to 127.0.0.1:8443 --fault flip-byte --after-records 2
//               --direction s2c
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "base/unique_fd.h"
#include "ktls/io/tcp_socket.h"
#include "tools/chaos/relay.h"
#include "tools/chaos/chaos_proxy.h"

using namespace wasi_ktls;
using namespace wasi_ktls::chaos;

namespace {

int g_stop_write = -1;

void on_signal(int) {
  const char x = 1;
  (void)!::write(g_stop_write, &x, 1);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"chaos-proxy: one fault on the TLS records of each relayed connection"};
  int listen_port = 0;
  std::string to, fault_name = "none", direction = "s2c";
  ProxyConfig cfg;
  long long stall_ms = cfg.stall.count(), timeout_ms = cfg.io_timeout.count();
  app.add_option("--listen", listen_port, "port on 127.0.0.1 (0: any free one)");
  app.add_option("--to", to, "HOST:PORT to relay to")->required();
  app.add_option("--fault", fault_name,
                 "none, flip-byte, truncate-record, fin, rst, stall, split-coalesce, "
                 "inject-alert, inject-key-update, data-after-close");
  app.add_option("--after-records", cfg.after_records,
                 "application_data records (type 23, counted from the connection's start) "
                 "relayed untouched before the fault");
  app.add_option("--direction", direction, "c2s or s2c");
  app.add_option("--stall-ms", stall_ms, "how long stall holds its direction");
  app.add_option("--timeout-ms", timeout_ms, "a relay ends after this long with nothing moving");
  CLI11_PARSE(app, argc, argv);

  const auto fault = parse_fault(fault_name);
  const auto flow = parse_flow(direction);
  const auto colon = to.rfind(':');
  if (!fault || !flow || colon == std::string::npos) {
    std::fprintf(stderr, "chaos-proxy: bad --fault, --direction or --to (HOST:PORT)\n");
    return 2;
  }
  cfg.fault = *fault;
  cfg.flow = *flow;
  cfg.to_host = to.substr(0, colon);
  cfg.to_port = static_cast<std::uint16_t>(std::stoi(to.substr(colon + 1)));
  cfg.stall = std::chrono::milliseconds(stall_ms);
  cfg.io_timeout = std::chrono::milliseconds(timeout_ms);

  auto listener = tcp_listen("127.0.0.1", static_cast<std::uint16_t>(listen_port));
  if (!listener) {
    std::fprintf(stderr, "chaos-proxy: %s\n", listener.error().message.c_str());
    return 1;
  }
  int stop[2];
  if (::pipe2(stop, O_CLOEXEC) != 0) return 1;
  UniqueFd stop_read(stop[0]), stop_write(stop[1]);
  g_stop_write = stop_write.get();
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::printf("listening on %u\n", static_cast<unsigned>(*local_port(listener->get())));
  std::fflush(stdout);
  const std::atomic<bool> armed{true};
  serve(listener->get(), cfg, armed, stop_read.get(), [&](const RelayReport& r) {
    std::printf("connection: fault=%s direction=%s applied=%s records c2s=%llu s2c=%llu end=%s\n",
                std::string(to_string(cfg.fault)).c_str(), std::string(to_string(cfg.flow)).c_str(),
                r.fault_applied ? "yes" : "no", static_cast<unsigned long long>(r.records[0]),
                static_cast<unsigned long long>(r.records[1]), r.end.c_str());
    std::fflush(stdout);
  });
  return 0;
}
