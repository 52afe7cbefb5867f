// wasi:io/error, wasi:io/poll and wasi:io/streams (0.2.x): the canonical ABI lowering of
// each call, over the stream and pollable interfaces of streams/.
#include <algorithm>
#include <cstring>
#include <array>
#include <vector>

#include "wasi_binding/interfaces/interfaces.h"
#include "wasi_binding/interfaces/io_resources.h"

namespace wasi_ktls::wasi {

std::uint32_t subscribe(Host& h, Pollee& source, std::uint32_t parent) {
  return h.table().insert(std::make_unique<Pollable>(source), parent);
}

void store_stream_error(Host& h, std::uint32_t at, const StreamResult& r) {
  GuestMemory& m = h.memory();
  if (r.kind == StreamResult::Kind::closed) {
    m.store<std::uint8_t>(at, 1);
    m.store<std::uint32_t>(at + 4, 0);
    return;
  }
  const std::uint32_t err = h.table().insert(std::make_unique<IoError>(r.error));
  m.store<std::uint8_t>(at, 0);
  m.store<std::uint32_t>(at + 4, err);
}

namespace {

constexpr std::uint64_t kMaxRead = 4 << 20;        // one read's list, at most
constexpr std::uint64_t kMaxBlockingWrite = 4096;  // the WIT's limit for blocking-write-and-flush

InputStream& input(Host& h, std::uint32_t self) {
  return h.table().get<InputStream>(self, "input-stream", "self");
}
OutputStream& output(Host& h, std::uint32_t self) {
  return h.table().get<OutputStream>(self, "output-stream", "self");
}

// ---- wasi:io/error ---------------------------------------------------------------------------

void error_to_debug_string(Host& h, std::uint32_t self, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 8, 4, "return area");
  const std::string& text = h.table().get<IoError>(self, "error", "self").message;
  const std::uint32_t ptr = m.copy_out(
      std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), 1, "the string");
  m.store<std::uint32_t>(at, ptr);
  m.store<std::uint32_t>(at + 4, static_cast<std::uint32_t>(text.size()));
}

void error_drop(Host& h, std::uint32_t self) { h.table().drop(self, "error", "self"); }

// ---- wasi:io/poll ----------------------------------------------------------------------------

std::uint32_t pollable_ready(Host& h, std::uint32_t self) {
  return h.table().get<Pollable>(self, "pollable", "self").source().ready() ? 1 : 0;
}

void pollable_block(Host& h, std::uint32_t self) {
  h.block_on(h.table().get<Pollable>(self, "pollable", "self").source());
}

void pollable_drop(Host& h, std::uint32_t self) { h.table().drop(self, "pollable", "self"); }

void poll_list(Host& h, std::uint32_t list, std::uint32_t len, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 8, 4, "return area");
  if (len == 0) trap("in: the list of pollables is empty (the call would wait forever)");
  if (list % 4 != 0) trap("in: list address {} is not 4-byte aligned", list);
  const auto bytes = m.bytes(list, std::uint64_t{len} * 4, "in");
  std::vector<Pollee*> sources(len);
  for (std::uint32_t i = 0; i < len; ++i) {
    std::uint32_t handle;
    std::memcpy(&handle, bytes.data() + 4 * i, 4);
    sources[i] = &h.table().get<Pollable>(handle, "pollable", "in").source();
  }
  const std::vector<std::uint32_t> ready = h.poll(sources);
  const std::uint32_t out = m.copy_out(
      std::span(reinterpret_cast<const std::uint8_t*>(ready.data()), ready.size() * 4), 4,
      "the result list");
  m.store<std::uint32_t>(at, out);
  m.store<std::uint32_t>(at + 4, static_cast<std::uint32_t>(ready.size()));
}

// ---- wasi:io/streams: input ------------------------------------------------------------------

// read and blocking-read: the guest's buffer comes from its cabi_realloc and the stream
// reads straight into it; it is shrunk when fewer bytes came.
void read_impl(Host& h, std::uint32_t self, std::uint64_t len, std::uint32_t ret, bool blocking) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 12, 4, "return area");
  InputStream& s = input(h, self);
  const auto want = static_cast<std::uint32_t>(std::min(len, kMaxRead));
  auto nothing_yet = [&] {  // ok, an empty list
    m.store<std::uint8_t>(at, 0);
    m.store<std::uint32_t>(at + 4, m.allocate(1, 0, "the list"));
    m.store<std::uint32_t>(at + 8, 0);
  };
  for (;;) {
    if (blocking && want > 0) h.block_on(s);
    if (want == 0 || !s.ready()) return nothing_yet();
    if (StreamResult end = s.read({}); !end.is_ok()) {  // the end is known: nothing to allocate
      m.store<std::uint8_t>(at, 1);
      return store_stream_error(h, at + 4, end);
    }
    std::uint32_t ptr = m.allocate(1, want, "the list");
    const StreamResult r = s.read(m.bytes(ptr, want, "the list"));
    if (!r.is_ok() || r.n == 0) {
      (void)m.reallocate(ptr, want, 1, 0, "the list");
      if (!r.is_ok()) {
        m.store<std::uint8_t>(at, 1);
        return store_stream_error(h, at + 4, r);
      }
      if (blocking) continue;  // ready, yet no bytes came (stdin shared with another reader)
      return nothing_yet();
    }
    const auto n = static_cast<std::uint32_t>(r.n);
    if (n < want) ptr = m.reallocate(ptr, want, 1, n, "the list");
    m.store<std::uint8_t>(at, 0);
    m.store<std::uint32_t>(at + 4, ptr);
    m.store<std::uint32_t>(at + 8, n);
    return;
  }
}

void input_read(Host& h, std::uint32_t self, std::uint64_t len, std::uint32_t ret) {
  read_impl(h, self, len, ret, false);
}
void input_blocking_read(Host& h, std::uint32_t self, std::uint64_t len, std::uint32_t ret) {
  read_impl(h, self, len, ret, true);
}

// u64 results (skip, check-write, splice): 16/8, tag@0, ok u64@8, err stream-error@8.
void store_u64_result(Host& h, std::uint32_t at, const StreamResult& r) {
  GuestMemory& m = h.memory();
  if (r.is_ok()) {
    m.store<std::uint8_t>(at, 0);
    m.store<std::uint64_t>(at + 8, r.n);
  } else {
    m.store<std::uint8_t>(at, 1);
    store_stream_error(h, at + 8, r);
  }
}

void skip_impl(Host& h, std::uint32_t self, std::uint64_t len, std::uint32_t ret, bool blocking) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 16, 8, "return area");
  InputStream& s = input(h, self);
  std::array<std::uint8_t, 16384> scratch;
  const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(len, scratch.size()));
  for (;;) {
    if (blocking && want > 0) h.block_on(s);
    const StreamResult r = want == 0 ? StreamResult::ok_n(0) : s.read(std::span(scratch).first(want));
    if (blocking && r.is_ok() && r.n == 0 && want > 0) continue;
    return store_u64_result(h, at, r);
  }
}

void input_skip(Host& h, std::uint32_t self, std::uint64_t len, std::uint32_t ret) {
  skip_impl(h, self, len, ret, false);
}
void input_blocking_skip(Host& h, std::uint32_t self, std::uint64_t len, std::uint32_t ret) {
  skip_impl(h, self, len, ret, true);
}

std::uint32_t input_subscribe(Host& h, std::uint32_t self) {
  return subscribe(h, input(h, self), self);
}

void input_drop(Host& h, std::uint32_t self) { h.table().drop(self, "input-stream", "self"); }

// ---- wasi:io/streams: output -----------------------------------------------------------------

void store_write_result(Host& h, std::uint32_t at, const StreamResult& r) {
  GuestMemory& m = h.memory();
  if (r.is_ok()) {
    m.store<std::uint8_t>(at, 0);
  } else {
    m.store<std::uint8_t>(at, 1);
    store_stream_error(h, at + 4, r);
  }
}

void output_check_write(Host& h, std::uint32_t self, std::uint32_t ret) {
  const std::uint32_t at = h.memory().return_area(ret, 16, 8, "return area");
  OutputStream& s = output(h, self);
  const StreamResult r = s.check_write();
  s.permit = r.is_ok() ? r.n : 0;
  store_u64_result(h, at, r);
}

StreamResult write_checked(OutputStream& s, std::span<const std::uint8_t> data) {
  if (data.size() > s.permit)
    trap("contents: {} bytes is more than the {} check-write permitted", data.size(), s.permit);
  s.permit -= data.size();
  return s.write(data);
}

void output_write(Host& h, std::uint32_t self, std::uint32_t ptr, std::uint32_t len,
                  std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 12, 4, "return area");
  OutputStream& s = output(h, self);
  store_write_result(h, at, write_checked(s, m.bytes(ptr, len, "contents")));
}

// Writes `data` whole, waiting for permits, then waits until it is flushed.
StreamResult write_and_flush(Host& h, OutputStream& s, std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    StreamResult p = s.check_write();
    if (!p.is_ok()) return p;
    if (p.n == 0) {
      h.block_on(s);
      continue;
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(p.n, data.size()));
    if (StreamResult w = s.write(data.first(n)); !w.is_ok()) return w;
    data = data.subspan(n);
  }
  if (StreamResult f = s.flush(); !f.is_ok()) return f;
  while (!s.flushed()) h.block_on(s);
  StreamResult p = s.check_write();
  return p.kind == StreamResult::Kind::failed ? p : StreamResult::ok_n(0);
}

void output_blocking_write_and_flush(Host& h, std::uint32_t self, std::uint32_t ptr,
                                     std::uint32_t len, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 12, 4, "return area");
  OutputStream& s = output(h, self);
  if (len > kMaxBlockingWrite)
    trap("contents: {} bytes; blocking-write-and-flush takes at most {}", len, kMaxBlockingWrite);
  // No call into the guest happens while waiting: the span into its memory stays valid.
  const auto data = m.bytes(ptr, len, "contents");
  store_write_result(h, at, write_and_flush(h, s, data));
}

void output_flush(Host& h, std::uint32_t self, std::uint32_t ret) {
  const std::uint32_t at = h.memory().return_area(ret, 12, 4, "return area");
  store_write_result(h, at, output(h, self).flush());
}

void output_blocking_flush(Host& h, std::uint32_t self, std::uint32_t ret) {
  const std::uint32_t at = h.memory().return_area(ret, 12, 4, "return area");
  OutputStream& s = output(h, self);
  store_write_result(h, at, write_and_flush(h, s, {}));
}

void output_write_zeroes(Host& h, std::uint32_t self, std::uint64_t len, std::uint32_t ret) {
  const std::uint32_t at = h.memory().return_area(ret, 12, 4, "return area");
  OutputStream& s = output(h, self);
  if (len > s.permit) trap("len: {} zeroes is more than the {} check-write permitted", len, s.permit);
  const std::vector<std::uint8_t> zeroes(static_cast<std::size_t>(len));
  store_write_result(h, at, write_checked(s, zeroes));
}

void output_blocking_write_zeroes_and_flush(Host& h, std::uint32_t self, std::uint64_t len,
                                            std::uint32_t ret) {
  const std::uint32_t at = h.memory().return_area(ret, 12, 4, "return area");
  OutputStream& s = output(h, self);
  if (len > kMaxBlockingWrite)
    trap("len: {} zeroes; blocking-write-zeroes-and-flush takes at most {}", len, kMaxBlockingWrite);
  const std::vector<std::uint8_t> zeroes(static_cast<std::size_t>(len));
  store_write_result(h, at, write_and_flush(h, s, zeroes));
}

void splice_impl(Host& h, std::uint32_t self, std::uint32_t src, std::uint64_t len,
                 std::uint32_t ret, bool blocking) {
  const std::uint32_t at = h.memory().return_area(ret, 16, 8, "return area");
  OutputStream& out = output(h, self);
  InputStream& in = h.table().get<InputStream>(src, "input-stream", "src");
  std::array<std::uint8_t, 65536> buf;
  for (;;) {
    StreamResult p = out.check_write();
    if (!p.is_ok()) return store_u64_result(h, at, p);
    if (blocking && p.n == 0 && len > 0) {
      h.block_on(out);
      continue;
    }
    if (blocking && len > 0 && !in.ready()) {
      h.block_on(in);
      continue;
    }
    const auto n = static_cast<std::size_t>(std::min({len, p.n, std::uint64_t{buf.size()}}));
    if (n == 0) return store_u64_result(h, at, StreamResult::ok_n(0));
    StreamResult r = in.read(std::span(buf).first(n));
    if (!r.is_ok()) return store_u64_result(h, at, r);
    if (r.n == 0 && blocking) continue;
    if (r.n > 0) {
      if (StreamResult w = out.write(std::span(buf).first(static_cast<std::size_t>(r.n)));
          !w.is_ok())
        return store_u64_result(h, at, w);
    }
    return store_u64_result(h, at, r);
  }
}

void output_splice(Host& h, std::uint32_t self, std::uint32_t src, std::uint64_t len,
                   std::uint32_t ret) {
  splice_impl(h, self, src, len, ret, false);
}
void output_blocking_splice(Host& h, std::uint32_t self, std::uint32_t src, std::uint64_t len,
                            std::uint32_t ret) {
  splice_impl(h, self, src, len, ret, true);
}

std::uint32_t output_subscribe(Host& h, std::uint32_t self) {
  return subscribe(h, output(h, self), self);
}

void output_drop(Host& h, std::uint32_t self) { h.table().drop(self, "output-stream", "self"); }

}  // namespace

std::vector<Import> io_imports() {
  return {
      def<"wasi:io/error@0.2", "[method]error.to-debug-string", &error_to_debug_string>(),
      def<"wasi:io/error@0.2", "[resource-drop]error", &error_drop>(),
      def<"wasi:io/poll@0.2", "[method]pollable.ready", &pollable_ready>(),
      def<"wasi:io/poll@0.2", "[method]pollable.block", &pollable_block>(),
      def<"wasi:io/poll@0.2", "[resource-drop]pollable", &pollable_drop>(),
      def<"wasi:io/poll@0.2", "poll", &poll_list>(),
      def<"wasi:io/streams@0.2", "[method]input-stream.read", &input_read>(),
      def<"wasi:io/streams@0.2", "[method]input-stream.blocking-read", &input_blocking_read>(),
      def<"wasi:io/streams@0.2", "[method]input-stream.skip", &input_skip>(),
      def<"wasi:io/streams@0.2", "[method]input-stream.blocking-skip", &input_blocking_skip>(),
      def<"wasi:io/streams@0.2", "[method]input-stream.subscribe", &input_subscribe>(),
      def<"wasi:io/streams@0.2", "[resource-drop]input-stream", &input_drop>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.check-write", &output_check_write>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.write", &output_write>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.blocking-write-and-flush",
          &output_blocking_write_and_flush>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.flush", &output_flush>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.blocking-flush", &output_blocking_flush>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.write-zeroes", &output_write_zeroes>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.blocking-write-zeroes-and-flush",
          &output_blocking_write_zeroes_and_flush>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.splice", &output_splice>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.blocking-splice", &output_blocking_splice>(),
      def<"wasi:io/streams@0.2", "[method]output-stream.subscribe", &output_subscribe>(),
      def<"wasi:io/streams@0.2", "[resource-drop]output-stream", &output_drop>(),
  };
}

}  // namespace wasi_ktls::wasi
