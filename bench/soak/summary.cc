#include "bench/soak/summary.h"

#include <fmt/format.h>

namespace wasi_ktls::soak {

Counts& Counts::operator+=(const Counts& o) {
  connections += o.connections;
  opened += o.opened;
  accepted += o.accepted;
  closed_clean += o.closed_clean;
  abrupt_fin += o.abrupt_fin;
  abrupt_rst += o.abrupt_rst;
  server_clean += o.server_clean;
  server_truncated += o.server_truncated;
  server_reset += o.server_reset;
  messages += o.messages;
  bytes_checked += o.bytes_checked;
  mismatched_bytes += o.mismatched_bytes;
  mismatched_messages += o.mismatched_messages;
  errors += o.errors;
  for (const auto& [k, v] : o.errors_by_kind) {
    auto& mine = errors_by_kind[k];
    if (mine.first == 0) mine.second = v.second;
    mine.first += v.first;
  }
  return *this;
}

Counts counts_of(std::string name, unsigned connections, const Tally& t) {
  Counts c;
  c.name = std::move(name);
  c.connections = connections;
  c.opened = t.opened;
  c.accepted = t.accepted;
  c.closed_clean = t.closed_clean;
  c.abrupt_fin = t.abrupt_fin;
  c.abrupt_rst = t.abrupt_rst;
  c.server_clean = t.server_clean;
  c.server_truncated = t.server_truncated;
  c.server_reset = t.server_reset;
  c.messages = t.messages;
  c.bytes_checked = t.bytes_checked;
  c.mismatched_bytes = t.mismatched_bytes;
  c.mismatched_messages = t.mismatched_messages;
  c.errors_by_kind = t.errors_by_kind();
  c.errors = t.errors();
  return c;
}

void judge(Summary& s) {
  s.total = Counts{};
  s.total.name = "total";
  for (const auto& g : s.groups) s.total += g;
  std::vector<double> rss, fds;
  for (const auto& x : s.samples)
    if (x.phase == "run") {
      rss.push_back(static_cast<double>(x.rss_bytes));
      fds.push_back(static_cast<double>(x.fds));
    }
  s.rss = judge_flat(rss, s.tolerance);
  s.fds = judge_flat(fds, s.tolerance);

  auto& f = s.failures;
  const Counts& t = s.total;
  if (t.messages == 0) f.push_back("no message was exchanged");
  if (t.mismatched_bytes > 0)
    f.push_back(fmt::format("{} mismatched bytes in {} messages", t.mismatched_bytes, t.mismatched_messages));
  if (t.errors > 0) f.push_back(fmt::format("{} unexpected errors", t.errors));
  for (const auto& g : s.groups) {
    if (g.abrupt_fin != g.server_truncated || g.abrupt_rst != g.server_reset)
      f.push_back(fmt::format("{}: clients closed abruptly {} times with FIN and {} with RST, servers saw {} "
                              "truncations and {} resets",
                              g.name, g.abrupt_fin, g.abrupt_rst, g.server_truncated, g.server_reset));
    if (g.closed_clean != g.server_clean)
      f.push_back(fmt::format("{}: {} clean closes by clients, {} answered by servers", g.name, g.closed_clean,
                              g.server_clean));
    if (g.opened != g.accepted)
      f.push_back(fmt::format("{}: {} connections opened by clients, {} accepted", g.name, g.opened, g.accepted));
    if (g.opened < g.connections)
      f.push_back(fmt::format("{}: only {} of its {} connections ever opened", g.name, g.opened, g.connections));
  }
  if (!s.drained) f.push_back("connections still open when the drain's time was up");
  if (!s.rss.flat) f.push_back("RSS not flat: " + s.rss.why);
  if (!s.fds.flat) f.push_back("open fds not flat: " + s.fds.why);
  const Sample& before = s.samples.front();
  const Sample& after = s.samples.back();
  if (after.ktls_tx != before.ktls_tx || after.ktls_rx != before.ktls_rx)
    f.push_back(fmt::format("kTLS sockets (TX/RX) after the drain: {}/{}, before: {}/{}", after.ktls_tx,
                            after.ktls_rx, before.ktls_tx, before.ktls_rx));
  if (s.final_fds != s.baseline_fds)
    f.push_back(fmt::format("{} fds open after the drain, {} before the first connection", s.final_fds,
                            s.baseline_fds));
}

}  // namespace wasi_ktls::soak
