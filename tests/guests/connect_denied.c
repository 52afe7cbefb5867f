/* connect_denied HOST PORT
 * Expects the host to refuse the TCP connection by policy: start-connect or finish-connect
 * returning error-code access-denied. Prints what happened; exits 0 if so, 1 otherwise. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(int argc, char **argv) {
  if (argc != 3) usage(argv[0], "HOST PORT");
  wk_conn_t c;
  int connected = wk_tcp_connect(&c, argv[1], parse_port(argv[2])) == 0;
  wk_conn_close(&c);
  if (connected) {
    printf("connected to %s:%s: expected access-denied\n", argv[1], argv[2]);
    return 1;
  }
  printf("%s\n", c.error);
  int denied = c.socket_error == WK_ERROR_CODE_ACCESS_DENIED && c.socket_call != NULL &&
               (strcmp(c.socket_call, "start-connect") == 0 ||
                strcmp(c.socket_call, "finish-connect") == 0);
  return denied ? 0 : 1;
}
