// `soak`: many TLS connections for a long time in one process, on both transports and both
// engines, every byte checked, RSS and fds sampled; exits non-zero on any mismatch, any
// unexpected error, or resources that do not stay flat. Run it through tools/soak, which
// builds it and starts it in the kernel lab (it needs a kTLS kernel for the kernel groups).
#include <signal.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/process.h"
#include "bench/soak/group.h"
#include "bench/soak/report.h"
#include "bench/soak/summary.h"
#include "ktls/probe/tls_stat.h"

namespace wasi_ktls::soak {
namespace {

using Groups = std::vector<std::unique_ptr<Group>>;

Sample take_sample(double t, std::string phase, const Groups& groups) {
  Sample s;
  s.t_s = t;
  s.phase = std::move(phase);
  if (auto r = bench::process_rss(::getpid())) s.rss_bytes = *r;
  if (auto f = bench::process_fds(::getpid())) s.fds = *f;
  if (auto st = read_tls_stat()) {
    s.ktls_tx = st->get("TlsCurrTxSw").value_or(0);
    s.ktls_rx = st->get("TlsCurrRxSw").value_or(0);
  }
  for (const auto& g : groups) {
    const Tally& t = g->tally();
    s.open_connections += t.live_clients + t.live_servers;
    s.messages += t.messages;
    s.bytes_checked += t.bytes_checked;
  }
  return s;
}

// Two fds per connection plus what the engines hold: more than the usual soft limit of 1024.
void raise_fd_limit(unsigned connections) {
  rlimit l{};
  ::getrlimit(RLIMIT_NOFILE, &l);
  const rlim_t want = 2 * connections + 256;
  if (l.rlim_cur >= want) return;
  l.rlim_cur = std::max<rlim_t>(want, l.rlim_cur);
  if (l.rlim_max < l.rlim_cur) l.rlim_max = l.rlim_cur;  // root (the lab) may raise the hard limit
  if (::setrlimit(RLIMIT_NOFILE, &l) != 0) std::perror("setrlimit RLIMIT_NOFILE");
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

int run(int argc, char** argv) {
  CLI::App app{"wasi-ktls soak: many TLS connections for a long time, every byte checked"};
  Summary s;
  s.duration_s = 600;
  s.connections = 512;
  s.sample_interval_s = 10;
  s.tolerance = 0.05;
  std::string out, ca, cert, key;
  long think_ms = s.traffic.think_mean.count();
  double drain_s = 120;
  app.add_option("--duration", s.duration_s, "seconds of traffic")->capture_default_str();
  app.add_option("--connections", s.connections, "connections open at once, split over the four groups")
      ->capture_default_str()
      ->check(CLI::Range(4u, 100000u));
  app.add_option("--out", out, "directory for report.md, samples.json/csv, soak.png")->required();
  app.add_option("--ca", ca, "CA certificate the clients trust")->required();
  app.add_option("--cert", cert, "server certificate (for localhost)")->required();
  app.add_option("--key", key, "server private key")->required();
  app.add_option("--sample-interval", s.sample_interval_s, "seconds between RSS/fd samples")->capture_default_str();
  app.add_option("--think-ms", think_ms, "mean pause between a client's exchanges (0 to twice this)")
      ->capture_default_str();
  app.add_option("--max-message", s.traffic.max_length, "largest message in bytes")->capture_default_str();
  app.add_option("--close-probability", s.traffic.close_probability, "chance of a close after each exchange")
      ->capture_default_str();
  app.add_option("--abrupt-share", s.traffic.abrupt_share, "share of closes without close_notify")
      ->capture_default_str();
  app.add_option("--tolerance", s.tolerance, "flatness band around the median, as a fraction")->capture_default_str();
  app.add_option("--drain-timeout", drain_s, "seconds allowed for every connection to close at the end")
      ->capture_default_str();
  app.add_option("--seed", s.traffic.seed, "seed of every random choice")->capture_default_str();
  app.add_option("--corrupt-every", s.traffic.corrupt_every,
                 "self-test: invert one byte of every Nth reply; the soak must then fail, finding each");
  CLI11_PARSE(app, argc, argv);
  s.traffic.think_mean = std::chrono::milliseconds(think_ms);

  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(s.connections);
  std::filesystem::create_directories(out);
  utsname u{};
  ::uname(&u);
  s.kernel = std::string(u.sysname) + " " + u.release;
  s.date = now_utc();

  Policy client, server;
  client.ca = PemSource::file(ca);
  server.certificate_chain = PemSource::file(cert);
  server.private_key = PemSource::file(key);
  ConnectionOptions options;
  // A server waits for the next request through the client's whole pause, and a busy lab
  // stretches every wait; 30 s would report a slow machine as a failure.
  options.io_timeout = std::chrono::seconds(120);
  options.handshake_timeout = std::chrono::seconds(120);

  Groups groups;
  const GroupSpec specs[] = {{Transport::kernel, EngineKind::io_uring, 0},
                             {Transport::kernel, EngineKind::poll, 0},
                             {Transport::userspace, EngineKind::io_uring, 0},
                             {Transport::userspace, EngineKind::poll, 0}};
  for (std::size_t i = 0; i < 4; ++i) {
    GroupSpec spec = specs[i];
    spec.connections = s.connections / 4 + (i < s.connections % 4 ? 1 : 0);
    auto g = Group::create(spec, client, server, s.traffic, options);
    if (!g) {
      fmt::print(stderr, "soak: group {}: {}\n", i, g.error().message);
      return 2;
    }
    groups.push_back(std::move(*g));
  }

  const auto start = Clock::now();
  auto since_start = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  s.samples.push_back(take_sample(0, "baseline", groups));
  s.baseline_fds = s.samples.back().fds;
  for (auto& g : groups) g->start();
  fmt::print("soak: {} connections ({}), {:.0f} s, samples every {} s -> {}\n", s.connections,
             [&] {
               std::string names;
               for (const auto& g : groups) names += (names.empty() ? "" : ", ") + g->name();
               return names;
             }(),
             s.duration_s, s.sample_interval_s, out);
  std::fflush(stdout);

  // Sampling cadence, not a wait for anything: the groups run on their own threads.
  const auto interval = std::chrono::duration<double>(s.sample_interval_s);
  for (int k = 1;; ++k) {
    const auto at = start + std::chrono::duration_cast<Clock::duration>(k * interval);
    if (std::chrono::duration<double>(at - start).count() > s.duration_s + 1e-6) break;
    std::this_thread::sleep_until(at);
    s.samples.push_back(take_sample(since_start(), "run", groups));
    const Sample& x = s.samples.back();
    fmt::print("soak: t={:.0f}s rss={:.1f}MiB fds={} open={} ktls={}/{} messages={} checked={:.1f}MB errors={}\n",
               x.t_s, static_cast<double>(x.rss_bytes) / 1048576.0, x.fds, x.open_connections, x.ktls_tx, x.ktls_rx,
               x.messages,
               static_cast<double>(x.bytes_checked) / 1e6, [&] {
                 std::uint64_t e = 0;
                 for (const auto& g : groups) e += g->tally().errors();
                 return e;
               }());
    std::fflush(stdout);
  }
  std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(s.duration_s)));
  s.run_s = since_start();

  for (auto& g : groups) g->stop();
  const auto drain_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(drain_s));
  auto all_drained = [&] {
    for (const auto& g : groups)
      if (!g->drained()) return false;
    return true;
  };
  while (!(s.drained = all_drained()) && Clock::now() < drain_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  s.drain_s = since_start() - s.run_s;
  // The engines are still there, as they were for the baseline: only connections are gone.
  s.samples.push_back(take_sample(since_start(), "drained", groups));
  s.final_fds = s.samples.back().fds;
  for (auto& g : groups) g->finish();
  for (const auto& g : groups) s.groups.push_back(counts_of(g->name(), g->spec().connections, g->tally()));

  judge(s);
  if (auto st = write_outputs(s, out); !st) s.failures.push_back("outputs: " + st.error().message);
  std::fputs(markdown(s).c_str(), stdout);
  fmt::print("soak: {}\n", s.failures.empty() ? "PASS" : "FAIL");
  return s.failures.empty() ? 0 : 1;
}

}  // namespace
}  // namespace wasi_ktls::soak

int main(int argc, char** argv) { return wasi_ktls::soak::run(argc, argv); }
