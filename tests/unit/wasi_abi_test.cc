// The canonical-ABI pieces that need no guest: UTF-8 validation, the handle table's rules,
// and --allow-connect rules.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "wasi_binding/abi/guest_memory.h"
#include "wasi_binding/abi/resource_table.h"
#include "wasi_binding/host/connect_policy.h"

namespace wasi_ktls::wasi {
namespace {

class Thing : public Resource {
 public:
  explicit Thing(int* alive) : alive_(alive) { ++*alive_; }
  ~Thing() override { --*alive_; }
  std::string_view type() const override { return "thing"; }

 private:
  int* alive_;
};

class Other : public Resource {
 public:
  std::string_view type() const override { return "other"; }
};

std::string trap_of(auto&& f) {
  try {
    f();
  } catch (const Trap& t) {
    return t.reason;
  }
  return "";
}

sockaddr_storage v4(const char* a, int port) {
  sockaddr_storage s{};
  auto& in = reinterpret_cast<sockaddr_in&>(s);
  in.sin_family = AF_INET;
  in.sin_port = htons(static_cast<std::uint16_t>(port));
  REQUIRE(inet_pton(AF_INET, a, &in.sin_addr) == 1);
  return s;
}

sockaddr_storage v6(const char* a, int port) {
  sockaddr_storage s{};
  auto& in = reinterpret_cast<sockaddr_in6&>(s);
  in.sin6_family = AF_INET6;
  in.sin6_port = htons(static_cast<std::uint16_t>(port));
  REQUIRE(inet_pton(AF_INET6, a, &in.sin6_addr) == 1);
  return s;
}

}  // namespace

TEST_CASE("UTF-8: well-formed accepted; overlong, surrogate, truncated, > U+10FFFF refused") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("example.com"));
  CHECK(valid_utf8("b\xc3\xbc" "cher.de"));          // ü
  CHECK(valid_utf8("\xe2\x82\xac"));                 // €
  CHECK(valid_utf8("\xf0\x9f\x94\x92"));             // U+1F512
  CHECK_FALSE(valid_utf8("\xff\xfe"));
  CHECK_FALSE(valid_utf8("\xc0\xaf"));               // overlong '/'
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));           // overlong, 3 bytes
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));           // U+D800, a surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));       // U+110000
  CHECK_FALSE(valid_utf8("\xe2\x82"));               // truncated
  CHECK_FALSE(valid_utf8("a\x80" "b"));              // a lone continuation byte
}

TEST_CASE("handle table: 0 never given, slots reused, types and children enforced") {
  int alive = 0;
  {
    ResourceTable t;
    const auto a = t.insert(std::make_unique<Thing>(&alive));
    CHECK(a != 0);
    const auto b = t.insert(std::make_unique<Thing>(&alive), a);  // b is a's child
    CHECK(alive == 2);

    CHECK(trap_of([&] { t.drop(a, "thing", "self"); }).find("still has 1 child") !=
          std::string::npos);
    CHECK(trap_of([&] { (void)t.take<Thing>(a, "thing", "this"); }).find("child") !=
          std::string::npos);
    CHECK(alive == 2);  // a failed drop drops nothing

    CHECK(trap_of([&] { (void)t.get<Other>(b, "other", "self"); }) ==
          fmt::format("self: handle {} is a thing, not a other", b));
    CHECK(trap_of([&] { (void)t.get<Thing>(0, "thing", "self"); }).find("handle 0 is not a live") !=
          std::string::npos);
    CHECK(trap_of([&] { (void)t.get<Thing>(999, "thing", "self"); }).find("handle 999") !=
          std::string::npos);

    t.drop(b, "thing", "self");
    CHECK(alive == 1);
    CHECK(trap_of([&] { t.drop(b, "thing", "self"); }).find("not a live resource") !=
          std::string::npos);  // a double drop
    const auto c = t.insert(std::make_unique<Other>());
    CHECK(c == b);  // the freed slot comes back
    auto owned = t.take<Thing>(a, "thing", "this");  // an own parameter leaves the table
    CHECK(alive == 1);
    CHECK(trap_of([&] { (void)t.get<Thing>(a, "thing", "self"); }) != "");
    owned.reset();
    CHECK(alive == 0);
    (void)t.insert(std::make_unique<Thing>(&alive));
  }
  CHECK(alive == 0);  // the table's end runs every destructor
}

TEST_CASE("--allow-connect: addresses, ranges, ports, any; nothing without a rule") {
  ConnectPolicy none;
  CHECK_FALSE(none.permits(v4("127.0.0.1", 443)));

  ConnectPolicy p;
  REQUIRE(p.allow("127.0.0.1"));
  REQUIRE(p.allow("10.0.0.0/8:5432"));
  REQUIRE(p.allow("[::1]:8443"));
  REQUIRE(p.allow("[2001:db8::]/32"));
  CHECK(p.permits(v4("127.0.0.1", 1)));
  CHECK_FALSE(p.permits(v4("127.0.0.2", 1)));
  CHECK(p.permits(v4("10.200.3.4", 5432)));
  CHECK_FALSE(p.permits(v4("10.200.3.4", 5433)));
  CHECK_FALSE(p.permits(v4("11.0.0.1", 5432)));
  CHECK(p.permits(v6("::1", 8443)));
  CHECK_FALSE(p.permits(v6("::1", 443)));
  CHECK(p.permits(v6("2001:db8:1::5", 1)));
  CHECK_FALSE(p.permits(v6("2001:db9::5", 1)));

  ConnectPolicy port_only;
  REQUIRE(port_only.allow(":443"));
  CHECK(port_only.permits(v6("2001:db9::5", 443)));
  CHECK_FALSE(port_only.permits(v4("1.2.3.4", 80)));

  ConnectPolicy any;
  REQUIRE(any.allow("any"));
  CHECK(any.permits(v4("8.8.8.8", 53)));

  ConnectPolicy named;
  REQUIRE(named.allow("localhost:8443"));
  CHECK(named.permits(v4("127.0.0.1", 8443)));
  CHECK_FALSE(named.permits(v4("127.0.0.1", 8444)));

  ConnectPolicy bad;
  CHECK(bad.allow("10.0.0.0/33").error().message.find("prefix") != std::string::npos);
  CHECK(bad.allow("1.2.3.4:99999").error().message.find("port") != std::string::npos);
  CHECK(bad.allow("[::1").error().message.find("']'") != std::string::npos);
  CHECK(bad.allow("no-such-host.invalid").error().message.find("cannot resolve") !=
        std::string::npos);
  CHECK(bad.empty());
}

}  // namespace wasi_ktls::wasi
