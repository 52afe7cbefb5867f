#include "handshake/openssl_memory.h"

#include <malloc.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace wasi_ktls {
namespace {

void* wiping_malloc(std::size_t n, const char*, int) { return std::malloc(n); }

void wiping_free(void* p, const char*, int) {
  if (p == nullptr) return;
  OPENSSL_cleanse(p, ::malloc_usable_size(p));
  std::free(p);
}

// Never realloc in place: a block that moved would leave its old copy unwiped.
void* wiping_realloc(void* p, std::size_t n, const char* file, int line) {
  if (p == nullptr) return std::malloc(n);
  if (n == 0) {
    wiping_free(p, file, line);
    return nullptr;
  }
  void* q = std::malloc(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, std::min(n, ::malloc_usable_size(p)));
  wiping_free(p, file, line);
  return q;
}

// At load time, before anything in this library allocates through OpenSSL.
const bool installed =
    CRYPTO_set_mem_functions(wiping_malloc, wiping_realloc, wiping_free) == 1;

}  // namespace

bool openssl_frees_are_wiped() { return installed; }

}  // namespace wasi_ktls
