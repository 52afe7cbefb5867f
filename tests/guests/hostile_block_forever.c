/* hostile_block_forever
 * Hostile: pollable.block on a monotonic-clock pollable due in 2^64-1 ns (584 years), with
 * nothing else pending: the guest can never be woken. The host must stop it with a clear
 * error instead of hanging. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(void) {
  uint32_t pollable = wk_monotonic_clock_subscribe_duration(UINT64_MAX);
  say("calling pollable.block on a clock pollable due in 2^64-1 ns, nothing else pending");
  wk_pollable_block(pollable);
  say("pollable.block returned");
  return 1;
}
