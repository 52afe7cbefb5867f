/* hostile_double_drop
 * Hostile: drops the same pollable twice. The second drop names a handle that is gone; the
 * host must trap. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(void) {
  /* Said first: nothing may happen between the two drops (a new resource could reuse the
   * handle, and the second drop would then be a proper one). */
  say("dropping a monotonic-clock pollable twice");
  uint32_t pollable = wk_monotonic_clock_subscribe_duration(0);
  wk_pollable_drop(pollable);
  wk_pollable_drop(pollable);
  say("the host did not trap");
  return 1;
}
