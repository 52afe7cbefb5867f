/* hostile_bad_family
 * Hostile: create-tcp-socket with address family 7; ip-address-family has two cases (0 ipv4,
 * 1 ipv6), so the host must trap. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(void) {
  wk_sock_handle_result_t created;
  say("calling create-tcp-socket with family 7");
  wk_create_tcp_socket(7, &created);
  say("the host did not trap");
  return 1;
}
