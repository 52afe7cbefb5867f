// `wasi-ktls serve`, `fetch` and `run` (the real binary) with configuration that cannot work:
// a missing, garbled or unreadable PEM file, a key that is not the certificate's, a version
// range that is empty, suite names OpenSSL does not know, a port another process holds. Each
// must exit 2 at start-up with one line naming the option or file and what is wrong with it;
// serve must not have listened, fetch must not have connected.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ktls/io/tcp_socket.h"
#include "tests/support/child_process.h"
#include "tests/support/message_of.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_contexts.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;

namespace {

std::string runfile(const std::string& path) {
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    std::string p = std::string(srcdir) + "/wasi_ktls/" + path;
    if (::access(p.c_str(), R_OK) == 0) return p;
  }
  return "bazel-bin/" + path;  // by hand, from the repo root
}

std::string binary() { return runfile("tools/wasi-ktls"); }

struct Outcome {
  int status = -1;
  std::string output;  // stdout and stderr
};

Outcome run_cli(std::vector<std::string> args, std::vector<std::string> prefix = {}) {
  std::vector<std::string> argv = std::move(prefix);
  argv.push_back(binary());
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv);
  REQUIRE_MESSAGE(child.ok(), message_of(child));
  Outcome o;
  // A configuration error is found before anything waits on the network: 10 s is generous.
  Status read = child->read_to_end(10s);
  CHECK_MESSAGE(read.ok(), message_of(read) << "\noutput:\n" << child->output());
  auto rc = child->wait(5s);
  REQUIRE_MESSAGE(rc.ok(), message_of(rc));
  o.status = *rc;
  o.output = child->output();
  return o;
}

// Files the cases point at, made once.
struct Files {
  std::filesystem::path dir;
  std::string garbled, empty, unreadable, missing;
  Files() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cli-config.XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    garbled = (dir / "garbled.pem").string();
    std::ofstream(garbled) << "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
                              "-----END CERTIFICATE-----\n";
    empty = (dir / "empty.pem").string();
    std::ofstream(empty) << "";
    unreadable = (dir / "unreadable.pem").string();
    std::filesystem::copy_file(pki().ca, unreadable);
    REQUIRE(::chmod(unreadable.c_str(), 0) == 0);
    missing = (dir / "missing.pem").string();
  }
  ~Files() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

const Files& files() {
  static const Files f;
  return f;
}

// How to run the binary so that mode 0 denies reading: root reads any file
// (CAP_DAC_OVERRIDE), so as root the child runs without the two capabilities that allow it.
std::vector<std::string> without_read_override() {
  if (::geteuid() != 0) return {};
  return {"setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"};
}

void check_refused(const Outcome& o, const std::string& prefix,
                   const std::vector<std::string>& says) {
  INFO("output:\n" << o.output);
  CHECK(o.status == 2);
  CHECK(o.output.starts_with(prefix));
  for (const std::string& s : says) CHECK_MESSAGE(o.output.find(s) != std::string::npos, s);
  CHECK(o.output.find("serving ") == std::string::npos);  // serve never listened
  // One line: the reason, not a dump.
  CHECK(std::count(o.output.begin(), o.output.end(), '\n') == 1);
}

struct Case {
  std::string name;
  std::vector<std::string> args;  // the TLS options under test
  std::vector<std::string> says;  // in the message
  bool unreadable = false;
};

std::vector<Case> trust_and_identity_cases(bool server) {
  const Files& f = files();
  const TestPki& p = pki();
  // serve needs an identity; fetch and run present one only with both options.
  std::vector<std::string> id = {"--cert", p.server_cert, "--key", p.server_key};
  std::vector<std::string> verify_clients = {"--require-client-cert"};
  auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  std::vector<std::string> base = server ? id : std::vector<std::string>{};
  std::vector<std::string> ca_base = server ? with(id, verify_clients) : std::vector<std::string>{};
  std::string cert = server ? p.server_cert : p.client_cert;
  std::string key = server ? p.server_key : p.client_key;
  std::string other_key = server ? p.client_key : p.server_key;
  return {
      {"missing CA", with(ca_base, {"--ca", f.missing}), {"--ca " + f.missing, "No such file"}},
      {"garbled CA", with(ca_base, {"--ca", f.garbled}), {"CA file " + f.garbled}},
      {"empty CA", with(ca_base, {"--ca", f.empty}), {"CA file " + f.empty}},
      {"unreadable CA",
       with(ca_base, {"--ca", f.unreadable}),
       {"CA file " + f.unreadable, "Permission denied"},
       true},
      {"missing certificate",
       {"--cert", f.missing, "--key", key},
       {"certificate file " + f.missing, "No such file"}},
      {"garbled certificate", {"--cert", f.garbled, "--key", key}, {"certificate file " + f.garbled}},
      {"garbled key", {"--cert", cert, "--key", f.garbled}, {"private key file " + f.garbled}},
      {"key of another certificate",
       {"--cert", cert, "--key", other_key},
       {"private key file " + other_key, "does not match certificate", cert}},
      {"min version above max",
       with(base, {"--min-version", "1.3", "--max-version", "1.2"}),
       {"--min-version 1.3 is above --max-version 1.2"}},
      {"unknown TLS 1.3 suite",
       with(base, {"--tls13-suites", "TLS_NO_SUCH_SUITE"}),
       {"TLS 1.3 suite", "TLS_NO_SUCH_SUITE"}},
      {"unknown TLS 1.2 cipher",
       with(base, {"--tls12-ciphers", "NO-SUCH-CIPHER"}),
       {"TLS 1.2 cipher", "NO-SUCH-CIPHER"}},
  };
}

}  // namespace

TEST_CASE("serve: bad TLS configuration is a one-line error naming what is wrong, exit 2") {
  for (const Case& c : trust_and_identity_cases(/*server=*/true)) {
    INFO("case: " << c.name);
    std::vector<std::string> args = {"serve", "--port", "0"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    check_refused(run_cli(args, c.unreadable ? without_read_override() : std::vector<std::string>{}),
                  "serve: ", c.says);
  }
}

TEST_CASE("serve: --ca without --require-client-cert is refused (it would be ignored)") {
  check_refused(run_cli({"serve", "--port", "0", "--cert", pki().server_cert, "--key",
                         pki().server_key, "--ca", files().garbled}),
                "serve: ", {"--ca " + files().garbled, "--require-client-cert"});
}

TEST_CASE("serve: a bound that is not a number of seconds in range is refused") {
  for (const char* option : {"--handshake-timeout", "--idle-timeout", "--header-timeout",
                             "--send-timeout"}) {
    INFO(option);
    check_refused(run_cli({"serve", "--port", "0", "--cert", pki().server_cert, "--key",
                           pki().server_key, option, "0"}),
                  "serve: ", {option, "seconds"});
  }
}

TEST_CASE("serve: --port held by another listener, even one sharing with SO_REUSEPORT") {
  for (bool reuse_port : {false, true}) {
    INFO("the other listener has SO_REUSEPORT: " << reuse_port);
    auto other = tcp_listen("127.0.0.1", 0, reuse_port);
    REQUIRE_MESSAGE(other.ok(), message_of(other));
    auto port = local_port(other->get());
    REQUIRE(port.ok());
    Outcome o = run_cli({"serve", "--port", std::to_string(*port), "--cert", pki().server_cert,
                         "--key", pki().server_key});
    check_refused(o, "serve: ", {fmt::format("--port {}", *port), "Address already in use"});
  }
}

TEST_CASE("fetch: bad TLS configuration is refused before connecting, exit 2") {
  // The URL's server: a listener nobody accepts on. A connection fetch made would wait in its
  // backlog, where accept finds it.
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE_MESSAGE(listener.ok(), message_of(listener));
  auto port = local_port(listener->get());
  REQUIRE(port.ok());
  const std::string url = fmt::format("https://127.0.0.1:{}/", *port);
  for (const Case& c : trust_and_identity_cases(/*server=*/false)) {
    INFO("case: " << c.name);
    std::vector<std::string> args = {"fetch"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.push_back(url);
    check_refused(run_cli(args, c.unreadable ? without_read_override() : std::vector<std::string>{}),
                  "fetch: ", c.says);
  }
  REQUIRE(::fcntl(listener->get(), F_SETFL, O_NONBLOCK) == 0);  // accept must not wait
  int stray = ::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (stray >= 0) ::close(stray);
  CHECK_MESSAGE(stray < 0, "fetch connected despite its configuration error");
}

TEST_CASE("run: bad TLS configuration is refused before the guest runs, exit 2") {
  const std::string guest = runfile("tests/guests/https_get.wasm");
  REQUIRE(::access(guest.c_str(), R_OK) == 0);
  for (const Case& c : trust_and_identity_cases(/*server=*/false)) {
    // run has no version or suite options: its guests get the host's defaults.
    bool run_has_it = true;
    for (const std::string& a : c.args)
      if (a.starts_with("--min-version") || a.starts_with("--tls1")) run_has_it = false;
    if (!run_has_it) continue;
    INFO("case: " << c.name);
    std::vector<std::string> args = {"run"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.insert(args.end(), {guest, "localhost", "1", "/"});
    check_refused(run_cli(args, c.unreadable ? without_read_override() : std::vector<std::string>{}),
                  "wasi-ktls run: ", c.says);
  }
}
