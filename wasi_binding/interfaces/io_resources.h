// The wasi:io resources other interfaces hand out: an error (its text), and a pollable
// (a child of what it watches, or owning a clock deadline).
#pragma once

#include <memory>
#include <string>

#include "wasi_binding/abi/resource_table.h"
#include "wasi_binding/host/host.h"
#include "wasi_binding/streams/pollee.h"
#include "wasi_binding/streams/stream.h"

namespace wasi_ktls::wasi {

class IoError final : public Resource {
 public:
  explicit IoError(std::string m) : message(std::move(m)) {}
  std::string_view type() const override { return "error"; }
  std::string message;
};

class Pollable final : public Resource {
 public:
  // Watches `source`, which outlives it (the table keeps a parent until its children go).
  explicit Pollable(Pollee& source) : source_(&source) {}
  explicit Pollable(std::unique_ptr<Pollee> owned) : owned_(std::move(owned)), source_(owned_.get()) {}
  std::string_view type() const override { return "pollable"; }
  Pollee& source() { return *source_; }

 private:
  std::unique_ptr<Pollee> owned_;
  Pollee* source_;
};

// A pollable for `source`, whose handle is `parent`: the pollable's handle.
std::uint32_t subscribe(Host& h, Pollee& source, std::uint32_t parent);

// Writes a stream-error (variant: last-operation-failed(own error) | closed) at `at`: tag u8,
// then the error handle at at+4.
void store_stream_error(Host& h, std::uint32_t at, const StreamResult& r);

}  // namespace wasi_ktls::wasi
