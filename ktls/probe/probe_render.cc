#include "ktls/probe/probe_render.h"

#include <fmt/format.h>

#include "base/errno_name.h"

namespace wasi_ktls {
namespace {

using Json = nlohmann::ordered_json;

Json verdict_json(const Verdict& v) {
  return Json{{"ok", v.ok},
              {"reason", v.reason},
              {"errno", v.sys_errno != 0 ? errno_name(v.sys_errno) : std::string()}};
}

std::string_view yes_no(bool ok) { return ok ? "yes" : "no"; }

// Reasons that only repeat "the ULP is missing" are shortened: the ULP row says why once.
std::string short_reason(const Probe& p, const Verdict& v) {
  if (!p.ulp.ok && !v.ok && v.sys_errno == 0) return "not probed: TLS ULP unavailable";
  return v.reason;
}

// A table row without trailing blanks (rows with no note would otherwise end in spaces).
void add_row(std::string& out, std::string row) {
  while (!row.empty() && row.back() == ' ') row.pop_back();
  out += row;
  out += '\n';
}

std::string summary(const Probe& p) {
  if (!p.ulp.ok) return "kTLS unavailable: the TLS ULP can't be attached (see below)";
  int usable = 0;
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) usable += p.supports(v, c) ? 1 : 0;
  if (usable == 0) return "kTLS unavailable: the kernel took no version/cipher in both directions";
  return fmt::format("kTLS available for {} of 6 version/cipher pairs (tx and rx)", usable);
}

}  // namespace

Json probe_to_json(const Probe& p) {
  Json j;
  j["schema"] = kProbeJsonSchema;
  j["kernel"] = p.kernel;
  j["ulp"] = verdict_json(p.ulp);

  Json combos = Json::array();
  for (const ComboVerdict& cv : p.combos) {
    Json c{{"version", to_string(cv.version)},
           {"cipher", to_string(cv.cipher)},
           {"direction", to_string(cv.direction)}};
    c.update(verdict_json(cv.verdict));
    combos.push_back(std::move(c));
  }
  j["combos"] = std::move(combos);

  Json usable = Json::array();
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) {
      auto why = p.refusal(v, c);
      usable.push_back(Json{{"version", to_string(v)},
                            {"cipher", to_string(c)},
                            {"ok", !why.has_value()},
                            {"reason", why.value_or("")}});
    }
  j["usable"] = std::move(usable);

  j["rekey"] = verdict_json(p.rekey);
  j["rx_expect_no_pad"] = verdict_json(p.rx_expect_no_pad);
  j["tx_zerocopy_ro"] = verdict_json(p.tx_zerocopy_ro);

  Json uring{{"ok", p.io_uring.ok},
             {"reason", p.io_uring.reason},
             {"errno", p.io_uring.sys_errno != 0 ? errno_name(p.io_uring.sys_errno) : ""}};
  Json ops = Json::object();
  for (const UringOp& op : p.io_uring.ops) ops[op.name] = op.supported;
  uring["ops"] = std::move(ops);
  j["io_uring"] = std::move(uring);

  Json stat = verdict_json(p.tls_stat_read);
  Json counters = Json::object();
  if (p.tls_stat)
    for (const auto& [name, value] : p.tls_stat->counters) counters[name] = value;
  stat["counters"] = std::move(counters);
  j["tls_stat"] = std::move(stat);
  return j;
}

std::string probe_to_table(const Probe& p) {
  std::string out;
  auto line = [&out](std::string_view label, bool ok, std::string_view note) {
    add_row(out, fmt::format("{:<18} {:<4} {}", label, yes_no(ok), note));
  };

  out += fmt::format("kernel {}: {}\n\n", p.kernel, summary(p));
  line("TLS ULP", p.ulp.ok, p.ulp.ok ? "" : p.ulp.reason);

  out += "\n";
  add_row(out, fmt::format("{:<8} {:<18} {:<4} {:<4} {}", "version", "cipher", "tx", "rx", "note"));
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) {
      const Verdict& tx = p.combo(v, c, Direction::tx);
      const Verdict& rx = p.combo(v, c, Direction::rx);
      std::string note;
      std::string txr = short_reason(p, tx), rxr = short_reason(p, rx);
      if (!tx.ok && !rx.ok && txr == rxr) note = txr;
      else if (!tx.ok && !rx.ok) note = "tx: " + txr + "; rx: " + rxr;
      else if (!tx.ok) note = "tx: " + txr;
      else if (!rx.ok) note = "rx: " + rxr;
      add_row(out, fmt::format("{:<8} {:<18} {:<4} {:<4} {}", to_string(v), to_string(c),
                               yes_no(tx.ok), yes_no(rx.ok), note));
    }
  out += "\n";

  line("rekey (TLS 1.3)", p.rekey.ok, short_reason(p, p.rekey));
  line("rx_expect_no_pad", p.rx_expect_no_pad.ok, short_reason(p, p.rx_expect_no_pad));
  line("tx_zerocopy_ro", p.tx_zerocopy_ro.ok, short_reason(p, p.tx_zerocopy_ro));

  if (p.io_uring.ok) {
    std::string offered, missing;
    for (const UringOp& op : p.io_uring.ops) (op.supported ? offered : missing) += " " + op.name;
    std::string note = "ops:" + offered;
    if (!missing.empty()) note += "; not offered:" + missing;
    line("io_uring", true, note);
  } else {
    line("io_uring", false, p.io_uring.reason);
  }

  if (p.tls_stat) {
    // Four counters per line, continuation lines aligned under the first.
    std::string note;
    std::size_t i = 0;
    for (const auto& [name, value] : p.tls_stat->counters) {
      if (i > 0) note += i % 4 == 0 ? fmt::format("\n{:24}", "") : " ";
      note += fmt::format("{}={}", name, value);
      ++i;
    }
    line("tls_stat", true, note);
  } else {
    line("tls_stat", false, p.tls_stat_read.reason);
  }
  return out;
}

}  // namespace wasi_ktls
