#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdlib>

#include "ktls/conn/backend.h"

using namespace wasi_ktls;

TEST_CASE("backend names round-trip and bad names are named in the error") {
  for (Backend b : {Backend::auto_, Backend::ktls, Backend::userspace}) {
    auto p = parse_backend(to_string(b));
    REQUIRE(p.ok());
    CHECK(*p == b);
  }
  auto bad = parse_backend("kernel");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("'kernel'") != std::string::npos);
}

TEST_CASE("auto falls back with the kernel's reason; ktls refuses; userspace says so") {
  const std::optional<std::string> no = "kernel has no TLS ULP";
  auto a = decide_backend(Backend::auto_, no);
  REQUIRE(a.ok());
  CHECK(a->transport == Transport::userspace);
  CHECK(a->reason == "kernel has no TLS ULP");

  auto k = decide_backend(Backend::ktls, no);
  REQUIRE_FALSE(k.ok());
  CHECK(k.error().message == "backend ktls requested but kernel has no TLS ULP");

  auto u = decide_backend(Backend::userspace, std::nullopt);
  REQUIRE(u.ok());
  CHECK(u->transport == Transport::userspace);
  CHECK(u->reason == "userspace requested");

  auto ok = decide_backend(Backend::auto_, std::nullopt);
  REQUIRE(ok.ok());
  CHECK(ok->transport == Transport::kernel);
}

TEST_CASE("WASI_KTLS_BACKEND overrides the default and rejects nonsense") {
  ::setenv("WASI_KTLS_BACKEND", "userspace", 1);
  auto b = backend_from_environment();
  REQUIRE(b.ok());
  CHECK(*b == Backend::userspace);
  ::setenv("WASI_KTLS_BACKEND", "fast", 1);
  auto bad = backend_from_environment();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("WASI_KTLS_BACKEND") != std::string::npos);
  ::unsetenv("WASI_KTLS_BACKEND");
  auto d = backend_from_environment(Backend::ktls);
  REQUIRE(d.ok());
  CHECK(*d == Backend::ktls);
}
