// One guest instance's handles (the component model's resource table): index 0 is never
// handed out, freed slots are reused, and a handle names exactly one live resource of one
// type. A resource may have a parent (a pollable and the stream it watches, the plaintext
// streams and their client-connection): dropping or giving away a parent while children live
// traps, as in wasmtime. Every misuse (unknown handle, wrong type) is a Trap naming the
// argument.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "wasi_binding/abi/trap.h"

namespace wasi_ktls::wasi {

class Resource {
 public:
  virtual ~Resource() = default;
  // The WIT resource name: "input-stream", "client-connection", ...
  virtual std::string_view type() const = 0;
};

class ResourceTable {
 public:
  // Handles this many resources at most at once: a guest that leaks them traps, it does not
  // exhaust the host.
  static constexpr std::uint32_t kMaxHandles = 1u << 16;

  ResourceTable();
  ~ResourceTable();

  // A new handle for `r`; `parent` (a live handle) or 0.
  std::uint32_t insert(std::unique_ptr<Resource> r, std::uint32_t parent = 0);

  // A borrow: the resource stays in the table.
  template <class T>
  T& get(std::uint32_t handle, std::string_view expected, const char* what) {
    Resource& r = lookup(handle, expected, what);
    auto* t = dynamic_cast<T*>(&r);
    if (t == nullptr) wrong_type(handle, r, expected, what);
    return *t;
  }
  // An own parameter: the resource leaves the table and goes to the caller.
  template <class T>
  std::unique_ptr<T> take(std::uint32_t handle, std::string_view expected, const char* what) {
    T& t = get<T>(handle, expected, what);
    (void)t;
    return std::unique_ptr<T>(static_cast<T*>(remove(handle, what).release()));
  }
  // [resource-drop]: the host's destructor runs.
  void drop(std::uint32_t handle, std::string_view expected, const char* what);

  std::size_t size() const { return live_; }

 private:
  struct Slot {
    std::unique_ptr<Resource> resource;
    std::uint32_t parent = 0;
    std::uint32_t children = 0;
    std::uint32_t next_free = 0;
  };
  Resource& lookup(std::uint32_t handle, std::string_view expected, const char* what);
  [[noreturn]] void wrong_type(std::uint32_t handle, const Resource& r,
                               std::string_view expected, const char* what);
  std::unique_ptr<Resource> remove(std::uint32_t handle, const char* what);

  std::vector<Slot> slots_;
  std::uint32_t free_ = 0;  // head of the free list; 0: none
  std::size_t live_ = 0;
};

}  // namespace wasi_ktls::wasi
