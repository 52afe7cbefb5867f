#include "wasi_binding/abi/resource_table.h"

namespace wasi_ktls::wasi {

ResourceTable::ResourceTable() { slots_.emplace_back(); }  // handle 0: never a resource

ResourceTable::~ResourceTable() {
  // Children first (reverse order of creation is not enough: slots are reused), so a
  // resource never outlives what it points into.
  bool progress = true;
  while (live_ > 0 && progress) {
    progress = false;
    for (std::uint32_t h = 1; h < slots_.size(); ++h) {
      Slot& s = slots_[h];
      if (s.resource && s.children == 0) {
        (void)remove(h, "teardown");
        progress = true;
      }
    }
  }
}

std::uint32_t ResourceTable::insert(std::unique_ptr<Resource> r, std::uint32_t parent) {
  std::uint32_t h;
  if (free_ != 0) {
    h = free_;
    free_ = slots_[h].next_free;
  } else {
    if (slots_.size() > kMaxHandles)
      trap("the guest holds {} handles at once, the most this host allows", kMaxHandles);
    h = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[h];
  s.resource = std::move(r);
  s.parent = parent;
  s.children = 0;
  s.next_free = 0;
  if (parent != 0) ++slots_[parent].children;
  ++live_;
  return h;
}

Resource& ResourceTable::lookup(std::uint32_t handle, std::string_view expected,
                                const char* what) {
  if (handle == 0 || handle >= slots_.size() || !slots_[handle].resource)
    trap("{}: handle {} is not a live resource (expected {})", what, handle, expected);
  return *slots_[handle].resource;
}

void ResourceTable::wrong_type(std::uint32_t handle, const Resource& r,
                               std::string_view expected, const char* what) {
  trap("{}: handle {} is a {}, not a {}", what, handle, r.type(), expected);
}

std::unique_ptr<Resource> ResourceTable::remove(std::uint32_t handle, const char* what) {
  Slot& s = slots_[handle];
  if (s.children != 0)
    trap("{}: {} {} still has {} child resource(s) (drop its pollables and streams first)",
         what, s.resource->type(), handle, s.children);
  std::unique_ptr<Resource> r = std::move(s.resource);
  if (s.parent != 0) --slots_[s.parent].children;
  s.parent = 0;
  s.next_free = free_;
  free_ = handle;
  --live_;
  return r;
}

void ResourceTable::drop(std::uint32_t handle, std::string_view expected, const char* what) {
  Resource& r = lookup(handle, expected, what);
  if (r.type() != expected) wrong_type(handle, r, expected, what);
  std::unique_ptr<Resource> gone = remove(handle, what);
}

}  // namespace wasi_ktls::wasi
