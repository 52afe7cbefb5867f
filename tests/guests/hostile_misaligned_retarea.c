/* hostile_misaligned_retarea HOST PORT
 * Hostile: output-stream.check-write on a TCP stream (HOST:PORT need only accept TCP) with its
 * return area 4 bytes off the 8-byte alignment that result<u64, stream-error> requires. The
 * host must trap rather than write a misaligned u64. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(int argc, char **argv) {
  if (argc != 3) usage(argv[0], "HOST PORT");
  wk_conn_t c;
  static _Alignas(8) uint8_t area[2 * sizeof(wk_u64_result_t)];
  connect_or_exit(&c, argv[1], argv[2]);
  uintptr_t ret = (uintptr_t)area + 4;
  say("calling output-stream.check-write with its return area at %lu (8-byte alignment needed)",
      (unsigned long)ret);
  wk_output_stream_check_write(c.output, (wk_u64_result_t *)ret);
  say("the host did not trap");
  return 1;
}
