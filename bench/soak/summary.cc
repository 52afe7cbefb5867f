#include "bench/soak/summary.h"

#include <fmt/format.h>

namespace wasi_ktls::soak {

const CountField kCountFields[14] = {
    {"opened", &Counts::opened, &Tally::opened},
    {"accepted", &Counts::accepted, &Tally::accepted},
    {"closed_clean", &Counts::closed_clean, &Tally::closed_clean},
    {"abrupt_fin", &Counts::abrupt_fin, &Tally::abrupt_fin},
    {"abrupt_rst", &Counts::abrupt_rst, &Tally::abrupt_rst},
    {"server_clean", &Counts::server_clean, &Tally::server_clean},
    {"server_truncated", &Counts::server_truncated, &Tally::server_truncated},
    {"server_reset", &Counts::server_reset, &Tally::server_reset},
    {"server_late_handover", &Counts::server_late, &Tally::server_late},
    {"messages", &Counts::messages, &Tally::messages},
    {"bytes_checked", &Counts::bytes_checked, &Tally::bytes_checked},
    {"mismatched_bytes", &Counts::mismatched_bytes, &Tally::mismatched_bytes},
    {"mismatched_messages", &Counts::mismatched_messages, &Tally::mismatched_messages},
    {"corrupted", &Counts::corrupted, &Tally::corrupted},
};

Counts& Counts::operator+=(const Counts& o) {
  connections += o.connections;
  for (const auto& f : kCountFields) this->*f.count += o.*f.count;
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
  for (const auto& f : kCountFields) c.*f.count = t.*f.tally;
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
  // A sample can catch a few connections between their close and their reconnect (a client's
  // socket already closed while its server still answers the close_notify, or the other way
  // round): 8 fds of slack, which only matters when few connections run (the smoke test).
  // A leak shows anyway, as drift in a long run and as fds left after the drain.
  s.fds = judge_flat(fds, s.tolerance, 8);

  auto& f = s.failures;
  const Counts& t = s.total;
  if (t.messages == 0) f.push_back("no message was exchanged");
  if (t.mismatched_bytes > 0)
    f.push_back(fmt::format("{} mismatched bytes in {} messages", t.mismatched_bytes, t.mismatched_messages));
  if (t.corrupted > 0)
    f.push_back(fmt::format("{} bytes corrupted on purpose (--corrupt-every), {} of them found", t.corrupted,
                            t.mismatched_bytes));
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
