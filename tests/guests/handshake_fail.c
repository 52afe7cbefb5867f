/* handshake_fail HOST PORT SERVER_NAME
 * Expects the TLS handshake to fail, as it must when the server's certificate does not match
 * SERVER_NAME or does not chain to a trusted root. Prints the host's error text; exits 0 if
 * the handshake failed and that text mentions "certificate", 1 otherwise. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(int argc, char **argv) {
  if (argc != 4) usage(argv[0], "HOST PORT SERVER_NAME");
  wk_conn_t c;
  connect_or_exit(&c, argv[1], argv[2]);
  int failed = wk_tls_handshake(&c, argv[3]) != 0;
  wk_conn_close(&c);
  if (!failed) {
    printf("handshake with %s succeeded: expected a certificate error\n", argv[3]);
    return 1;
  }
  /* c.error is "TLS handshake with NAME failed: TEXT"; only the host's TEXT counts. */
  const char *text = strstr(c.error, " failed: ");
  text = text != NULL ? text + 9 : c.error;
  printf("handshake failed: %s\n", text);
  return strstr(text, "certificate") != NULL ? 0 : 1;
}
