#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "bench/process.h"

namespace wasi_ktls::bench {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024, kMiB = 1024.0 * 1024;
const char* const kLabLabel = "kernel lab (UML, generic C crypto): counts, not speed";

double num(const Json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

// The metrics of one sample, by scenario.
std::map<std::string, double> sample_metrics(const std::string& scenario, const Json& s) {
  std::map<std::string, double> m;
  const Json& c = s.contains("client") ? s["client"] : Json::object();
  const Json& sv = s.contains("server") ? s["server"] : Json::object();
  // Throughput as the client saw it, and each end's CPU per GiB under its name.
  auto transfer = [&](double bytes, const std::string& server, const std::string& client) {
    const double gib = bytes / kGiB;
    m["MB/s"] = bytes / num(c, "seconds") / 1e6;
    m[server + " user s/GiB"] = num(sv, "user") / gib;
    m[server + " sys s/GiB"] = num(sv, "sys") / gib;
    m[client + " user s/GiB"] = num(c, "user") / gib;
    m[client + " sys s/GiB"] = num(c, "sys") / gib;
  };
  if (scenario == "bulk") {
    transfer(num(c, "bytes"), "send", "recv");
  } else if (scenario == "rr") {
    std::vector<double> rtt;
    if (c.contains("rtt_us"))
      for (const auto& v : c["rtt_us"]) rtt.push_back(v.get<double>());
    m["p50 us"] = percentile(rtt, 50);
    m["p99 us"] = percentile(rtt, 99);
    m["p99.9 us"] = percentile(rtt, 99.9);
  } else if (scenario == "file" || scenario == "wasm") {
    transfer(scenario == "file" ? num(c, "bytes") : num(s, "bytes"), "server", "client");
  } else if (scenario == "handshakes") {
    const double n = num(c, "handshakes"), cpu = num(sv, "user") + num(sv, "sys");
    m["handshakes/server CPU-s"] = cpu > 0 ? n / cpu : 0;
    m["handshakes/s"] = n / num(c, "seconds");
  } else if (scenario == "idle") {
    m["KiB/connection"] = (num(s, "rss_after") - num(s, "rss_before")) / num(s, "connections") / 1024;
  } else if (scenario == "count") {
    const double mib = num(c, "bytes") / kMiB;
    m["send instr/MiB"] = num(sv, "instructions") / mib;
    m["recv instr/MiB"] = num(c, "instructions") / mib;
  }
  return m;
}

// The columns of each scenario's table, in order.
const std::map<std::string, std::vector<std::string>> kColumns{
    {"bulk", {"MB/s", "send user s/GiB", "send sys s/GiB", "recv user s/GiB", "recv sys s/GiB"}},
    {"rr", {"p50 us", "p99 us", "p99.9 us"}},
    {"file", {"MB/s", "server user s/GiB", "server sys s/GiB", "client user s/GiB", "client sys s/GiB"}},
    {"wasm", {"MB/s", "client user s/GiB", "client sys s/GiB", "server user s/GiB", "server sys s/GiB"}},
    {"handshakes", {"handshakes/server CPU-s", "handshakes/s"}},
    {"idle", {"KiB/connection"}},
    {"count", {"send instr/MiB", "recv instr/MiB"}},
};

const std::vector<std::pair<std::string, std::string>> kSections{
    {"bulk", "Bulk transfer: the sender writes, the receiver reads, in calls of the size shown (same system at both ends)"},
    {"rr", "Request/response latency: the client sends a message, the server echoes it (round trip)"},
    {"file", "File serving: one HTTPS GET of a file, read by the harness's OpenSSL client in 256 KiB reads"},
    {"handshakes", "New full handshakes (no resumption), one after another, from the harness's OpenSSL client"},
    {"idle", "Idle connections after the handshake: server RSS growth per connection"},
    {"wasm", "A WebAssembly guest through `wasi-ktls run` against `wasi-ktls serve` (client = the host process, guest included)"},
    {"count", "Userspace instructions per MiB (callgrind, transfer only; callgrind counts a large "
              "memcpy's `rep movsb` once per byte, so each copy of the data adds about 1 M per MiB here)"},
};

std::string fmt_num(double v) {
  if (v == 0) return "0";
  if (std::fabs(v) >= 100) return fmt::format("{:.0f}", v);
  if (std::fabs(v) >= 10) return fmt::format("{:.1f}", v);
  if (std::fabs(v) >= 1) return fmt::format("{:.2f}", v);
  return fmt::format("{:.3f}", v);
}

std::string cell(const Stat& s, int samples) {
  if (samples <= 1) return fmt_num(s.median);
  return fmt::format("{} ({}–{})", fmt_num(s.median), fmt_num(s.min), fmt_num(s.max));
}

std::string transport_of(const Json& c) {
  if (!c.contains("samples") || c["samples"].empty()) return "";
  const Json& s = c["samples"][0];
  for (const char* end : {"server", "client"})
    if (s.contains(end) && s[end].contains("transport")) return s[end]["transport"].get<std::string>();
  return "";
}

const Json* find(const Json& run, const std::string& scenario, const std::string& system,
                 const std::string& param) {
  for (const auto& c : run["cases"])
    if (c["scenario"] == scenario && c["system"] == system && c["param"] == param && c["status"] == "ok")
      return &c;
  return nullptr;
}

std::optional<double> median(const Json& run, const std::string& scenario, const std::string& system,
                             const std::string& param, const std::string& metric) {
  const Json* c = find(run, scenario, system, param);
  if (!c) return std::nullopt;
  auto m = metrics(*c);
  if (!m.count(metric)) return std::nullopt;
  return m[metric].median;
}

// The performance goals, each as a ratio from this run.
std::string goals(const Json& run) {
  std::ostringstream o;
  o << "## Goals, as ratios from this run\n\n| goal | measured | ratio | met |\n|---|---|---:|---|\n";
  auto row = [&](const std::string& goal, std::optional<double> ours, std::optional<double> theirs,
                 const std::string& what, bool lower_is_better, double target) {
    if (!ours || !theirs || *theirs == 0) {
      o << "| " << goal << " | " << what << ": not measured in this run | | |\n";
      return;
    }
    const double r = *ours / *theirs;
    const bool met = lower_is_better ? r <= target : r >= target;
    o << fmt::format("| {} | {}: {} vs {} | {:.3f} | {} |\n", goal, what, fmt_num(*ours),
                     fmt_num(*theirs), r, met ? "yes" : "**no**");
  };
  auto cpu = [&](const std::string& sys, const std::string& size) -> std::optional<double> {
    double total = 0;
    for (const char* m : {"send user s/GiB", "send sys s/GiB", "recv user s/GiB", "recv sys s/GiB"}) {
      auto v = median(run, "bulk", sys, size, m);
      if (!v) return std::nullopt;
      total += *v;
    }
    return total;
  };
  for (const char* size : {"16 KiB", "256 KiB", "1 MiB"}) {
    row(fmt::format("userspace transport CPU/GiB ≤ raw OpenSSL loop ({} writes)", size),
        cpu("ours-userspace", size), cpu("openssl", size), "send+recv CPU s/GiB", true, 1.0);
    row(fmt::format("userspace transport CPU/GiB < Asio ssl::stream ({} writes)", size),
        cpu("ours-userspace", size), cpu("asio", size), "send+recv CPU s/GiB", true, 0.999);
  }
  for (const char* id : {"ECDSA P-256", "RSA-2048"})
    for (const char* v : {"1.3", "1.2"}) {
      const std::string p = fmt::format("{}, TLS {}", id, v);
      row("serve handshakes per server CPU-s ≥ openssl s_server (" + p + ")",
          median(run, "handshakes", "wasi-ktls serve", p, "handshakes/server CPU-s"),
          median(run, "handshakes", "openssl s_server", p, "handshakes/server CPU-s"),
          "handshakes/CPU-s", false, 1.0);
    }
  // Per connection, so comparable across counts: nginx at the same count where it ran (the
  // lab's quick mode opens fewer), else at the nearest.
  for (const auto& c : run["cases"]) {
    if (c["scenario"] != "idle" || c["system"] == "nginx" || c["status"] != "ok") continue;
    const Json* nginx = nullptr;
    for (const auto& n : run["cases"])
      if (n["scenario"] == "idle" && n["system"] == "nginx" && n["status"] == "ok" &&
          (!nginx || std::fabs(n["x"].get<double>() - c["x"].get<double>()) <
                         std::fabs((*nginx)["x"].get<double>() - c["x"].get<double>())))
        nginx = &n;
    const std::string p = c["param"];
    row(fmt::format("{} memory per idle connection < nginx ({}{})", c["system"].get<std::string>(), p,
                    nginx && (*nginx)["param"] != p ? "; nginx: " + (*nginx)["param"].get<std::string>() : ""),
        median(run, "idle", c["system"], p, "KiB/connection"),
        nginx ? std::optional(metrics(*nginx)["KiB/connection"].median) : std::nullopt, "KiB/connection",
        true, 0.999);
  }
  for (const char* m : {"send instr/MiB", "recv instr/MiB"})
    row(fmt::format("kernel transport userspace instructions ≤ 2% of userspace transport ({})", m),
        median(run, "count", "ours-kernel", "256 KiB", m), median(run, "count", "ours-userspace", "256 KiB", m),
        "instructions/MiB", true, 0.02);
  return o.str();
}

std::string table(const Json& run, const std::string& scenario, bool lab) {
  std::ostringstream o;
  const auto& cols = kColumns.at(scenario);
  bool any = false;
  for (const auto& c : run["cases"]) {
    if (c["scenario"] != scenario || (c["where"] == "lab") != lab) continue;
    if (!any) {
      o << "| system | size | ";
      for (const auto& col : cols) o << col << " | ";
      o << "transport |\n|---|---|";
      for (std::size_t i = 0; i < cols.size(); ++i) o << "---:|";
      o << "---|\n";
      any = true;
    }
    o << "| " << c["system"].get<std::string>() << " | " << c["param"].get<std::string>() << " | ";
    if (c["status"] != "ok") {
      for (std::size_t i = 0; i < cols.size(); ++i) o << (i == 0 ? c["status"].get<std::string>() : "") << " | ";
      o << c.value("reason", "") << " |\n";
      continue;
    }
    auto m = metrics(c);
    for (const auto& col : cols) o << cell(m[col], static_cast<int>(c["samples"].size())) << " | ";
    o << transport_of(c) << " |\n";
  }
  return any ? o.str() : "";
}

}  // namespace

std::map<std::string, Stat> metrics(const Json& c) {
  std::map<std::string, std::vector<double>> all;
  if (c.contains("samples"))
    for (const auto& s : c["samples"])
      for (const auto& [k, v] : sample_metrics(c["scenario"], s)) all[k].push_back(v);
  std::map<std::string, Stat> out;
  for (auto& [k, v] : all) {
    std::sort(v.begin(), v.end());
    out[k] = {v[v.size() / 2], v.front(), v.back()};
  }
  return out;
}

std::string headline(const Json& c) {
  std::string s = fmt::format("{} | {} | {}", c["scenario"].get<std::string>(), c["system"].get<std::string>(),
                              c["param"].get<std::string>());
  if (c["where"] == "lab") s += " | lab";
  if (c["status"] != "ok") return s + ": " + c["status"].get<std::string>() + ": " + c.value("reason", "");
  auto m = metrics(c);
  std::string sep = ": ";
  for (const auto& col : kColumns.at(c["scenario"])) {
    s += sep + col + " " + fmt_num(m[col].median);
    sep = ", ";
  }
  return s;
}

std::string markdown(const Json& run) {
  std::ostringstream o;
  const Json& m = run["machine"];
  o << "# wasi-ktls bench (" << run["mode"].get<std::string>() << ")\n\n"
    << "- date: " << run["date"].get<std::string>() << "\n"
    << "- machine: " << m["cpu"].get<std::string>() << ", " << m["cores"] << " cores, "
    << m["memory_gib"] << " GiB\n"
    << "- kernel: " << m["kernel"].get<std::string>() << " (kTLS: " << m["ktls"].get<std::string>() << ")\n"
    << "- OpenSSL: " << m["openssl"].get<std::string>() << "\n"
    << "- load average when the run began (1, 5, 15 min; others' work skews every row alike): "
    << m.value("load_average", "?") << "\n"
    << "- every row: TLS 1.3 TLS_AES_128_GCM_SHA256 with the ECDSA P-256 test certificate unless it says "
       "otherwise; median of the samples, (min–max) when there are several, after one dropped warm-up.\n"
    << "- CPU is per GiB moved, user and system apart, each end from its own process "
       "(getrusage around the measured phase; servers the harness did not write: /proc/PID/stat).\n\n";
  o << goals(run) << "\n";
  for (const auto& [scenario, title] : kSections) {
    std::string native = table(run, scenario, false), lab = table(run, scenario, true);
    if (native.empty() && lab.empty()) continue;
    o << "## " << title << "\n\n";
    if (!native.empty()) o << native << "\n";
    if (!lab.empty()) o << "In the " << kLabLabel << ":\n\n" << lab << "\n";
  }
  return o.str();
}

Status plots(const Json& run, const std::string& out, const std::string& scratch) {
  const std::string& dir = scratch;
  const std::string preamble = "set terminal png size 1000,600 font ',11'\nset key outside right\nset grid\n";
  std::string failures;
  // One gnuplot run per plot: a plot with nothing to show fails alone.
  auto draw = [&](const std::string& name, const std::string& script) {
    const std::string gp = dir + "/" + name + ".gp";
    std::ofstream(gp) << preamble << "set output '" << out << "/" << name << ".png'\n" << script;
    if (auto st = run_to_end({"gnuplot", gp}, dir + "/" + name + ".log", std::chrono::seconds(60)); !st)
      failures += name + ".png: " + st.error().message + "; ";
  };
  auto value = [](double v) { return std::isfinite(v) ? fmt_num(v) : std::string("NaN"); };
  // Lines: one block per system, x = write size.
  {
    std::ofstream f(dir + "/bulk.dat");
    std::vector<std::string> order;
    std::set<std::string> seen;
    for (const auto& c : run["cases"])
      if (c["scenario"] == "bulk" && c["where"] == "native" && c["status"] == "ok" &&
          seen.insert(c["system"].get<std::string>()).second)
        order.push_back(c["system"]);
    for (const auto& sys : order) {
      f << "\"" << sys << "\"\n";
      for (const auto& c : run["cases"]) {
        if (c["scenario"] != "bulk" || c["system"] != sys || c["where"] != "native" || c["status"] != "ok") continue;
        auto m = metrics(c);
        double cpu = 0;
        for (const char* k : {"send user s/GiB", "send sys s/GiB", "recv user s/GiB", "recv sys s/GiB"}) cpu += m[k].median;
        f << c["x"].get<double>() << " " << value(m["MB/s"].median) << " " << value(cpu) << "\n";
      }
      f << "\n\n";
    }
    f.close();
    if (!order.empty()) {
      const std::string common =
          "set logscale x 2\nset xlabel 'write size'\n"
          "set xtics ('1 KiB' 1024, '16 KiB' 16384, '256 KiB' 262144, '1 MiB' 1048576)\n";
      draw("bulk-throughput", common + "set title 'Bulk throughput by write size (this machine)'\nset ylabel 'MB/s'\n"
                              "plot for [i=0:*] '" + dir + "/bulk.dat' index i using 1:2 with linespoints title columnheader(1)\n");
      draw("bulk-cpu", common + "set title 'CPU per GiB, sender + receiver, by write size (this machine)'\n"
                       "set ylabel 'CPU s/GiB'\nset yrange [0:*]\n"
                       "plot for [i=0:*] '" + dir + "/bulk.dat' index i using 1:3 with linespoints title columnheader(1)\n");
    }
  }
  // Bars: one row per case, labelled "system, param".
  auto bars = [&](const std::string& name, const std::string& scenario, const std::vector<std::string>& cols,
                  const std::string& title, const std::string& ylabel, bool log_y = false) {
    std::ofstream f(dir + "/" + name + ".dat");
    int rows = 0;
    for (const auto& c : run["cases"]) {
      if (c["scenario"] != scenario || c["status"] != "ok") continue;
      auto m = metrics(c);
      f << "\"" << c["system"].get<std::string>() << ", " << c["param"].get<std::string>()
        << (c["where"] == "lab" ? " (lab)" : "") << "\"";
      for (const auto& col : cols) f << " " << value(m[col].median);
      f << "\n";
      ++rows;
    }
    f.close();
    if (rows == 0) return;
    std::string script = "set title '" + title + "'\nset ylabel '" + ylabel +
                         "'\nset style data histograms\nset style histogram clustered\n"
                         "set style fill solid 0.8\nset boxwidth 0.9\nset xtics rotate by -35 left\n"
                         "set bmargin 14\n" +
                         (log_y ? "set logscale y\n" : "set yrange [0:*]\n") + "plot ";
    for (std::size_t i = 0; i < cols.size(); ++i)
      script += fmt::format("{}'{}/{}.dat' using {}{} title '{}'", i ? ", " : "", dir, name, i + 2,
                            i == 0 ? ":xtic(1)" : "", cols[i]);
    draw(name, script + "\n");
  };
  bars("latency", "rr", kColumns.at("rr"), "Request/response round trip (lab rows: UML, not speed)",
       "microseconds (log scale)", true);
  bars("handshakes", "handshakes", {"handshakes/server CPU-s"}, "Full handshakes per server CPU-second",
       "handshakes / CPU-s");
  bars("memory", "idle", kColumns.at("idle"), "Server memory per idle TLS connection", "KiB");
  if (!failures.empty()) return make_error("{}", failures);
  return {};
}

}  // namespace wasi_ktls::bench
