#include "bench/harness.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "bench/process.h"
#include "ktls/io/tcp_socket.h"

namespace wasi_ktls::bench {
namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * KiB;
const auto kTimeout = std::chrono::seconds(600);  // any one sample, even in the lab

std::string log_name(const Env& env, const std::string& what) {
  static int n = 0;
  std::string safe;
  for (char c : what) safe += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return fmt::format("{}/logs/{:04}-{}.log", env.work, ++n, safe);
}

std::string size_name(std::uint64_t b) {
  if (b >= MiB && b % MiB == 0) return fmt::format("{} MiB", b / MiB);
  if (b >= KiB && b % KiB == 0) return fmt::format("{} KiB", b / KiB);
  return fmt::format("{} B", b);
}

// How big a run is: --smoke (seconds), --quick (under three minutes here), or full.
struct Sizes {
  std::uint64_t bulk, file, wasm, count;
  std::size_t rr_rounds, handshakes;
  std::vector<std::size_t> idle;
  int samples;
};

Sizes sizes(const Env& env) {
  if (env.smoke) return {1 * MiB, 1 * MiB, 1 * MiB, 1 * MiB, 50, 10, {20}, 1};
  // The lab's rows are counts, not speed: one sample each, no warm-up.
  if (env.quick && env.lab) return {8 * MiB, 8 * MiB, 8 * MiB, 4 * MiB, 300, 50, {200}, 1};
  if (env.quick) return {32 * MiB, 32 * MiB, 32 * MiB, 4 * MiB, 2000, 200, {1000}, 3};
  if (env.lab) return {128 * MiB, 256 * MiB, 64 * MiB, 32 * MiB, 5000, 200, {1000, 10000}, 5};
  return {1024 * MiB, 256 * MiB, 256 * MiB, 32 * MiB, 20000, 2000, {1000, 10000}, 5};
}

// The key material a row uses: ECDSA P-256 (the test PKI) or RSA-2048.
struct Identity {
  std::string name, cert, key, tls12_cipher;
};
const Identity kEcdsa{"ECDSA P-256", "server.pem", "server.key", "ECDHE-ECDSA-AES128-GCM-SHA256"};
const Identity kRsa{"RSA-2048", "rsa-server.pem", "rsa-server.key", "ECDHE-RSA-AES128-GCM-SHA256"};

std::vector<std::string> worker_args(const Env& env, const std::string& scenario,
                                     const std::string& version = "1.3",
                                     const Identity& id = kEcdsa) {
  return {env.self, "bench-worker", "--scenario", scenario, "--pki", env.work + "/pki",
          "--cert", id.cert, "--key", id.key, "--version", version,
          "--tls12-cipher", id.tls12_cipher};
}

template <typename... T>
std::vector<std::string> plus(std::vector<std::string> v, T&&... more) {
  (v.push_back(std::forward<T>(more)), ...);
  return v;
}

Result<Json> answer(Child& c, const std::string& who, Clock::time_point deadline) {
  auto line = c.read_line(deadline);
  if (!line) return make_error("{}: {} ({})", who, line.error().message, c.log_tail());
  Json j = Json::parse(*line, nullptr, false);
  if (j.is_discarded()) return make_error("{}: unreadable answer '{}'", who, *line);
  if (j.contains("error")) return make_error("{}: {}", who, j["error"].get<std::string>());
  return j;
}

Result<Exit> finish(Child& c, const std::string& who, Clock::time_point deadline) {
  auto e = c.wait(deadline);
  if (!e) return make_error("{}: {}", who, e.error().message);
  if (e->status != 0) return make_error("{} exited {}: {}", who, e->status, c.log_tail());
  return e;
}

// Two workers, server and client, over one loopback TCP connection; `prefix` runs each
// under a tool (callgrind), with {} in it replaced by the end's name.
Result<Json> worker_pair(const Env& env, const std::string& what, std::vector<std::string> server,
                         std::vector<std::string> client,
                         const std::vector<std::string>& prefix = {}) {
  auto listener = tcp_listen("127.0.0.1", 0);
  if (!listener) return listener.error();
  auto port = local_port(listener->get());
  if (!port) return port.error();
  auto with_prefix = [&](std::vector<std::string> argv, const std::string& end) {
    std::vector<std::string> full;
    for (std::string p : prefix) {
      if (auto at = p.find("{}"); at != std::string::npos) p.replace(at, 2, end);
      full.push_back(p);
    }
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  };
  server = plus(std::move(server), "--role", "server");
  client = plus(std::move(client), "--role", "client", "--port", std::to_string(*port));
  auto s = Child::spawn(with_prefix(server, "server"), log_name(env, what + "-server"), listener->get());
  if (!s) return s.error();
  listener->reset();  // the server worker has it
  auto c = Child::spawn(with_prefix(client, "client"), log_name(env, what + "-client"));
  if (!c) return c.error();
  c->close_stdin();
  s->close_stdin();
  const auto deadline = Clock::now() + kTimeout;
  auto sj = answer(*s, "server", deadline);
  auto cj = answer(*c, "client", deadline);
  if (!sj) return sj.error();
  if (!cj) return cj.error();
  if (auto e = finish(*s, "server", deadline); !e) return e.error();
  if (auto e = finish(*c, "client", deadline); !e) return e.error();
  return Json{{"server", *sj}, {"client", *cj}};
}

// A server the harness measures from outside: its pid for CPU and memory, its port.
struct Server {
  Child child;
  std::uint16_t port;
};

Result<Server> start_server(const Env& env, const std::string& what, std::vector<std::string> argv,
                            std::uint16_t port) {
  auto c = Child::spawn(argv, log_name(env, what));
  if (!c) return c.error();
  if (auto st = wait_listening(port, std::chrono::seconds(20)); !st)
    return make_error("{}: {} ({})", what, st.error().message, c->log_tail());
  return Server{std::move(*c), port};
}

Result<Server> start_serve(const Env& env, const std::string& backend, const Identity& id,
                           const std::string& version, std::vector<std::string> extra = {}) {
  auto port = free_port();
  if (!port) return port.error();
  std::vector<std::string> argv{env.self, "serve", "--cert", env.work + "/pki/" + id.cert,
                                "--key", env.work + "/pki/" + id.key, "--port",
                                std::to_string(*port), "--backend", backend,
                                "--min-version", version, "--max-version", version};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return start_server(env, "serve", argv, *port);
}

Result<Server> start_s_server(const Env& env, const Identity& id, const std::string& version) {
  auto port = free_port();
  if (!port) return port.error();
  return start_server(env, "s_server",
                      {"openssl", "s_server", "-accept", std::to_string(*port), "-cert",
                       env.work + "/pki/" + id.cert, "-key", env.work + "/pki/" + id.key,
                       version == "1.2" ? "-tls1_2" : "-tls1_3", "-www", "-quiet"},
                      *port);
}

// nginx from Debian, one process (as `serve` with one worker it is not: per-connection
// figures compare), serving env.work/www. `ktls`: ssl_conf_command Options KTLS.
Result<Server> start_nginx(const Env& env, bool ktls, bool sendfile) {
  auto port = free_port();
  if (!port) return port.error();
  const std::string dir = fmt::format("{}/nginx-{}", env.work, *port);
  if (auto st = run_to_end({"mkdir", "-p", dir}, dir + ".log", std::chrono::seconds(10)); !st)
    return st.error();
  std::ofstream conf(dir + "/nginx.conf");
  conf << fmt::format(R"(daemon off;
master_process off;
user root;
worker_rlimit_nofile 40000;
error_log {0}/error.log;
pid {0}/nginx.pid;
events {{ worker_connections 30000; }}
http {{
  access_log off;
  client_body_temp_path {0};
  proxy_temp_path {0};
  fastcgi_temp_path {0};
  uwsgi_temp_path {0};
  scgi_temp_path {0};
  sendfile {3};
  keepalive_timeout 600s;
  server {{
    listen 127.0.0.1:{1} ssl;
    ssl_certificate {2}/pki/server.pem;
    ssl_certificate_key {2}/pki/server.key;
    ssl_protocols TLSv1.3;
    {4}
    root {2}/www;
  }}
}}
)",
                      dir, *port, env.work, sendfile ? "on" : "off",
                      ktls ? "ssl_conf_command Options KTLS;" : "");
  conf.close();
  return start_server(env, "nginx", {"nginx", "-c", dir + "/nginx.conf", "-p", dir}, *port);
}

// One client worker against a server: its answer, plus the server's CPU over the run.
Result<Json> against(const Env& env, Server& server, const std::string& what,
                     std::vector<std::string> client) {
  auto before = process_cpu(server.child.pid());
  if (!before) return before.error();
  auto c = Child::spawn(plus(std::move(client), "--port", std::to_string(server.port)),
                        log_name(env, what + "-client"));
  if (!c) return c.error();
  c->close_stdin();
  const auto deadline = Clock::now() + kTimeout;
  auto j = answer(*c, "client", deadline);
  if (!j) return j.error();
  if (auto e = finish(*c, "client", deadline); !e) return e.error();
  auto after = process_cpu(server.child.pid());
  if (!after) return after.error();
  const Cpu used = *after - *before;
  return Json{{"client", *j}, {"server", {{"user", used.user()}, {"sys", used.sys()}}}};
}

// RSS of the server before and after `n` idle TLS connections, settled.
Result<Json> idle_memory(const Env& env, Server& server, std::size_t n) {
  auto settled_rss = [&]() -> Result<std::uint64_t> {
    std::uint64_t last = 0;
    for (int i = 0; i < 50; ++i) {  // bounded: 50 x 100 ms
      auto r = process_rss(server.child.pid());
      if (!r) return r.error();
      if (i > 0 && *r == last) return *r;
      last = *r;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return last;
  };
  // One connection first, so that what the first connection sets up once is not counted.
  auto warm = against(env, server, "idle-warm", plus(worker_args(env, "handshakes"), "--count", "1"));
  if (!warm) return warm.error();
  auto before = settled_rss();
  if (!before) return before.error();
  auto fds_before = process_fds(server.child.pid());
  if (!fds_before) return fds_before.error();
  auto c = Child::spawn(plus(worker_args(env, "idle"), "--count", std::to_string(n), "--port",
                             std::to_string(server.port)),
                        log_name(env, "idle-client"));
  if (!c) return c.error();
  const auto deadline = Clock::now() + kTimeout;
  auto ready = answer(*c, "client", deadline);
  if (!ready) return ready.error();
  auto after = settled_rss();
  if (!after) return after.error();
  // The figure is per connection only if the server holds every one of them now (not
  // parked in its listen backlog, not dropped by a timeout).
  auto fds_after = process_fds(server.child.pid());
  if (!fds_after) return fds_after.error();
  if (*fds_after < *fds_before + n)
    return make_error("the server holds {} more fds with {} idle connections open: not every "
                      "connection reached it", *fds_after - std::min(*fds_after, *fds_before), n);
  c->close_stdin();
  auto summary = answer(*c, "client", deadline);
  if (!summary) return summary.error();
  if (auto e = finish(*c, "client", deadline); !e) return e.error();
  return Json{{"connections", n}, {"rss_before", *before}, {"rss_after", *after}};
}

// The instructions counted between CALLGRIND_START and _STOP: the "totals:" line (its
// "summary:" line counts from the start of the program, which was not instrumented).
std::uint64_t callgrind_total(const std::string& file) {
  std::ifstream f(file);
  std::uint64_t total = 0;
  for (std::string line; std::getline(f, line);)
    if (line.rfind("totals:", 0) == 0) total = std::stoull(line.substr(7));
  return total;
}

struct Catalog {
  const Env& env;
  Sizes z;
  std::vector<Case> cases;

  void add(std::string scenario, std::string system, std::string param, double x, bool kernel,
           std::function<Result<Json>(const Env&)> f) {
    std::string id = scenario + "/" + system + "/" + param;
    std::erase(id, ' ');
    std::erase(id, ',');
    const int warmups = z.samples > 1 && scenario != "idle" && scenario != "count" ? 1 : 0;
    cases.push_back({id, scenario, system, param, x, kernel, z.samples, warmups, std::move(f)});
  }

  // Systems of the in-process rows: (name, needs kernel TLS).
  const std::vector<std::pair<std::string, bool>> systems{
      {"tcp", false},  {"openssl", false},    {"openssl-ktls", true},
      {"ours-kernel", true}, {"ours-userspace", false}, {"asio", false}};

  void bulk() {
    for (std::uint64_t chunk : {1 * KiB, 16 * KiB, 256 * KiB, 1 * MiB})
      for (const auto& [sys, kernel] : systems)
        add("bulk", sys, size_name(chunk), static_cast<double>(chunk), kernel,
            [z = z, sys = sys, chunk](const Env& e) {
              auto common = [&](const char* scenario) {
                return plus(worker_args(e, scenario), "--system", sys, "--bytes",
                            std::to_string(z.bulk), "--chunk", std::to_string(chunk));
              };
              return worker_pair(e, "bulk-" + sys, common("send"), common("recv"));
            });
  }

  void request_response() {
    for (std::size_t msg : {std::size_t{64}, std::size_t{1024}})
      for (const auto& [sys, kernel] : systems)
        add("rr", sys, size_name(msg), static_cast<double>(msg), kernel,
            [z = z, sys = sys, msg](const Env& e) {
              auto args = plus(worker_args(e, "rr"), "--system", sys, "--msg", std::to_string(msg),
                               "--rounds", std::to_string(z.rr_rounds), "--warmup",
                               std::to_string(std::max<std::size_t>(10, z.rr_rounds / 10)));
              return worker_pair(e, "rr-" + sys, args, args);
            });
  }

  void handshakes() {
    for (const Identity* id : {&kEcdsa, &kRsa})
      for (std::string v : {"1.3", "1.2"}) {
        const std::string param = id->name + ", TLS " + v;
        auto client = [z = z, id, v](const Env& e) {
          return plus(worker_args(e, "handshakes", v, *id), "--count", std::to_string(z.handshakes));
        };
        add("handshakes", "wasi-ktls serve", param, 0, false, [=, z = z](const Env& e) -> Result<Json> {
          auto s = start_serve(e, "userspace", *id, v);
          if (!s) return s.error();
          return against(e, *s, "handshakes", client(e));
        });
        add("handshakes", "openssl s_server", param, 0, false, [=, z = z](const Env& e) -> Result<Json> {
          auto s = start_s_server(e, *id, v);
          if (!s) return s.error();
          return against(e, *s, "handshakes", client(e));
        });
      }
  }

  void idle() {
    for (std::size_t n : z.idle) {
      const std::string param = fmt::format("{} connections", n);
      const double x = static_cast<double>(n);
      for (std::string backend : {"ktls", "userspace"})
        add("idle", backend == "ktls" ? "wasi-ktls serve (kernel)" : "wasi-ktls serve (userspace)",
            param, x, backend == "ktls", [=, z = z](const Env& e) -> Result<Json> {
              // Its default cap (256 per worker) would park the rest in the listen backlog.
              auto s = start_serve(e, backend, kEcdsa, "1.3",
                                   {"--max-connections-per-worker", std::to_string(n)});
              if (!s) return s.error();
              return idle_memory(e, *s, n);
            });
      add("idle", "nginx", param, x, false, [=, z = z](const Env& e) -> Result<Json> {
        auto s = start_nginx(e, false, true);
        if (!s) return s.error();
        return idle_memory(e, *s, n);
      });
    }
  }

  void file() {
    const std::string param = size_name(z.file);
    auto get = [z = z](const Env& e, Server& s) {
      return against(e, s, "file", plus(worker_args(e, "get"), "--path", "/file.bin", "--bytes",
                                        std::to_string(z.file), "--chunk", std::to_string(256 * KiB)));
    };
    for (std::string backend : {"ktls", "userspace"})
      add("file", backend == "ktls" ? "wasi-ktls serve: kernel, send_file" : "wasi-ktls serve: userspace, read+encrypt",
          param, 0, backend == "ktls", [=, z = z](const Env& e) -> Result<Json> {
            auto s = start_serve(e, backend, kEcdsa, "1.3", {"--root", e.work + "/www"});
            if (!s) return s.error();
            return get(e, *s);
          });
    for (std::string sys : {"openssl-ktls", "openssl"})
      add("file", sys == "openssl" ? "OpenSSL by hand: read+SSL_write" : "OpenSSL by hand: kTLS + SSL_sendfile",
          param, 0, sys == "openssl-ktls", [=, z = z](const Env& e) -> Result<Json> {
            return worker_pair(e, "file-" + sys,
                               plus(worker_args(e, "serve-file"), "--system", sys, "--path",
                                    e.work + "/www/file.bin", "--bytes", std::to_string(z.file)),
                               plus(worker_args(e, "get"), "--path", "/file.bin", "--bytes",
                                    std::to_string(z.file), "--chunk", std::to_string(256 * KiB)));
          });
    struct Nginx { const char* name; bool ktls, sendfile; };
    for (Nginx n : {Nginx{"nginx: KTLS + sendfile", true, true},
                    Nginx{"nginx: KTLS, read+write", true, false},
                    Nginx{"nginx: userspace TLS", false, true}})
      add("file", n.name, param, 0, n.ktls, [=, z = z](const Env& e) -> Result<Json> {
        auto s = start_nginx(e, n.ktls, n.sendfile);
        if (!s) return s.error();
        return get(e, *s);
      });
  }

  void wasm() {
    for (std::string backend : {"ktls", "userspace"}) {
      const bool kernel = backend == "ktls";
      const std::string sys = kernel ? "guest, kernel transport" : "guest, userspace transport";
      auto run_guest = [=, z = z](const Env& e, Server& s, std::vector<std::string> guest_args) -> Result<Json> {
        std::vector<std::string> argv{e.self, "run", "--backend", backend, "--ca", e.work + "/pki/ca.pem",
                                      "--allow-connect", "127.0.0.1"};
        argv.insert(argv.end(), guest_args.begin(), guest_args.end());
        auto before = process_cpu(s.child.pid());
        if (!before) return before.error();
        const auto t0 = Clock::now();
        auto c = Child::spawn(argv, log_name(e, "wasm-guest"));
        if (!c) return c.error();
        c->close_stdin();
        const auto deadline = t0 + kTimeout;
        std::string last;
        while (auto line = c->read_line(deadline)) last = *line;
        auto ex = finish(*c, "guest", deadline);
        if (!ex) return ex.error();
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        auto after = process_cpu(s.child.pid());
        if (!after) return after.error();
        const Cpu used = *after - *before;
        return Json{{"client", {{"seconds", secs}, {"user", ex->user_s}, {"sys", ex->sys_s}, {"last_line", last}}},
                    {"server", {{"user", used.user()}, {"sys", used.sys()}}}};
      };
      add("wasm", sys, "download " + size_name(z.wasm), static_cast<double>(z.wasm), kernel,
          [=, z = z](const Env& e) -> Result<Json> {
            auto s = start_serve(e, backend, kEcdsa, "1.3");
            if (!s) return s.error();
            auto j = run_guest(e, *s, {e.guests + "/download.wasm", "127.0.0.1", std::to_string(s->port),
                                       "localhost", "/bytes/" + std::to_string(z.wasm), std::to_string(z.wasm)});
            if (j) (*j)["bytes"] = z.wasm;
            return j;
          });
      add("wasm", sys, "echo " + size_name(z.wasm) + " each way", static_cast<double>(z.wasm), kernel,
          [=, z = z](const Env& e) -> Result<Json> {
            auto s = start_serve(e, backend, kEcdsa, "1.3", {"--echo"});
            if (!s) return s.error();
            auto j = run_guest(e, *s, {e.guests + "/bulk.wasm", "127.0.0.1", std::to_string(s->port),
                                       "localhost", std::to_string(z.wasm / MiB)});
            if (j) (*j)["bytes"] = 2 * z.wasm;
            return j;
          });
    }
  }

  // Userspace instructions per MiB (callgrind), kernel and userspace transport and the raw
  // OpenSSL loop side by side in the same kernel: all run where the kernel rows run.
  void count() {
    for (std::string sys : {"ours-kernel", "ours-userspace", "openssl"})
      add("count", sys, "256 KiB", 256 * KiB, true, [=, z = z](const Env& e) -> Result<Json> {
        const std::string out = log_name(e, "callgrind-" + sys) + ".{}";
        auto args = [&](const char* scenario) {
          return plus(worker_args(e, scenario), "--system", sys, "--bytes", std::to_string(z.count),
                      "--chunk", std::to_string(256 * KiB));
        };
        auto j = worker_pair(e, "count-" + sys, args("send"), args("recv"),
                             {"valgrind", "--tool=callgrind", "--instr-atstart=no",
                              "--callgrind-out-file=" + out});
        if (!j) return j;
        for (const char* end : {"server", "client"}) {
          std::string file = out;
          file.replace(file.find("{}"), 2, end);
          (*j)[end]["instructions"] = callgrind_total(file);
        }
        return j;
      });
  }
};

}  // namespace

Status prepare(const Env& env) {
  const std::string pki = env.work + "/pki";
  auto log = env.work + "/logs/prepare.log";
  if (auto st = run_to_end({"mkdir", "-p", env.work + "/logs", env.work + "/www"}, "/dev/null",
                           std::chrono::seconds(10));
      !st)
    return st;
  // tools/make-test-pki sits beside the binary's source tree: found from the working directory.
  if (auto st = run_to_end({"tools/make-test-pki", pki}, log, std::chrono::seconds(60)); !st)
    return make_error("the test PKI (run from the repository root): {}", st.error().message);
  const std::string key = pki + "/rsa-server.key", csr = pki + "/rsa-server.csr";
  if (::access((pki + "/rsa-server.pem").c_str(), R_OK) != 0) {
    if (auto st = run_to_end({"openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                              "-subj", "/CN=localhost", "-out", csr},
                             log, std::chrono::seconds(60));
        !st)
      return st;
    std::ofstream(pki + "/rsa-ext.cnf") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    if (auto st = run_to_end({"openssl", "x509", "-req", "-in", csr, "-CA", pki + "/ca.pem", "-CAkey",
                              pki + "/ca.key", "-CAcreateserial", "-days", "30", "-extfile",
                              pki + "/rsa-ext.cnf", "-out", pki + "/rsa-server.pem"},
                             log, std::chrono::seconds(60));
        !st)
      return st;
  }
  // The file the file-serving rows send (byte i is i % 251, as /bytes/N).
  const Sizes z = sizes(env);
  const std::string file = env.work + "/www/file.bin";
  std::ofstream f(file, std::ios::binary | std::ios::trunc);
  std::vector<char> block(MiB);
  for (std::uint64_t off = 0; off < z.file; off += block.size()) {
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((off + i) % 251);
    f.write(block.data(), static_cast<std::streamsize>(block.size()));
  }
  if (!f) return make_error("cannot write {}", file);
  // The guests' first load compiles them (seconds) into the compile cache, which the kernel
  // lab reads: done here once, so that no sample counts it. Without arguments they only
  // print their usage.
  for (const char* guest : {"download.wasm", "bulk.wasm"})
    if (::access((env.guests + "/" + guest).c_str(), R_OK) == 0)
      (void)run_to_end({env.self, "run", env.guests + "/" + guest}, env.work + "/logs/compile.log",
                       std::chrono::seconds(300));
  return {};
}

std::vector<Case> all_cases(const Env& env) {
  Catalog c{env, sizes(env), {}};
  c.bulk();
  c.request_response();
  c.file();
  c.handshakes();
  c.idle();
  c.wasm();
  c.count();
  return std::move(c.cases);
}

Json run_case(const Case& c, const Env& env) {
  Json j{{"id", c.id}, {"scenario", c.scenario}, {"system", c.system}, {"param", c.param},
         {"x", c.x},   {"where", env.lab ? "lab" : "native"}};
  if (c.needs_kernel_tls && !env.kernel_tls) {
    j["status"] = "skipped";
    j["reason"] = "this kernel (" + env.kernel + ") does not do TLS";
    return j;
  }
  Json samples = Json::array();
  const int warmups = c.warmups;
  for (int i = 0; i < warmups + c.samples; ++i) {
    auto s = c.sample(env);
    if (!s) {
      j["status"] = "failed";
      j["reason"] = s.error().message;
      j["samples"] = samples;
      return j;
    }
    if (i >= warmups) samples.push_back(std::move(*s));
  }
  j["status"] = "ok";
  j["samples"] = samples;
  return j;
}

}  // namespace wasi_ktls::bench
