/* hostile_oob_pointer HOST PORT
 * Hostile: [constructor]client-handshake with a server name pointer beyond linear memory, on
 * real TCP streams (HOST:PORT need only accept TCP). The host must trap. The pointer is
 * 0xfffffff0 and the length 32: their sum wraps to 16 in 32-bit arithmetic, so a host that
 * adds in 32 bits would wrongly accept it. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(int argc, char **argv) {
  if (argc != 3) usage(argv[0], "HOST PORT");
  wk_conn_t c;
  connect_or_exit(&c, argv[1], argv[2]);
  say("calling [constructor]client-handshake with server name at 0xfffffff0, 32 bytes; "
      "memory is %lu bytes",
      (unsigned long)__builtin_wasm_memory_size(0) * 65536);
  wk_client_handshake_new((const char *)(uintptr_t)0xfffffff0u, 32, c.input, c.output);
  say("the host did not trap");
  return 1;
}
