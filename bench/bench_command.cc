#include "bench/bench_command.h"

#include <openssl/crypto.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "bench/harness.h"
#include "bench/process.h"
#include "bench/report.h"
#include "ktls/probe/probe.h"

namespace wasi_ktls::bench {
namespace {

namespace fs = std::filesystem;

struct Options {
  bool quick = false, smoke = false, count = false, no_lab = false;
  std::string out, only, guests;
  bool lab_part = false;  // inside the kernel lab: the kernel rows only, raw JSON to `raw`
  std::string raw;
};

std::string mode(const Options& o) { return o.smoke ? "smoke" : o.quick ? "quick" : "full"; }

bool selected(const Case& c, const Options& o) {
  if (c.scenario == "count" && !o.count) return false;
  if (o.only.empty()) return true;
  std::stringstream ss(o.only);
  for (std::string pat; std::getline(ss, pat, ',');)
    if (!pat.empty() && c.id.find(pat) != std::string::npos) return true;
  return false;
}

std::string first_line_of(const std::string& file, const std::string& key) {
  std::ifstream f(file);
  for (std::string line; std::getline(f, line);)
    if (line.rfind(key, 0) == 0) {
      auto v = line.substr(line.find(':') + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "?";
}

std::string load_average() {  // the 1, 5 and 15 minute figures
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

Json machine(const Env& env) {
  utsname u{};
  ::uname(&u);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const double mem_kib = std::atof(first_line_of("/proc/meminfo", "MemTotal").c_str());  // "N kB"
  return {{"host", host},
          {"cpu", first_line_of("/proc/cpuinfo", "model name")},
          {"cores", std::thread::hardware_concurrency()},
          {"memory_gib", std::round(mem_kib / 1024 / 1024 * 10) / 10},
          {"kernel", std::string(u.release)},
          {"ktls", env.kernel_tls ? "yes" : "no: kernel rows run in the kernel lab"},
          {"openssl", OpenSSL_version(OPENSSL_VERSION)},
          {"load_average", load_average()}};
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

Json run_here(const std::vector<Case>& cases, const Env& env, const std::string& prefix) {
  Json results = Json::array();
  std::size_t i = 0;
  for (const Case& c : cases) {
    const auto t0 = Clock::now();
    Json r = run_case(c, env);
    // Wall time of the whole row (start-up, warm-up, every sample): where a run's minutes go.
    r["wall_s"] = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("%s[%zu/%zu] %s (%.1f s)\n", prefix.c_str(), ++i, cases.size(), headline(r).c_str(),
                r["wall_s"].get<double>());
    std::fflush(stdout);
    results.push_back(std::move(r));
  }
  return results;
}

// The kernel rows, inside the kernel lab: this same command with --lab-part, its progress
// lines passed through, its raw results read back.
Result<Json> run_in_lab(const Options& o, const Env& env, std::size_t rows) {
  if (::access("tools/kernel-lab", X_OK) != 0)
    return make_error("tools/kernel-lab not found (run from the repository root)");
  const std::string dir = env.work + "/lab";
  fs::create_directories(dir);
  // The lab's HOME is its own /tmp: it reads the guests' compile cache from ours.
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const std::string cache = xdg && *xdg ? xdg : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") + "/.cache";
  std::vector<std::string> argv{"tools/kernel-lab", "--timeout", o.smoke ? "300" : "1800", "--mem", "2G",
                                "--env", "XDG_CACHE_HOME=" + cache, "--out", dir, "--", env.self, "bench", "--lab-part", "--raw",
                                dir + "/lab.json", "--guests", env.guests};
  if (o.quick) argv.push_back("--quick");
  if (o.smoke) argv.push_back("--smoke");
  if (o.count) argv.push_back("--count");
  if (!o.only.empty()) argv.insert(argv.end(), {"--only", o.only});
  std::printf("== %zu kernel row(s) in the kernel lab (UML, generic C crypto: counts, not speed)\n", rows);
  std::fflush(stdout);
  auto c = Child::spawn(argv, dir + "/lab-stderr.log");
  if (!c) return c.error();
  c->close_stdin();
  const auto deadline = Clock::now() + std::chrono::seconds(o.smoke ? 320 : 1850);
  while (auto line = c->read_line(deadline)) {
    std::printf("%s\n", line->c_str());
    std::fflush(stdout);
  }
  auto e = c->wait(deadline);
  if (!e) return make_error("kernel lab: {}", e.error().message);
  if (e->status != 0) return make_error("kernel lab exited {}: {}", e->status, c->log_tail());
  std::ifstream f(dir + "/lab.json");
  Json j = Json::parse(f, nullptr, false);
  if (j.is_discarded()) return make_error("kernel lab: no readable results in {}", dir + "/lab.json");
  return j;
}

int run(const Options& o) {
  Env env;
  env.self = fs::read_symlink("/proc/self/exe");
  env.quick = o.quick;
  env.smoke = o.smoke;
  env.lab = o.lab_part;
  env.guests = !o.guests.empty() ? o.guests : (fs::path(env.self).parent_path().parent_path() / "tests/guests").string();
  const Probe& probe = kernel_probe();
  env.kernel = probe.kernel;
  env.kernel_tls = probe.supports(TlsVersion::tls13, Cipher::aes_128_gcm);
  char tmpl[] = "/tmp/wasi-ktls-bench.XXXXXX";
  if (!::mkdtemp(tmpl)) return std::perror("mkdtemp"), 1;
  env.work = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::error_code ec; fs::remove_all(dir, ec); }
  } cleanup{env.work};

  const auto t_prepare = Clock::now();
  if (auto st = prepare(env); !st) {
    std::fprintf(stderr, "bench: %s\n", st.error().message.c_str());
    return 1;
  }
  if (!o.lab_part)
    std::printf("== prepared (test PKI, file, guests' compile cache) in %.1f s\n",
                std::chrono::duration<double>(Clock::now() - t_prepare).count());
  std::vector<Case> here, lab;
  for (Case& c : all_cases(env)) {
    if (!selected(c, o)) continue;
    if (o.lab_part && !c.needs_kernel_tls) continue;
    (c.needs_kernel_tls && !env.kernel_tls && !o.no_lab ? lab : here).push_back(std::move(c));
  }
  if (here.empty() && lab.empty()) {
    std::fprintf(stderr, "bench: no row matches --only '%s'\n", o.only.c_str());
    return 2;
  }

  if (o.lab_part) {
    Json results = run_here(here, env, "lab ");
    std::ofstream(o.raw) << results.dump();
    return 0;
  }

  Json run{{"mode", mode(o)}, {"date", now_utc()}, {"machine", machine(env)}};
  std::printf("== wasi-ktls bench (%s): %zu row(s) here, %zu in the kernel lab\n", mode(o).c_str(),
              here.size(), lab.size());
  Json cases = run_here(here, env, "");
  if (!lab.empty()) {
    auto from_lab = run_in_lab(o, env, lab.size());
    if (from_lab) {
      for (auto& c : *from_lab) cases.push_back(std::move(c));
    } else {
      for (const Case& c : lab)
        cases.push_back({{"id", c.id}, {"scenario", c.scenario}, {"system", c.system}, {"param", c.param},
                         {"x", c.x}, {"where", "lab"}, {"status", "failed"}, {"reason", from_lab.error().message}});
    }
  }
  run["cases"] = std::move(cases);

  const std::string out = !o.out.empty() ? o.out : "bench/results/" + mode(o);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return std::fprintf(stderr, "bench: cannot create %s: %s\n", out.c_str(), ec.message().c_str()), 1;
  const std::string md = markdown(run);
  std::ofstream(out + "/bench.md") << md;
  std::ofstream(out + "/bench.json") << run.dump(1);
  std::printf("\n%s", md.c_str());
  if (auto st = plots(run, out, env.work); !st)
    std::fprintf(stderr, "bench: plots: %s\n", st.error().message.c_str());
  std::printf("\nWritten: %s/bench.md, %s/bench.json and the PNG plots there.\n", out.c_str(), out.c_str());
  bool failed = false;
  for (const auto& c : run["cases"]) failed |= c["status"] == "failed";
  return failed ? 1 : 0;
}

}  // namespace

cli::Command add_bench_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "bench", "The benchmark: userspace vs kTLS vs OpenSSL, Asio, nginx, s_server, plain TCP");
  sub->add_flag("--quick", o->quick, "Smaller sizes: under three minutes on a 2-core machine");
  sub->add_flag("--smoke", o->smoke, "Tiny sizes, one sample: checks the harness works (seconds)");
  sub->add_option("--out", o->out, "Where the table, JSON and plots go (default bench/results/MODE)");
  sub->add_option("--only", o->only,
                  "Rows whose id contains one of these comma-separated strings, e.g. "
                  "bulk/ours,handshakes (ids: scenario/system/size)");
  sub->add_flag("--count", o->count,
                "Also count userspace instructions per MiB under callgrind (kernel vs userspace transport)");
  sub->add_flag("--no-lab", o->no_lab, "Do not run kernel rows in the kernel lab (they say why)");
  sub->add_option("--guests", o->guests, "Built wasm guests (default: bazel-bin/tests/guests)");
  sub->add_flag("--lab-part", o->lab_part)->group("");
  sub->add_option("--raw", o->raw)->group("");
  sub->get_option("--quick")->excludes(sub->get_option("--smoke"));
  return {sub, [o] { return run(*o); }};
}

}  // namespace wasi_ktls::bench
