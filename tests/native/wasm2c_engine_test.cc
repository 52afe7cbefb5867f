// The wasm2c engine end to end: real guests, built from the C sources below with clang-14
// (wasm32-wasi, wasi-libc) when the test runs, compiled by wasm2c and cc, run in this process.
// Needs clang-14, wasi-libc, wabt and a C compiler on PATH (tools/setup installs them).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "wasi_binding/engine/wasm2c_engine.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/fd_count.h"

namespace wasi_ktls::wasm {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using Kind = CallOutcome::Kind;

// The host module: wasm2c must mangle 'Z', ':', '/', '@', '.', '-', '[', ']', '#' alike.
#define HOST_MODULE "test:Z-host/ctl@0.2.0"

// A reactor whose run export does what the host's `mode` says.
constexpr std::string_view kReactor = R"(
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define IMPORT(name) __attribute__((import_module("test:Z-host/ctl@0.2.0"), import_name(name)))
IMPORT("[static]ctl.mode#Z") int32_t host_mode(void);
IMPORT("upper") int32_t host_upper(const char* s, int32_t len);
IMPORT("nested-trap") void host_nested_trap(void);
IMPORT("stop") void host_stop(void);
IMPORT("mix") double host_mix(int32_t a, int64_t b, float c, double d);

__attribute__((export_name("cabi_realloc")))
void* cabi_realloc(void* p, size_t old_size, size_t align, size_t size) {
  if (size == 0xdead) __builtin_trap();
  return realloc(p, size);
}

static int depth(int n) { volatile int k = n; return k <= 0 ? 0 : 1 + depth(k - 1); }
static int forever(int n) { volatile int k = n; return forever(k + 1) + 1; }

__attribute__((export_name("wasi:cli/run@0.2.0#run")))
int32_t run(void) {
  switch (host_mode()) {
    case 0: return 42;
    case 1: __builtin_trap();
    case 2: return *(volatile int32_t*)0xfffffff0u;
    case 3: return forever(0);
    case 4: {
      const char* up = (const char*)host_upper("hello, wasm", 11);
      return strcmp(up, "HELLO, WASM") == 0 ? 7 : -1;
    }
    case 5: host_nested_trap(); __builtin_trap();
    case 6: return depth(450);
    case 7: host_stop(); return 1;
    case 8: return (int32_t)host_mix(-1, -2, 1.5f, 0.25);
  }
  return -2;
}
)";

// A command with a constructor and an atexit handler, which calls back into the host while
// main runs; the host calls cabi_realloc meanwhile.
constexpr std::string_view kCommand = R"(
#include <stdint.h>
#include <stdlib.h>
#define IMPORT(name) __attribute__((import_module("test:Z-host/ctl@0.2.0"), import_name(name)))
IMPORT("alloc-some") void host_alloc_some(void);
IMPORT("report") void host_report(int32_t ctors);
IMPORT("at-exit") void host_at_exit(void);

static volatile int ctors;
__attribute__((constructor)) static void count_ctor(void) { ctors++; }
static void on_exit_handler(void) { host_at_exit(); }

__attribute__((export_name("cabi_realloc")))
void* cabi_realloc(void* p, size_t old_size, size_t align, size_t size) {
  return realloc(p, size);
}

int main(void) {
  atexit(on_exit_handler);
  host_alloc_some();
  host_report(ctors);
  return 0;
}
)";

std::string temp_root() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t && *t ? t : "/tmp";
}

// A fresh, empty directory under the test's temp dir.
std::string fresh_dir(const std::string& what) {
  static int n = 0;
  std::string dir =
      temp_root() + "/" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  return dir;
}

void write_text(const std::string& path, std::string_view text, mode_t mode = 0600) {
  std::ofstream(path) << text;
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::set<std::string> entries_of(const std::string& dir) {
  std::set<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
      out.insert(e->d_name);
  ::closedir(d);
  return out;
}

// clang-14 for wasm32-wasi; each guest built once per test process.
const Bytes& guest(std::string_view source, bool reactor) {
  static std::map<std::string, Bytes> built;
  const std::string key = std::string(source);
  if (auto it = built.find(key); it != built.end()) return it->second;
  const std::string dir = fresh_dir("guest");
  write_text(dir + "/guest.c", source);
  std::vector<std::string> argv = {"clang-14", "--target=wasm32-wasi",    "--sysroot=/usr",
                                   "-O0",      "-Wno-infinite-recursion", dir + "/guest.c",
                                   "-o",       dir + "/guest.wasm"};
  if (reactor) argv.insert(argv.begin() + 4, "-mexec-model=reactor");
  auto clang = test::ChildProcess::spawn(argv);
  REQUIRE_MESSAGE(clang.ok(), clang.error().message);
  REQUIRE(clang->read_to_end(60s).ok());
  auto status = clang->wait(10s);
  REQUIRE(status.ok());
  REQUIRE_MESSAGE(*status == 0, clang->output());
  return built[key] = read_bytes(dir + "/guest.wasm");
}

const Bytes& reactor() { return guest(kReactor, true); }
const Bytes& command() { return guest(kCommand, false); }

// What the host functions see and do; `void* host` points at one.
struct Host {
  Instance* instance = nullptr;
  int mode = 0;
  std::string inner_trap;
  std::vector<std::uint64_t> mix_args;
  int allocs = 0;
  int at_exit = 0;
  int reported_ctors = -1;
  int at_exit_when_reported = -1;
};

Host& of(void* h) { return *static_cast<Host*>(h); }

bool h_mode(void* h, const std::uint64_t*, std::uint64_t* r) {
  *r = static_cast<std::uint32_t>(of(h).mode);
  return true;
}

// Reads a string from guest memory, has the guest allocate room (a nested call) and writes
// it back upper-cased.
bool h_upper(void* h, const std::uint64_t* a, std::uint64_t* r) {
  Host& host = of(h);
  auto mem = host.instance->memory();
  const std::uint64_t ptr = a[0], len = a[1];
  if (ptr + len > mem.size()) return false;
  std::string s(mem.begin() + static_cast<long>(ptr), mem.begin() + static_cast<long>(ptr + len));
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // Big enough to grow the guest's memory: the span taken before is stale after the call.
  const std::uint64_t args[4] = {0, 0, 1, len + 1 + (1 << 20)};
  CallOutcome out = host.instance->call(Entry::realloc, args);
  if (out.kind != Kind::returned || out.value == 0) return false;
  mem = host.instance->memory();
  if (out.value + len + 1 > mem.size()) return false;
  std::memcpy(mem.data() + out.value, s.c_str(), len + 1);
  *r = out.value;
  return true;
}

// A nested call that traps ends only itself: the outer guest goes on.
bool h_nested_trap(void* h, const std::uint64_t*, std::uint64_t*) {
  Host& host = of(h);
  const std::uint64_t args[4] = {0, 0, 1, 0xdead};
  CallOutcome out = host.instance->call(Entry::realloc, args);
  host.inner_trap = out.kind == Kind::trapped ? out.trap : "(did not trap)";
  return true;
}

bool h_stop(void*, const std::uint64_t*, std::uint64_t*) { return false; }

bool h_mix(void* h, const std::uint64_t* a, std::uint64_t* r) {
  of(h).mix_args.assign(a, a + 4);
  const double result = 123.0;
  std::memcpy(r, &result, sizeof result);
  return true;
}

bool h_alloc_some(void* h, const std::uint64_t*, std::uint64_t*) {
  Host& host = of(h);
  for (int i = 0; i < 3; ++i) {
    const std::uint64_t args[4] = {0, 0, 8, 64};
    if (host.instance->call(Entry::realloc, args).kind != Kind::returned) return false;
    ++host.allocs;
  }
  return true;
}

bool h_report(void* h, const std::uint64_t* a, std::uint64_t*) {
  of(h).reported_ctors = static_cast<int>(a[0]);
  of(h).at_exit_when_reported = of(h).at_exit;
  return true;
}

bool h_at_exit(void* h, const std::uint64_t*, std::uint64_t*) {
  ++of(h).at_exit;
  return true;
}

bool h_proc_exit(void*, const std::uint64_t*, std::uint64_t*) { return false; }

const FuncType kVoid{};

class Resolver : public ImportResolver {
 public:
  Resolver() {
    const FuncType i32_result{{}, {ValType::i32}};
    add("[static]ctl.mode#Z", i32_result, h_mode);
    add("upper", {{ValType::i32, ValType::i32}, {ValType::i32}}, h_upper);
    add("nested-trap", kVoid, h_nested_trap);
    add("stop", kVoid, h_stop);
    add("mix", {{ValType::i32, ValType::i64, ValType::f32, ValType::f64}, {ValType::f64}}, h_mix);
    add("alloc-some", kVoid, h_alloc_some);
    add("report", {{ValType::i32}, {}}, h_report);
    add("at-exit", kVoid, h_at_exit);
    functions_[{"wasi_snapshot_preview1", "proc_exit"}] = {{{ValType::i32}, {}}, h_proc_exit};
  }
  void add(const std::string& name, FuncType type, HostCall call) {
    functions_[{HOST_MODULE, name}] = {std::move(type), call};
  }
  void remove(const std::string& name) { functions_.erase({HOST_MODULE, name}); }
  const HostFunction* find(std::string_view module, std::string_view name) const override {
    auto it = functions_.find({std::string(module), std::string(name)});
    return it == functions_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::pair<std::string, std::string>, HostFunction> functions_;
};

Wasm2cOptions options_in(const std::string& cache_dir) {
  Wasm2cOptions o;
  o.cache_dir = cache_dir;
  return o;
}

std::unique_ptr<Module> load_ok(Wasm2cEngine& engine, const Bytes& wasm,
                                const Resolver& resolver = Resolver()) {
  auto m = engine.load(wasm, resolver);
  REQUIRE_MESSAGE(m.ok(), m.error().message);
  return std::move(*m);
}

// An instance bound to `host`, initialized.
std::unique_ptr<Instance> start(Module& module, Host& host) {
  auto inst = module.instantiate(&host);
  REQUIRE_MESSAGE(inst.ok(), inst.error().message);
  host.instance = inst->get();
  if ((*inst)->has(Entry::initialize))
    REQUIRE((*inst)->call(Entry::initialize).kind == Kind::returned);
  return std::move(*inst);
}

CallOutcome run_mode(Instance& inst, Host& host, int mode) {
  host.mode = mode;
  return inst.call(Entry::run);
}

// One module for the tests that only run it.
Module& shared_reactor() {
  static Wasm2cEngine engine(options_in(fresh_dir("shared-cache")));
  static std::unique_ptr<Module> module = load_ok(engine, reactor());
  return *module;
}

TEST_CASE("a module importing functions the host lacks is refused, all of them named") {
  Wasm2cEngine engine(options_in(fresh_dir("cache")));
  Resolver resolver;
  resolver.remove("stop");
  resolver.remove("mix");
  auto m = engine.load(reactor(), resolver);
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().kind == ErrorKind::config);
  CHECK(m.error().message == "the module imports " HOST_MODULE ".stop, " HOST_MODULE
                             ".mix, which this host does not provide");
  CHECK(engine.compiles() == 0);
}

TEST_CASE("an import whose type differs from the host's is refused, naming both types") {
  Wasm2cEngine engine(options_in(fresh_dir("cache")));
  Resolver resolver;
  resolver.add("upper", {{ValType::i32, ValType::i64}, {ValType::i32}}, h_upper);
  auto m = engine.load(reactor(), resolver);
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().message.find(HOST_MODULE ".upper is imported as (i32, i32) -> i32, but this "
                                           "host provides (i32, i64) -> i32") != std::string::npos);
  CHECK(engine.compiles() == 0);
}

TEST_CASE("a host function reads guest memory and calls cabi_realloc while the guest runs") {
  Host host;
  auto inst = start(shared_reactor(), host);
  CHECK(inst->has(Entry::run));
  CHECK(inst->has(Entry::realloc));
  CHECK(inst->has(Entry::initialize));
  CHECK_FALSE(inst->has(Entry::start));
  const std::size_t before = inst->memory().size();
  CallOutcome out = run_mode(*inst, host, 4);
  REQUIRE(out.kind == Kind::returned);
  CHECK(out.value == 7);
  CHECK(inst->memory().size() > before);  // the 1 MiB allocation grew it

  // Values cross as raw bits: i32 zero-extended, i64 as is, floats bit-cast.
  out = run_mode(*inst, host, 8);
  REQUIRE(out.kind == Kind::returned);
  CHECK(out.value == 123);
  const float f = 1.5f;
  const double d = 0.25;
  std::uint32_t fbits;
  std::uint64_t dbits;
  std::memcpy(&fbits, &f, 4);
  std::memcpy(&dbits, &d, 8);
  CHECK(host.mix_args ==
        std::vector<std::uint64_t>{0xffffffffu, 0xfffffffffffffffeu, fbits, dbits});
}

TEST_CASE("traps end the call with wasm2c's reason; the process and other instances go on") {
  struct Case {
    int mode;
    const char* reason;
  };
  for (const Case c : {Case{1, "Unreachable instruction executed"},
                       Case{2, "Out-of-bounds access in linear memory or a table"},
                       Case{3, "Call stack exhausted"}}) {
    CAPTURE(c.mode);
    Host host;
    auto inst = start(shared_reactor(), host);
    CallOutcome out = run_mode(*inst, host, c.mode);
    CHECK(out.kind == Kind::trapped);
    CHECK(out.trap == c.reason);
    inst.reset();

    // A second instance after a trapped one starts clean and runs to the end.
    Host next;
    auto again = start(shared_reactor(), next);
    out = run_mode(*again, next, 6);  // 450 calls deep: the depth count starts from zero
    REQUIRE(out.kind == Kind::returned);
    CHECK(out.value == 450);
  }
}

TEST_CASE("a host function returning false stops the guest") {
  Host host;
  auto inst = start(shared_reactor(), host);
  CallOutcome out = run_mode(*inst, host, 7);
  CHECK(out.kind == Kind::stopped);
  CHECK(out.trap.empty());
}

TEST_CASE("a trap in a nested call ends the nested call only; the outer call's trap still lands") {
  Host host;
  auto inst = start(shared_reactor(), host);
  // Many rounds: any jmp_buf or depth left behind by the inner call would show, as a crash
  // (an outer trap jumping into a finished frame) or as a depth that creeps up.
  for (int round = 0; round < 200; ++round) {
    host.inner_trap.clear();
    CallOutcome out = run_mode(*inst, host, 5);
    REQUIRE(host.inner_trap == "Unreachable instruction executed");
    REQUIRE(out.kind == Kind::trapped);
    REQUIRE(out.trap == "Unreachable instruction executed");
  }
  CallOutcome deep = run_mode(*inst, host, 6);
  REQUIRE(deep.kind == Kind::returned);
  CHECK(deep.value == 450);
  CallOutcome nested = run_mode(*inst, host, 4);
  CHECK(nested.kind == Kind::returned);
  CHECK(nested.value == 7);
}

TEST_CASE("instances of one module are independent, side by side and on two threads") {
  Module& module = shared_reactor();
  Host a, b;
  auto ia = start(module, a);
  auto ib = start(module, b);
  CHECK(ia->memory().data() != ib->memory().data());
  const std::uint64_t args[4] = {0, 0, 1, 16};
  CallOutcome pa = ia->call(Entry::realloc, args);
  CallOutcome pb = ib->call(Entry::realloc, args);
  REQUIRE(pa.kind == Kind::returned);
  REQUIRE(pb.kind == Kind::returned);
  std::memset(ia->memory().data() + pa.value, 'a', 16);
  std::memset(ib->memory().data() + pb.value, 'b', 16);
  CHECK(run_mode(*ia, a, 1).kind == Kind::trapped);  // one traps; the other is untouched
  CHECK(ib->memory()[pb.value + 15] == 'b');
  CHECK(run_mode(*ib, b, 4).value == 7);
  CHECK(ia->memory()[pa.value] == 'a');

  std::vector<int> results(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&module, &results, t] {
      Host host;
      auto inst = module.instantiate(&host);
      if (!inst.ok()) return;
      host.instance = inst->get();
      if ((*inst)->call(Entry::initialize).kind != Kind::returned) return;
      for (int i = 0; i < 50; ++i) {
        host.mode = i % 3 == 0 ? 1 : 4;
        CallOutcome out = (*inst)->call(Entry::run);
        const bool ok = host.mode == 1 ? out.kind == Kind::trapped
                                       : out.kind == Kind::returned && out.value == 7;
        if (ok) ++results[static_cast<std::size_t>(t)];
      }
    });
  for (auto& t : threads) t.join();
  CHECK(results == std::vector<int>{50, 50});
}

TEST_CASE("a command's wrapped cabi_realloc is called unwrapped: constructors run once") {
  Wasm2cEngine engine(options_in(fresh_dir("cache")));
  auto module = load_ok(engine, command());
  Host host;
  auto inst = start(*module, host);
  REQUIRE(inst->has(Entry::start));
  REQUIRE(inst->has(Entry::realloc));
  CallOutcome out = inst->call(Entry::start);
  REQUIRE(out.kind == Kind::returned);
  CHECK(host.allocs == 3);
  // Through wasm-ld's wrapper each realloc would have run the constructor again (4 in all)
  // and, after the first, main's atexit handler before main was done.
  CHECK(host.reported_ctors == 1);
  CHECK(host.at_exit_when_reported == 0);
  CHECK(host.at_exit == 1);  // once, when _start ended
}

// (module (memory (export "memory") 1) (data (i32.const 65530) "0123456789")
//         (func) (func (export "_start")))
const Bytes kDataOutOfRange = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03,
    0x03, 0x02, 0x00, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01, 0x07, 0x13, 0x02, 0x06, 0x6d, 0x65,
    0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x01,
    0x0a, 0x08, 0x02, 0x03, 0x00, 0x00, 0x0b, 0x02, 0x00, 0x0b, 0x0b, 0x12, 0x01, 0x00, 0x41,
    0xfa, 0xff, 0x03, 0x0b, 0x0a, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39};

// (module (memory (export "memory") 1) (func $boom unreachable) (start $boom)
//         (func (export "_start")))
const Bytes kStartTraps = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60,
                           0x00, 0x00, 0x03, 0x03, 0x02, 0x00, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01,
                           0x07, 0x13, 0x02, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00,
                           0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x01, 0x08, 0x01, 0x00,
                           0x0a, 0x08, 0x02, 0x03, 0x00, 0x00, 0x0b, 0x02, 0x00, 0x0b};

TEST_CASE("instantiation that traps is an error, and frees what it had allocated") {
  Wasm2cEngine engine(options_in(fresh_dir("cache")));
  struct Case {
    const Bytes* wasm;
    const char* error;
  };
  for (const Case c :
       {Case{&kDataOutOfRange,
             "instantiating the module trapped: Out-of-bounds access in linear memory or a table"},
        Case{&kStartTraps, "instantiating the module trapped: Unreachable instruction executed"}}) {
    auto module = load_ok(engine, *c.wasm);
    for (int i = 0; i < 2; ++i) {  // the module stays usable; LSan sees any leaked memory
      Host host;
      auto inst = module->instantiate(&host);
      REQUIRE_FALSE(inst.ok());
      CHECK(inst.error().message == c.error);
    }
  }
}

TEST_CASE("code that wasm2c rejects is a compile error with wasm2c's words") {
  Bytes invalid = kStartTraps;
  invalid[invalid.size() - 5] = 0xff;  // $boom's `unreachable` becomes an unknown opcode
  Wasm2cEngine engine(options_in(fresh_dir("cache")));
  auto m = engine.load(invalid, Resolver());
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().kind == ErrorKind::config);
  CHECK(m.error().message.find("cannot compile the module: wasm2c exited with status 1; its "
                               "output: ") == 0);
  CHECK(m.error().message.find("0xff") != std::string::npos);
}

struct FileId {
  ino_t ino;
  timespec mtime;
};

FileId file_id(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return {st.st_ino, st.st_mtim};
}

TEST_CASE("the cache: a second load of the same bytes is a dlopen, not a compile") {
  const int fds = test::open_fd_count();
  const std::string dir = fresh_dir("cache");
  std::string so;
  FileId first{};
  {
    Wasm2cEngine engine(options_in(dir));
    auto module = load_ok(engine, reactor());
    CHECK(engine.compiles() == 1);
    // Exactly the library, named by its SHA-256: no build directory, no temp file left.
    auto files = entries_of(dir);
    REQUIRE(files.size() == 1);
    so = *files.begin();
    CHECK(so.size() == 64 + 3);
    CHECK(so.ends_with(".so"));
    first = file_id(dir + "/" + so);
  }
  {
    Wasm2cEngine engine(options_in(dir));
    auto module = load_ok(engine, reactor());
    CHECK(engine.compiles() == 0);
    const FileId again = file_id(dir + "/" + so);
    CHECK(again.ino == first.ino);
    CHECK(again.mtime.tv_sec == first.mtime.tv_sec);
    CHECK(again.mtime.tv_nsec == first.mtime.tv_nsec);
    CHECK(entries_of(dir) == std::set<std::string>{so});
    Host host;
    auto inst = start(*module, host);
    CHECK(run_mode(*inst, host, 0).value == 42);
  }
  CHECK(test::open_fd_count() == fds);
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST_CASE("the cache directory: $XDG_CACHE_HOME/wasi-ktls, else $HOME/.cache/wasi-ktls") {
  const std::string xdg = fresh_dir("xdg");
  const std::string home = fresh_dir("home");
  {
    ScopedEnv x("XDG_CACHE_HOME", xdg.c_str());
    ScopedEnv h("HOME", home.c_str());
    Wasm2cEngine engine;
    load_ok(engine, reactor());
    CHECK(entries_of(xdg + "/wasi-ktls").size() == 1);
  }
  {
    ScopedEnv x("XDG_CACHE_HOME", nullptr);
    ScopedEnv h("HOME", home.c_str());
    Wasm2cEngine engine;
    load_ok(engine, reactor());
    CHECK(entries_of(home + "/.cache/wasi-ktls").size() == 1);
    struct stat st;
    REQUIRE(::stat((home + "/.cache/wasi-ktls").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
  }
}

TEST_CASE("a cache directory that cannot be written: built in a temp dir, nothing left behind") {
  const int fds = test::open_fd_count();
  const std::string tmp = fresh_dir("tmpdir");
  ScopedEnv t("TMPDIR", tmp.c_str());
  // Root writes anywhere it has permission bits for; /proc takes no new files from anyone.
  std::string read_only = "/proc";
  if (::geteuid() != 0) {
    read_only = fresh_dir("read-only");
    REQUIRE(::chmod(read_only.c_str(), 0555) == 0);
  }
  const std::string file = fresh_dir("blocked") + "/file";
  write_text(file, "not a directory");
  for (const std::string& dir : {read_only, file + "/cache"}) {
    CAPTURE(dir);
    Wasm2cEngine engine(options_in(dir));
    auto module = load_ok(engine, reactor());
    CHECK(engine.compiles() == 1);
    CHECK(entries_of(tmp).empty());  // the build directory went as soon as the library loaded
    Host host;
    auto inst = start(*module, host);
    CHECK(run_mode(*inst, host, 4).value == 7);
  }
  if (read_only != "/proc") CHECK(entries_of(read_only).empty());
  CHECK(test::open_fd_count() == fds);
}

TEST_CASE("compiler failures are errors with the tool's own words, and leave nothing behind") {
  const std::string tools = fresh_dir("tools");
  const std::string cache = fresh_dir("cache");

  Wasm2cOptions failing = options_in(cache);
  failing.cc = tools + "/failing-cc";
  write_text(failing.cc, "#!/bin/sh\necho 'failing-cc: cannot compile today' >&2\nexit 3\n", 0755);
  Wasm2cEngine engine(failing);
  auto m = engine.load(reactor(), Resolver());
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().kind == ErrorKind::config);
  CHECK(m.error().message.find("cannot compile the module: " + failing.cc +
                               " exited with status 3; its output: failing-cc: cannot compile "
                               "today") == 0);
  CHECK(entries_of(cache).empty());

  Wasm2cOptions missing = options_in(cache);
  missing.cc = "no-such-compiler-anywhere";
  auto m2 = Wasm2cEngine(missing).load(reactor(), Resolver());
  REQUIRE_FALSE(m2.ok());
  CHECK(m2.error().message.find("cannot find no-such-compiler-anywhere") != std::string::npos);
}

TEST_CASE("a compiler that runs past the timeout is killed, with everything it started") {
  const std::string tools = fresh_dir("tools");
  const std::string cache = fresh_dir("cache");
  const std::string pidfile = tools + "/pid";
  Wasm2cOptions hanging = options_in(cache);
  hanging.cc = tools + "/hanging-cc";
  hanging.compile_timeout = 500ms;
  write_text(hanging.cc, "#!/bin/sh\nsleep 600 &\necho $! > " + pidfile + "\nwait\n", 0755);
  Wasm2cEngine engine(hanging);
  auto m = engine.load(reactor(), Resolver());
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().kind == ErrorKind::timeout);
  CHECK(m.error().message.find("ran past its 500 ms limit and was killed") != std::string::npos);
  CHECK(entries_of(cache).empty());

  // The compiler's own child (sleep) got SIGKILL too: gone, or a zombie awaiting its reaper.
  pid_t grandchild = 0;
  std::ifstream(pidfile) >> grandchild;
  REQUIRE(grandchild > 0);
  auto state = [&] {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return 'X';
    return line[line.rfind(')') + 2];
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (state() != 'X' && state() != 'Z' && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  CHECK((state() == 'X' || state() == 'Z'));
}

}  // namespace
}  // namespace wasi_ktls::wasm
