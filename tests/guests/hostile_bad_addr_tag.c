/* hostile_bad_addr_tag
 * Hostile: tcp-socket.start-connect with ip-socket-address tag 5; the variant has two cases
 * (0 ipv4, 1 ipv6), so the host must trap. Socket and network are proper. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(void) {
  wk_sock_handle_result_t created;
  wk_sock_unit_result_t started;
  wk_create_tcp_socket(WK_IPV4, &created);
  if (created.is_err) {
    fprintf(stderr, "create-tcp-socket: %s\n", wk_error_code_name(created.val.err));
    return 2;
  }
  uint32_t network = wk_instance_network();
  say("calling tcp-socket.start-connect with ip-socket-address tag 5 (payload 127.0.0.1:443)");
  wk_tcp_socket_start_connect(created.val.ok, network, 5, 443, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                              &started);
  say("the host did not trap");
  return 1;
}
