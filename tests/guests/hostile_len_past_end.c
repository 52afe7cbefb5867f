/* hostile_len_past_end HOST PORT
 * Hostile: output-stream.write on a TCP stream (HOST:PORT need only accept TCP) whose data
 * pointer is inside linear memory but whose length runs past its end. The write is otherwise
 * proper: check-write granted at least that many bytes first. The host must trap. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

#define LEN 64
#define INSIDE 16  /* bytes of the write that are inside memory */

int main(int argc, char **argv) {
  if (argc != 3) usage(argv[0], "HOST PORT");
  wk_conn_t c;
  uint32_t ready = 0;
  uint64_t permit;
  wk_unit_result_t w;
  connect_or_exit(&c, argv[1], argv[2]);
  if (wk_wait_writable(&c, &ready, &permit, "check-write") != 0 || permit < LEN) {
    fprintf(stderr, "no room for %d bytes: %s\n", LEN, c.error);
    return 2;
  }
  if (ready) wk_pollable_drop(ready);
  uintptr_t end = (uintptr_t)__builtin_wasm_memory_size(0) * 65536;
  say("calling output-stream.write with %d bytes at %lu; memory ends at %lu", LEN,
      (unsigned long)(end - INSIDE), (unsigned long)end);
  wk_output_stream_write(c.output, (const void *)(end - INSIDE), LEN, &w);
  say("the host did not trap");
  return 1;
}
