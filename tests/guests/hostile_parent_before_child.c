/* hostile_parent_before_child
 * Hostile: drops a tcp-socket while its pollable (from tcp-socket.subscribe) still lives. The
 * pollable would then watch nothing; the host must trap, as wasmtime does. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(void) {
  wk_sock_handle_result_t created;
  wk_create_tcp_socket(WK_IPV4, &created);
  if (created.is_err) {
    fprintf(stderr, "create-tcp-socket: %s\n", wk_error_code_name(created.val.err));
    return 2;
  }
  uint32_t pollable = wk_tcp_socket_subscribe(created.val.ok);
  say("dropping tcp-socket %u while its pollable %u lives", created.val.ok, pollable);
  wk_tcp_socket_drop(created.val.ok);
  say("the host did not trap");
  return 1;
}
