// One TLS transfer through the engine, both ends in this process: N MiB each way at once,
// client and server each writing from and reading into their own buffers. Prints one JSON
// line. Under callgrind (--instr-atstart=no) only the transfer itself is counted, so the
// userspace instructions per MiB of the kernel and userspace transports can be compared.
#include <valgrind/callgrind.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ktls/conn/async_connection.h"
#include "ktls/io/engine.h"
#include "ktls/io/loopback_pair.h"

using namespace wasi_ktls;

namespace {

struct Options {
  std::string pki;
  std::string backend = "ktls";
  std::string engine = "io_uring";
  std::string version = "1.3";
  std::string tls13_suite = "TLS_AES_128_GCM_SHA256";
  std::string tls12_cipher = "ECDHE-ECDSA-AES128-GCM-SHA256";
  std::size_t mib = 64;
  std::size_t chunk_kib = 256;
};

// One end: writes `total` bytes in chunks from `out` and reads `total` bytes into `in`.
struct End {
  AsyncConnection::Ptr conn;
  std::vector<std::uint8_t> out, in;
  std::size_t total = 0, sent = 0, received = 0;
  std::optional<Error> error;

  void write_next() {
    if (sent == total) return;
    std::size_t n = std::min(out.size(), total - sent);
    conn->write(std::span(out.data(), n), [this](Result<std::size_t> w) {
      if (!w) return void(error = w.error());
      sent += *w;
      write_next();
    });
  }
  void read_next() {
    if (received == total) return;
    conn->read(in, [this](Result<std::size_t> r) {
      if (!r) return void(error = r.error());
      if (*r == 0) return void(error = make_error("peer ended the stream early"));
      received += *r;
      read_next();
    });
  }
  bool done() const { return error || (sent == total && received == total); }
};

int fail(const std::string& m) {
  std::fprintf(stderr, "transfer: %s\n", m.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"One TLS transfer through the engine, both ends in this process"};
  app.add_option("--pki", o.pki, "Directory made by tools/make-test-pki")->required();
  app.add_option("--backend", o.backend, "ktls or userspace")
      ->check(CLI::IsMember({"ktls", "userspace"}));
  app.add_option("--engine", o.engine, "io_uring or poll")->check(CLI::IsMember({"io_uring", "poll"}));
  app.add_option("--version", o.version, "TLS version 1.2 or 1.3")->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option("--tls13-suite", o.tls13_suite, "TLS 1.3 suite");
  app.add_option("--tls12-cipher", o.tls12_cipher, "TLS 1.2 cipher");
  app.add_option("--mib", o.mib, "MiB each way")->check(CLI::Range(1, 1 << 20));
  app.add_option("--chunk-kib", o.chunk_kib, "Bytes per write/read call, KiB")->check(CLI::Range(1, 1 << 16));
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);  // splice takes no MSG_NOSIGNAL

  Policy sp, cp;
  sp.certificate_chain = PemSource::file(o.pki + "/server.pem");
  sp.private_key = PemSource::file(o.pki + "/server.key");
  cp.ca = PemSource::file(o.pki + "/ca.pem");
  for (Policy* p : {&sp, &cp}) {
    p->min_version = p->max_version = *parse_version(o.version);
    p->tls13_suites = o.tls13_suite;
    p->tls12_ciphers = o.tls12_cipher;
  }
  auto sctx = TlsContext::create(Role::server, sp);
  auto cctx = TlsContext::create(Role::client, cp);
  if (!sctx) return fail(sctx.error().message);
  if (!cctx) return fail(cctx.error().message);
  auto made = make_engine(o.engine == "poll" ? EngineKind::poll : EngineKind::io_uring);
  if (!made) return fail(made.error().message);
  Engine& engine = *made->engine;
  ConnectionOptions copts;
  copts.backend = *parse_backend(o.backend);
  copts.io_timeout = std::chrono::minutes(10);

  auto pair = make_loopback_pair();
  if (!pair) return fail(pair.error().message);
  End client, server;
  std::optional<Error> hs_error;
  int established = 0;
  auto on = [&](End& e) {
    return [&](Result<AsyncConnection::Ptr> c) {
      ++established;
      if (!c) hs_error = c.error();
      else e.conn = *c;
    };
  };
  AsyncConnection::accept(engine, std::move(pair->server), *sctx, copts, on(server));
  AsyncConnection::connect(engine, std::move(pair->client), *cctx, "localhost", copts, on(client));
  while (established < 2)
    if (auto r = engine.run_once(std::chrono::milliseconds(100)); !r) return fail(r.error().message);
  if (hs_error) return fail(hs_error->message);

  const std::size_t total = o.mib << 20;
  for (End* e : {&client, &server}) {
    e->total = total;
    e->out.assign(o.chunk_kib << 10, 0x5a);
    e->in.resize(o.chunk_kib << 10);
  }
  auto start = std::chrono::steady_clock::now();
  CALLGRIND_START_INSTRUMENTATION;
  client.write_next();
  server.write_next();
  client.read_next();
  server.read_next();
  while (!client.done() || !server.done())
    if (auto r = engine.run_once(std::chrono::milliseconds(100)); !r) return fail(r.error().message);
  CALLGRIND_STOP_INSTRUMENTATION;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (client.error) return fail("client: " + client.error->message);
  if (server.error) return fail("server: " + server.error->message);

  nlohmann::ordered_json j;
  j["backend"] = o.backend;
  j["transport"] = to_string(client.conn->transport());
  j["reason"] = client.conn->transport_reason();
  j["engine"] = engine.name();
  j["version"] = to_string(client.conn->info().version);
  j["suite"] = client.conn->info().suite;
  j["mib_each_way"] = o.mib;
  j["chunk_kib"] = o.chunk_kib;
  j["seconds"] = secs;
  j["mb_per_s_each_way"] = static_cast<double>(total) / 1e6 / secs;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
