/* HTTPS GET: readme_example HOST PORT PATH prints the server's reply. */
#include "wasi_ktls_guest.h"

WK_DEFINE_CABI_REALLOC()
WK_RUN_MAIN()

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s HOST PORT PATH\n", argv[0]);
    return 2;
  }
  char request[1024], buf[16384];
  snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
           argv[3], argv[1]);
  wk_conn_t c;
  size_t got;
  int rc = wk_tcp_connect(&c, argv[1], (uint16_t)atoi(argv[2]));
  if (rc == 0) rc = wk_tls_handshake(&c, argv[1]);  /* the certificate must match HOST */
  if (rc == 0) rc = wk_write_all(&c, request, strlen(request));
  while (rc == 0 && (rc = wk_read_some(&c, buf, sizeof buf, &got)) == 0 && got > 0)
    fwrite(buf, 1, got, stdout);  /* got == 0: the server closed the connection */
  if (rc != 0) fprintf(stderr, "error: %s\n", c.error);
  wk_conn_close(&c);
  return rc == 0 ? 0 : 1;
}
