// Feeds the canonical-ABI layer of the wasm host (wasi_binding/abi/) what a hostile guest
// controls: pointers, lengths, strings and handles, against a guest memory of a size the input
// chooses, whose cabi_realloc (played here by the input) returns any address, traps, stops
// the guest, or grows memory so that it moves. Every GuestMemory access either yields bytes
// inside memory (the target then touches each of them: ASan proves none lies outside, or in a
// buffer that moved away) or throws the project's Trap; the ResourceTable is checked against
// a model of which handles live, with which type and how many children, so that every get,
// take and drop traps exactly when the model says the guest misused a handle.
//
// Input: a u32 memory size (modulo 1 MiB + 1), a flags byte (bit 0: the guest exports
// cabi_realloc), then operations: an op byte and its operands (see the switch below).
// fuzz-sources: wasi_binding/abi/guest_memory.cc wasi_binding/abi/resource_table.cc base/result.cc
// fuzz-libs: -lfmt
// fuzz-flags: -max_len=4096
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <sanitizer/asan_interface.h>

#include "fuzz/fuzz_input.h"
#include "wasi_binding/abi/guest_memory.h"
#include "wasi_binding/abi/resource_table.h"

using namespace wasi_ktls;
using wasi::Trap;

namespace {

// The guest as the ABI layer sees it: memory and a cabi_realloc whose every answer is the
// input's.
class FuzzInstance final : public wasm::Instance {
 public:
  FuzzInstance(fuzz::Input& in, std::size_t size, bool has_realloc)
      : in_(in), memory_(size), has_realloc_(has_realloc) {}

  std::span<std::uint8_t> memory() override { return memory_; }
  bool has(wasm::Entry e) const override { return e == wasm::Entry::realloc && has_realloc_; }
  wasm::CallOutcome call(wasm::Entry e, std::span<const std::uint64_t> args) override {
    FUZZ_CHECK(e == wasm::Entry::realloc && has_realloc_ && args.size() == 4,
               "called an entry the guest does not export, or with the wrong arity");
    last_args.assign(args.begin(), args.end());
    wasm::CallOutcome& out = last;
    out = {};
    switch (in_.u8() % 4) {
      case 0:  // grows memory by up to 64 KiB (to 2 MiB): it moves, and the old buffer is freed
        if (memory_.size() < (2u << 20)) {
          std::vector<std::uint8_t> grown(memory_.size() + in_.u16());
          std::copy(memory_.begin(), memory_.end(), grown.begin());
          memory_.swap(grown);
        }
        break;
      case 1:
        out.kind = wasm::CallOutcome::Kind::trapped;
        out.trap = "unreachable";
        return out;
      case 2:
        out.kind = wasm::CallOutcome::Kind::stopped;
        return out;
      default:
        break;
    }
    out.value = in_.u32();
    return out;
  }

  // The latest cabi_realloc call: its arguments and what the guest answered.
  std::vector<std::uint64_t> last_args;
  wasm::CallOutcome last;

 private:
  fuzz::Input& in_;
  std::vector<std::uint8_t> memory_;
  bool has_realloc_;
};

// A span the ABI handed out must lie in live memory: ASan's shadow says so for every byte
// (cheaper than reading each), and its ends are read, so a stale span is reported as a
// use-after-free with the stack that freed it.
void touch(std::span<const std::uint8_t> b) {
  if (b.empty()) return;
  FUZZ_CHECK(__asan_region_is_poisoned(const_cast<std::uint8_t*>(b.data()), b.size()) == nullptr,
             "a span outside live memory");
  volatile std::uint8_t ends = b.front() ^ b.back();
  (void)ends;
}

bool inside(std::span<const std::uint8_t> mem, std::uint64_t ptr, std::uint64_t len) {
  return ptr <= mem.size() && len <= mem.size() - ptr;
}

// Three resource types with parents, as the host's streams and pollables are.
struct Typed : wasi::Resource {
  explicit Typed(std::uint32_t id) : id(id) {}
  std::uint32_t id;
};
struct InputStream final : Typed {
  using Typed::Typed;
  std::string_view type() const override { return "input-stream"; }
};
struct OutputStream final : Typed {
  using Typed::Typed;
  std::string_view type() const override { return "output-stream"; }
};
struct Pollable final : Typed {
  using Typed::Typed;
  std::string_view type() const override { return "pollable"; }
};
constexpr std::string_view kTypes[] = {"input-stream", "output-stream", "pollable"};

std::unique_ptr<Typed> make(unsigned type, std::uint32_t id) {
  switch (type) {
    case 0: return std::make_unique<InputStream>(id);
    case 1: return std::make_unique<OutputStream>(id);
    default: return std::make_unique<Pollable>(id);
  }
}

struct Live {
  unsigned type;
  std::uint32_t id;
  std::uint32_t parent;
  std::uint32_t children = 0;
};

// Runs `f`; true if it trapped. Stopped (the guest's cabi_realloc stopped it) counts as a trap.
template <class F>
bool traps(F&& f) {
  try {
    f();
    return false;
  } catch (const Trap& t) {
    FUZZ_CHECK(!t.reason.empty(), "a trap without a reason");
    return true;
  } catch (const wasi::Stopped&) {
    return true;
  }
}

// A borrow or an own of handle `h` typed as `type`, through the table's templates.
template <class T>
void use(wasi::ResourceTable& table, std::uint32_t h, bool own, std::uint32_t want_id) {
  const std::string_view name = T(0).type();
  if (own) {
    const std::unique_ptr<T> r = table.take<T>(h, name, "take");
    FUZZ_CHECK(r && r->id == want_id, "take returned another resource");
  } else {
    FUZZ_CHECK(table.get<T>(h, name, "get").id == want_id, "get returned another resource");
  }
}

void memory_op(std::uint8_t op, fuzz::Input& in, wasi::GuestMemory& gm, FuzzInstance& inst) {
  static constexpr std::uint32_t kAligns[] = {1, 2, 4, 8};
  switch (op) {
    case 0: {  // a list or buffer argument
      const std::uint32_t ptr = in.u32();
      const std::uint64_t len = in.u64();
      const bool ok = inside(inst.memory(), ptr, len);
      std::span<std::uint8_t> b;
      FUZZ_CHECK(traps([&] { b = gm.bytes(ptr, len, "bytes"); }) != ok, "bytes: wrong verdict");
      if (ok) {
        FUZZ_CHECK(b.data() == inst.memory().data() + ptr && b.size() == len, "bytes: wrong span");
        touch(b);
      }
      break;
    }
    case 1: {  // a string argument
      const std::uint32_t ptr = in.u32();
      const std::uint32_t len = in.u32();
      std::string_view s;
      const bool trapped = traps([&] { s = gm.string(ptr, len, "string"); });
      FUZZ_CHECK(trapped || inside(inst.memory(), ptr, len), "string: out of memory");
      if (!trapped) {
        FUZZ_CHECK(wasi::valid_utf8(s), "string: invalid UTF-8 accepted");
        touch({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
      }
      break;
    }
    case 2: {  // a return area
      const std::uint32_t ptr = in.u32();
      const std::uint32_t size = in.u16();
      const std::uint32_t align = kAligns[in.u8() % 4];
      const bool ok = ptr % align == 0 && inside(inst.memory(), ptr, size);
      FUZZ_CHECK(traps([&] { FUZZ_CHECK(gm.return_area(ptr, size, align, "ret") == ptr, "moved"); }) != ok,
                 "return_area: wrong verdict");
      break;
    }
    case 3: {  // loads and stores of each width
      const std::uint32_t ptr = in.u32();
      const unsigned width = 1u << (in.u8() % 4);
      const std::uint64_t v = in.u64();
      const bool fits = inside(inst.memory(), ptr, width);
      const bool aligned = ptr % width == 0;
      bool loaded = !traps([&] {
        switch (width) {
          case 1: (void)gm.load<std::uint8_t>(ptr, "load"); break;
          case 2: (void)gm.load<std::uint16_t>(ptr, "load"); break;
          case 4: (void)gm.load<std::uint32_t>(ptr, "load"); break;
          default: (void)gm.load<std::uint64_t>(ptr, "load"); break;
        }
      });
      FUZZ_CHECK(loaded == (fits && aligned), "load: wrong verdict");
      const bool stored = !traps([&] {
        switch (width) {
          case 1: gm.store<std::uint8_t>(ptr, static_cast<std::uint8_t>(v)); break;
          case 2: gm.store<std::uint16_t>(ptr, static_cast<std::uint16_t>(v)); break;
          case 4: gm.store<std::uint32_t>(ptr, static_cast<std::uint32_t>(v)); break;
          default: gm.store<std::uint64_t>(ptr, v); break;
        }
      });
      FUZZ_CHECK(stored == fits, "store: wrong verdict");
      if (stored) FUZZ_CHECK(std::memcmp(inst.memory().data() + ptr, &v, width) == 0, "store: lost");
      break;
    }
    case 4: {  // cabi_realloc, fresh or resizing
      const bool fresh = in.u8() & 1;
      const std::uint32_t align = kAligns[in.u8() % 4];
      const std::uint32_t old_ptr = fresh ? 0 : in.u32();
      const std::uint32_t old_size = fresh ? 0 : in.u32();
      const std::uint32_t size = in.u32();
      std::uint32_t at = 0;
      inst.last = {};
      inst.last_args.clear();
      const bool trapped = traps([&] {
        at = fresh ? gm.allocate(align, size, "allocate")
                   : gm.reallocate(old_ptr, old_size, align, size, "reallocate");
      });
      const bool ok = inst.has(wasm::Entry::realloc) &&
                      inst.last.kind == wasm::CallOutcome::Kind::returned &&
                      inst.last.value % align == 0 && inside(inst.memory(), inst.last.value, size);
      FUZZ_CHECK(trapped != ok, "realloc: wrong verdict");
      if (inst.has(wasm::Entry::realloc))
        FUZZ_CHECK((inst.last_args == std::vector<std::uint64_t>{old_ptr, old_size, align, size}),
                   "realloc: the guest got other arguments");
      if (!trapped) {
        FUZZ_CHECK(at == inst.last.value, "realloc: another address than the guest's");
        FUZZ_CHECK(at % align == 0 && inside(inst.memory(), at, size), "realloc: bad result accepted");
        touch(inst.memory().subspan(at, size));
      }
      break;
    }
    case 5: {  // a list<u8> returned to the guest
      const auto data = in.bytes(in.u16());
      const std::uint32_t align = kAligns[in.u8() % 4];
      std::uint32_t at = 0;
      if (!traps([&] { at = gm.copy_out(data, align, "copy_out"); })) {
        FUZZ_CHECK(at % align == 0 && inside(inst.memory(), at, data.size()), "copy_out: outside");
        FUZZ_CHECK(data.empty() || std::memcmp(inst.memory().data() + at, data.data(), data.size()) == 0,
                   "copy_out: bytes differ");
      }
      break;
    }
  }
}

// What the table should hold: by handle (dense, as the table hands them out), the resource
// that lives there, if any.
struct Model {
  std::vector<std::optional<Live>> slots{std::nullopt};  // handle 0: never a resource
  std::size_t live = 0;
  std::uint32_t next_id = 1;

  Live* find(std::uint32_t h) { return h < slots.size() && slots[h] ? &*slots[h] : nullptr; }
  void add(std::uint32_t h, Live l) {
    if (h >= slots.size()) slots.resize(h + 1);
    if (l.parent != 0) ++find(l.parent)->children;
    slots[h] = l;
    ++live;
  }
  void remove(std::uint32_t h) {
    if (const std::uint32_t p = slots[h]->parent; p != 0) --find(p)->children;
    slots[h].reset();
    --live;
  }
};

void table_op(std::uint8_t op, fuzz::Input& in, wasi::ResourceTable& table, Model& model) {
  // A handle: mostly one the table has handed out (live or dropped), sometimes any number.
  const auto pick = [&]() -> std::uint32_t {
    const std::uint8_t how = in.u8();
    if (how >= 0xf0 || model.slots.size() == 1) return in.u32();
    return 1 + (std::uint32_t{how} << 8 | in.u8()) % (model.slots.size() - 1);
  };
  switch (op) {
    case 0: {  // insert, with a live parent or none
      const unsigned type = in.u8() % 3;
      std::uint32_t parent = in.u8() & 1 ? pick() : 0;
      if (!model.find(parent)) parent = 0;  // the host passes live handles only
      const std::uint32_t id = model.next_id++;
      std::uint32_t h = 0;
      const bool full = table.size() == wasi::ResourceTable::kMaxHandles;
      const bool trapped = traps([&] { h = table.insert(make(type, id), parent); });
      FUZZ_CHECK(trapped == full, "insert: traps other than when the table is full");
      if (trapped) break;
      FUZZ_CHECK(h != 0 && !model.find(h), "insert: handle 0 or a live handle reused");
      model.add(h, Live{type, id, parent});
      break;
    }
    case 1:    // get
    case 2:    // take
    case 3: {  // drop
      const std::uint32_t h = pick();
      const unsigned type = in.u8() % 3;
      const Live* l = model.find(h);
      const bool typed = l && l->type == type;
      const bool ok = typed && (op == 1 || l->children == 0);
      const std::uint32_t want = typed ? l->id : 0;
      const bool trapped = traps([&] {
        if (op == 3) return table.drop(h, kTypes[type], "drop");
        switch (type) {
          case 0: return use<InputStream>(table, h, op == 2, want);
          case 1: return use<OutputStream>(table, h, op == 2, want);
          default: return use<Pollable>(table, h, op == 2, want);
        }
      });
      FUZZ_CHECK(trapped != ok, "get/take/drop: wrong verdict");
      if (ok && op != 1) model.remove(h);
      break;
    }
    case 4: {  // fills the table to kMaxHandles (only after the bytes "FULL": it takes a while)
      if (in.text(4) != "FULL") break;
      while (table.size() < wasi::ResourceTable::kMaxHandles) {
        const std::uint32_t id = model.next_id++;
        model.add(table.insert(make(2, id)), Live{2, id, 0});
      }
      break;
    }
  }
  FUZZ_CHECK(table.size() == model.live, "size() differs from the live handles");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::size_t mem_size = in.u32() % ((1u << 20) + 1);
  const bool has_realloc = in.u8() & 1;
  FuzzInstance inst(in, mem_size, has_realloc);
  wasi::GuestMemory gm(inst);
  Model model;
  {
    wasi::ResourceTable table;
    while (!in.empty()) {
      const std::uint8_t op = in.u8();
      if (op < 0x80)
        memory_op(op % 6, in, gm, inst);
      else if (op < 0xff)
        table_op(op % 4, in, table, model);
      else
        table_op(4, in, table, model);
    }
  }  // the table's teardown drops children before their parents, whatever is left
  return 0;
}
