/* hostile_unknown_handle
 * Hostile: input-stream.read on handle 12345, which the host never gave out. The host must
 * trap. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(void) {
  wk_read_result_t r;
  say("calling input-stream.read on handle 12345, which was never given out");
  wk_input_stream_read(12345, 16, &r);
  say("the host did not trap");
  return 1;
}
