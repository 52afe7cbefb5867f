// The host's imports, as the engine resolves them: each WASI function is an ordinary C++
// function `R f(Host&, u32/u64 args...)`, registered with its interface and field name; its
// core wasm type is derived from the C++ signature, so the two cannot disagree. The thunk
// below is the one place where a Trap or an Exit thrown by a host function is caught and
// turned into "stop the guest".
//
// Versions: an interface registered as "wasi:io/streams@0.2" answers every 0.2.x the
// toolchains emit (wasi-libc @0.2.0, wasi-tls @0.2.6, wasmtime @0.2.12, ...); other names
// match exactly ("wasi:tls/types@0.2.0-draft", "wasi_snapshot_preview1").
#pragma once

#include <algorithm>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "wasi_binding/abi/trap.h"
#include "wasi_binding/engine/engine.h"
#include "wasi_binding/host/host.h"

namespace wasi_ktls::wasi {

template <std::size_t N>
struct Name {
  char s[N];
  constexpr Name(const char (&v)[N]) { std::copy_n(v, N, s); }  // NOLINT: implicit on purpose
};

struct Import {
  std::string_view module;
  std::string_view name;
  wasm::HostFunction fn;
};

namespace detail {

template <class T>
constexpr wasm::ValType val_type() {
  static_assert(std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::uint64_t>,
                "host functions take and return u32 (i32) or u64 (i64)");
  return std::is_same_v<T, std::uint32_t> ? wasm::ValType::i32 : wasm::ValType::i64;
}

template <class F>
struct Signature;
template <class R, class... A>
struct Signature<R (*)(Host&, A...)> {
  static wasm::FuncType type() {
    wasm::FuncType t;
    (t.params.push_back(val_type<A>()), ...);
    if constexpr (!std::is_void_v<R>) t.results.push_back(val_type<R>());
    return t;
  }
  template <auto Fn, std::size_t... I>
  static void invoke(Host& h, const std::uint64_t* args, std::uint64_t* result,
                     std::index_sequence<I...>) {
    if constexpr (std::is_void_v<R>) {
      Fn(h, static_cast<A>(args[I])...);
    } else {
      *result = static_cast<std::uint64_t>(Fn(h, static_cast<A>(args[I])...));
    }
  }
  template <auto Fn>
  static void call(Host& h, const std::uint64_t* args, std::uint64_t* result) {
    invoke<Fn>(h, args, result, std::index_sequence_for<A...>{});
  }
};

template <Name M, Name F, auto Fn>
bool thunk(void* host, const std::uint64_t* args, std::uint64_t* result) {
  Host& h = *static_cast<Host*>(host);
  try {
    Signature<decltype(Fn)>::template call<Fn>(h, args, result);
    return true;
  } catch (const Trap& t) {
    h.stop_with_trap(std::string(M.s) + " " + F.s + ": " + t.reason);
  } catch (const Exit& e) {
    h.stop_with_exit(e.status);
  } catch (const Stopped&) {
    // A nested call into the guest stopped it; the reason is recorded.
  } catch (const std::bad_alloc&) {
    h.stop_with_trap(std::string(M.s) + " " + F.s + ": the host ran out of memory");
  }
  return false;
}

}  // namespace detail

template <Name M, Name F, auto Fn>
Import def() {
  return Import{M.s, F.s,
                wasm::HostFunction{detail::Signature<decltype(Fn)>::type(),
                                   &detail::thunk<M, F, Fn>}};
}

class ImportTable final : public wasm::ImportResolver {
 public:
  void add(const std::vector<Import>& imports);
  const wasm::HostFunction* find(std::string_view module, std::string_view name) const override;

 private:
  std::unordered_map<std::string, wasm::HostFunction> map_;  // "module\nname"
};

// Every interface this host provides (interfaces/*.cc).
const ImportTable& host_imports();

}  // namespace wasi_ktls::wasi
