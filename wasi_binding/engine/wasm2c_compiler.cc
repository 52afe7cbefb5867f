#include "wasi_binding/engine/wasm2c_compiler.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "wasi_binding/engine/subprocess.h"
#include "wasi_binding/engine/wasm2c_glue.h"

namespace wasi_ktls::wasm {
namespace {

// wasm2c -n: the prefix of every name in the generated code (Z_guest_instantiate, ...).
constexpr std::string_view kModuleName = "guest";

// Part of every cache key, with the flags and the glue's text: bump it when anything else
// about the build changes meaning.
constexpr std::string_view kAbi = "wasi-ktls wasm2c engine 1";

// The C compiler's flags besides the inputs and output.
//  -O1: measured on a 212 KB guest (README): cc takes 2.8 s at -O0, 6.5 s at -O1, 10.9 s at
//       -O2; -O1 code runs 4x faster than -O0's, -O2's another 20-25% faster. A compile is
//       paid on every start where the cache is not writable, so the middle.
//  -DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0: explicit bounds checks and call-depth counting, so
//       no SIGSEGV handler is installed in the host process (and ASan keeps its own).
//  -fvisibility=hidden: wasm-rt's globals and the guest's functions stay private to each
//       library, so two loaded modules never bind to each other's copies.
//  -Wl,-z,defs: a glue name that differs from wasm2c's fails the link, not the dlopen.
//  -w: the generated code is not ours to lint.
const std::vector<std::string>& flags() {
  static const std::vector<std::string> f = {"-O1",
                                             "-shared",
                                             "-fPIC",
                                             "-w",
                                             "-fvisibility=hidden",
                                             "-DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0",
                                             "-pthread",
                                             "-Wl,-z,defs"};
  return f;
}

// The file `program` names: as given when it has a slash, else the first executable match
// in PATH (what execvp will run), with symlinks resolved.
Result<std::string> resolve_program(const std::string& program) {
  std::vector<std::string> candidates;
  if (program.find('/') != std::string::npos) {
    candidates.push_back(program);
  } else {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    while (true) {
      const auto colon = dirs.find(':');
      std::string dir(dirs.substr(0, colon));
      candidates.push_back((dir.empty() ? "." : dir) + "/" + program);
      if (colon == std::string_view::npos) break;
      dirs.remove_prefix(colon + 1);
    }
  }
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) != 0) continue;
    char real[PATH_MAX];
    if (::realpath(c.c_str(), real) != nullptr) return std::string(real);
  }
  return make_error(ErrorKind::config, "cannot find {} (PATH or the path given)", program);
}

Result<std::string> file_identity(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno_error(errno, "stat " + path);
  return fmt::format("{} {} {}.{}", path, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

Status write_file(const std::string& path, std::span<const char> data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return errno_error(errno, "create " + path);
  while (!data.empty()) {
    const ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "write " + path);
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

Result<std::string> toolchain_identity(const Wasm2cOptions& options) {
  std::string id(kAbi);
  for (const auto& f : flags()) id += " " + f;
  for (const auto& program : {options.cc, options.wasm2c}) {
    auto path = resolve_program(program);
    if (!path) return path.error();
    auto file = file_identity(*path);
    if (!file) return file.error();
    id += "\n" + *file;
  }
  for (const char* source : {"/wasm-rt-impl.c", "/wasm-rt-impl.h"}) {
    auto file = file_identity(options.wasm_rt_dir + source);
    if (!file) return file.error();
    id += "\n" + *file;
  }
  return id;
}

std::string glue_source(const LoadPlan& plan) { return wasm2c_glue(plan, kModuleName, "guest.h"); }

Status compile_module(const Wasm2cOptions& options, const LoadPlan& plan, std::string_view glue,
                      const std::string& work_dir, const std::string& out) {
  const std::string wasm = work_dir + "/guest.wasm";
  const std::string c = work_dir + "/guest.c";  // wasm2c writes guest.h beside it
  const std::string glue_c = work_dir + "/glue.c";
  const auto& bytes = plan.wasm;
  if (auto w = write_file(wasm, {reinterpret_cast<const char*>(bytes.data()), bytes.size()}); !w)
    return w;
  if (auto w = write_file(glue_c, glue); !w) return w;

  if (auto r = run_tool({options.wasm2c, wasm, "-n", std::string(kModuleName), "-o", c},
                        options.compile_timeout);
      !r)
    return r;

  std::vector<std::string> argv = {options.cc};
  argv.insert(argv.end(), flags().begin(), flags().end());
  for (const auto& a : {"-I", options.wasm_rt_dir.c_str(), c.c_str(), glue_c.c_str()})
    argv.emplace_back(a);
  for (const auto& a :
       {options.wasm_rt_dir + "/wasm-rt-impl.c", std::string("-lm"), std::string("-o"), out})
    argv.push_back(a);
  return run_tool(argv, options.compile_timeout);
}

}  // namespace wasi_ktls::wasm
