#include "bench/soak/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/process.h"

namespace wasi_ktls::soak {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

std::string mib(double bytes) { return fmt::format("{:.1f} MiB", bytes / kMiB); }

std::string bytes_text(double b) {
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.1f} MB", b / 1e6);
  return fmt::format("{:.0f} B", b);
}

std::string group_row(const Counts& c) {
  return fmt::format("| {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} | {} | {} |\n", c.name,
                     c.connections, c.opened, c.accepted, c.closed_clean, c.abrupt_fin, c.abrupt_rst,
                     c.server_truncated, c.server_reset, c.messages, bytes_text(static_cast<double>(c.bytes_checked)),
                     c.mismatched_bytes, c.errors);
}

std::string series_row(const char* what, const Flatness& f, bool bytes) {
  auto v = [&](double x) { return bytes ? mib(x) : fmt::format("{:.0f}", x); };
  return fmt::format("| {} | {} | {} | {} | {} | {} |\n", what, v(f.first), v(f.last), v(f.max), v(f.median),
                     f.flat ? "flat" : "NOT flat");
}

nlohmann::json counts_json(const Counts& c) {
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [k, v] : c.errors_by_kind) errors[k] = {{"count", v.first}, {"example", v.second}};
  nlohmann::json j = {{"name", c.name}, {"connections", c.connections}, {"errors", c.errors}, {"errors_by_kind", errors}};
  for (const auto& f : kCountFields) j[f.name] = c.*f.count;
  return j;
}

nlohmann::json flatness_json(const Flatness& f) {
  return {{"flat", f.flat}, {"first", f.first}, {"last", f.last}, {"max", f.max}, {"median_after_warmup", f.median},
          {"why", f.why}};
}

}  // namespace

std::string markdown(const Summary& s) {
  std::ostringstream o;
  const Counts& t = s.total;
  o << "# wasi-ktls soak\n\n"
    << "- date: " << s.date << "; kernel: " << s.kernel << "\n"
    << fmt::format("- {} connections for {:.0f} s (ran {:.0f} s, drained in {:.1f} s), split into {} groups, "
                   "one per (transport, engine); client and server in one process, one engine thread per group\n",
                   s.connections, s.duration_s, s.run_s, s.drain_s, s.groups.size())
    << fmt::format("- traffic: each client sends a message of 1 B to {} (log-uniform) that its server checks "
                   "byte by byte, and checks the server's reply of the same length; then pauses 0-{} ms; "
                   "after an exchange it closes with probability {} ({}% of those abruptly: half FIN without "
                   "close_notify, half RST) and reconnects\n",
                   s.traffic.max_length % 1024 == 0 ? fmt::format("{} KiB", s.traffic.max_length / 1024)
                                                     : fmt::format("{} B", s.traffic.max_length),
                   2 * s.traffic.think_mean.count(), s.traffic.close_probability,
                   100 * s.traffic.abrupt_share)
    << fmt::format("- achieved: {} messages ({:.1f}/s), {} checked ({:.2f} MB/s), {} connections opened\n\n",
                   t.messages, static_cast<double>(t.messages) / s.run_s,
                   bytes_text(static_cast<double>(t.bytes_checked)),
                   static_cast<double>(t.bytes_checked) / s.run_s / 1e6, t.opened);
  o << "**Verdict: " << (s.failures.empty() ? "PASS" : "FAIL") << "**\n";
  for (const auto& f : s.failures) o << "- " << f << "\n";
  o << "\n## Connections and bytes\n\n"
    << "| group | slots | opened | accepted | clean closes | abrupt FIN / RST (clients) | truncated / reset "
       "(servers saw) | messages | bytes checked | mismatched bytes | unexpected errors |\n"
    << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& g : s.groups) o << group_row(g);
  o << group_row(t) << "\n";
  o << "The abrupt closes are the only errors provoked on purpose; each must reach its server as exactly one "
       "truncation (FIN) or one reset (RST) between two messages.\n\n"
    << fmt::format("Kernel-group servers that went on in userspace because their client had already closed "
                   "(close_notify and FIN in before the server's hand-over; the kernel takes keys only on an "
                   "ESTABLISHED socket; only clients closing right after their handshake, at the drain, do "
                   "this): {}\n\n",
                   t.server_late);
  if (!t.errors_by_kind.empty()) {
    o << "Unexpected errors (all groups; one example each):\n\n";
    for (const auto& [k, v] : t.errors_by_kind) o << "- " << k << ": " << v.first << " (" << v.second << ")\n";
    o << "\n";
  }
  o << "## Process resources (sampled every " << s.sample_interval_s << " s)\n\n"
    << "| series | first | last | max | median after warm-up | verdict |\n|---|---:|---:|---:|---:|---|\n"
    << series_row("RSS", s.rss, true) << series_row("open fds", s.fds, false) << "\n"
    << "- RSS: " << s.rss.why << "\n- fds: " << s.fds.why << "\n"
    << fmt::format("- fds before the first connection: {}; after the drain: {}\n", s.baseline_fds, s.final_fds)
    << fmt::format("- kTLS sockets (kernel's TlsCurrTxSw/RxSw) before: {}/{}; after the drain: {}/{}\n\n",
                   s.samples.front().ktls_tx, s.samples.front().ktls_rx, s.samples.back().ktls_tx,
                   s.samples.back().ktls_rx)
    << "![RSS and fds over time](soak.png)\n\n"
    << "| t (s) | phase | RSS | fds | open connections | kTLS sockets TX/RX | messages | bytes checked |\n"
       "|---:|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& x : s.samples)
    o << fmt::format("| {:.0f} | {} | {} | {} | {} | {}/{} | {} | {} |\n", x.t_s, x.phase,
                     mib(static_cast<double>(x.rss_bytes)), x.fds, x.open_connections, x.ktls_tx, x.ktls_rx,
                     x.messages, bytes_text(static_cast<double>(x.bytes_checked)));
  return o.str();
}

Status write_outputs(const Summary& s, const std::string& dir) {
  std::ofstream(dir + "/report.md") << markdown(s);

  nlohmann::json samples = nlohmann::json::array();
  std::ofstream csv(dir + "/samples.csv");
  csv << "t_s,phase,rss_bytes,fds,open_connections,messages,bytes_checked,ktls_tx,ktls_rx\n";
  for (const auto& x : s.samples) {
    samples.push_back({{"t_s", x.t_s}, {"phase", x.phase}, {"rss_bytes", x.rss_bytes}, {"fds", x.fds},
                       {"open_connections", x.open_connections}, {"messages", x.messages},
                       {"bytes_checked", x.bytes_checked}, {"ktls_tx", x.ktls_tx}, {"ktls_rx", x.ktls_rx}});
    csv << fmt::format("{:.1f},{},{},{},{},{},{},{},{}\n", x.t_s, x.phase, x.rss_bytes, x.fds, x.open_connections,
                       x.messages, x.bytes_checked, x.ktls_tx, x.ktls_rx);
  }
  csv.close();
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : s.groups) groups.push_back(counts_json(g));
  nlohmann::json run = {
      {"date", s.date},
      {"kernel", s.kernel},
      {"settings",
       {{"connections", s.connections},
        {"duration_s", s.duration_s},
        {"sample_interval_s", s.sample_interval_s},
        {"flatness_tolerance", s.tolerance},
        {"max_message_bytes", s.traffic.max_length},
        {"think_mean_ms", s.traffic.think_mean.count()},
        {"close_probability", s.traffic.close_probability},
        {"abrupt_share", s.traffic.abrupt_share},
        {"seed", s.traffic.seed}}},
      {"run_s", s.run_s},
      {"drain_s", s.drain_s},
      {"drained", s.drained},
      {"groups", groups},
      {"total", counts_json(s.total)},
      {"rss", flatness_json(s.rss)},
      {"fds", flatness_json(s.fds)},
      {"baseline_fds", s.baseline_fds},
      {"final_fds", s.final_fds},
      {"passed", s.failures.empty()},
      {"failures", s.failures},
      {"samples", samples}};
  std::ofstream(dir + "/samples.json") << run.dump(1) << "\n";

  // RSS on the left axis, fds and open connections on the right; the drained point is the last.
  const std::string gp = dir + "/soak.gp";
  std::ofstream(gp) << "set terminal png size 1000,600 font ',11'\n"
                    << "set output '" << dir << "/soak.png'\n"
                    << "set datafile separator ','\nset key outside top center horizontal\nset grid\n"
                    << fmt::format("set title 'wasi-ktls soak: {} connections, {:.0f} s ({})'\n", s.connections,
                                   s.duration_s, s.failures.empty() ? "pass" : "FAIL")
                    << "set xlabel 'time (s)'\nset ylabel 'RSS (MiB)'\nset y2label 'count'\n"
                    << "set yrange [0:*]\nset y2range [0:*]\nset ytics nomirror\nset y2tics\n"
                    << "plot '" << dir << "/samples.csv' every ::1 using 1:($3/1048576) axes x1y1 with linespoints "
                    << "title 'RSS (MiB)', '' every ::1 using 1:4 axes x1y2 with linespoints title 'open fds', "
                    << "'' every ::1 using 1:5 axes x1y2 with lines dashtype 2 title 'open connections'\n";
  return bench::run_to_end({"gnuplot", gp}, dir + "/soak.gp.log", std::chrono::seconds(60));
}

}  // namespace wasi_ktls::soak
