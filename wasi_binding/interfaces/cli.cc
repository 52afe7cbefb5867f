// wasi:cli/{environment,exit,stdin,stdout,stderr} (0.2.x): the guest's argv and environment
// as the embedder gave them, its exit status, and the process's stdio as streams.
#include <cstring>

#include "wasi_binding/interfaces/interfaces.h"
#include "wasi_binding/streams/stdio_streams.h"

namespace wasi_ktls::wasi {
namespace {

std::uint32_t copy_string(GuestMemory& m, const std::string& s) {
  return m.copy_out(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()), 1,
                    "a string");
}

// list<string>: 8 bytes (ptr, len) per element, align 4.
void store_strings(Host& h, std::uint32_t at, const std::vector<std::string>& v) {
  GuestMemory& m = h.memory();
  const std::uint32_t list = m.allocate(4, static_cast<std::uint32_t>(v.size() * 8), "the list");
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint32_t p = copy_string(m, v[i]);
    m.store<std::uint32_t>(list + 8 * i, p);
    m.store<std::uint32_t>(list + 8 * i + 4, static_cast<std::uint32_t>(v[i].size()));
  }
  m.store<std::uint32_t>(at, list);
  m.store<std::uint32_t>(at + 4, static_cast<std::uint32_t>(v.size()));
}

void get_arguments(Host& h, std::uint32_t ret) {
  store_strings(h, h.memory().return_area(ret, 8, 4, "return area"), h.config().args);
}

// list<tuple<string, string>>: 16 bytes per element, align 4.
void get_environment(Host& h, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 8, 4, "return area");
  const auto& env = h.config().env;
  const std::uint32_t list = m.allocate(4, static_cast<std::uint32_t>(env.size() * 16), "the list");
  for (std::size_t i = 0; i < env.size(); ++i) {
    const std::string& kv = env[i];
    const auto eq = kv.find('=');
    const std::string k = kv.substr(0, eq);
    const std::string v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    const std::uint32_t kp = copy_string(m, k);
    const std::uint32_t vp = copy_string(m, v);
    m.store<std::uint32_t>(list + 16 * i, kp);
    m.store<std::uint32_t>(list + 16 * i + 4, static_cast<std::uint32_t>(k.size()));
    m.store<std::uint32_t>(list + 16 * i + 8, vp);
    m.store<std::uint32_t>(list + 16 * i + 12, static_cast<std::uint32_t>(v.size()));
  }
  m.store<std::uint32_t>(at, list);
  m.store<std::uint32_t>(at + 4, static_cast<std::uint32_t>(env.size()));
}

void initial_cwd(Host& h, std::uint32_t ret) {
  h.memory().store<std::uint8_t>(h.memory().return_area(ret, 12, 4, "return area"), 0);  // none
}

void exit_with(Host&, std::uint32_t status) {
  if (status > 1) trap("status: result tag {} (0 ok, 1 err)", status);
  throw Exit{static_cast<int>(status)};
}

std::uint32_t get_stdin(Host& h) { return h.table().insert(std::make_unique<StdinStream>()); }
std::uint32_t get_stdout(Host& h) { return h.table().insert(std::make_unique<StdioOutput>(1)); }
std::uint32_t get_stderr(Host& h) { return h.table().insert(std::make_unique<StdioOutput>(2)); }

}  // namespace

std::vector<Import> cli_imports() {
  return {
      def<"wasi:cli/environment@0.2", "get-environment", &get_environment>(),
      def<"wasi:cli/environment@0.2", "get-arguments", &get_arguments>(),
      def<"wasi:cli/environment@0.2", "initial-cwd", &initial_cwd>(),
      def<"wasi:cli/exit@0.2", "exit", &exit_with>(),
      def<"wasi:cli/stdin@0.2", "get-stdin", &get_stdin>(),
      def<"wasi:cli/stdout@0.2", "get-stdout", &get_stdout>(),
      def<"wasi:cli/stderr@0.2", "get-stderr", &get_stderr>(),
  };
}

}  // namespace wasi_ktls::wasi
