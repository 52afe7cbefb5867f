/* tls_over_stdio SERVER_NAME PATH EXPECT_BYTES
 * TLS over the guest's stdin and stdout streams (wasi:cli), not over a socket of its own: the
 * host must run TLS in userspace over the streams. The test connects the process's stdin and
 * stdout to a TLS server; the guest GETs PATH and checks the /bytes/N pattern, reporting on
 * stderr ("status=200 body=N ok"), since stdout carries the TLS records. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SERVER_NAME PATH EXPECT_BYTES\n", argv[0]);
    return 2;
  }
  const uint64_t expect = parse_u64(argv[3], "EXPECT_BYTES");
  char request[1024];
  int n = snprintf(request, sizeof request,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[2], argv[1]);
  wk_conn_t c;
  memset(&c, 0, sizeof c);
  c.socket_error = -1;
  c.input = wk_get_stdin();
  c.output = wk_get_stdout();
  if (wk_tls_handshake(&c, argv[1]) != 0 || wk_write_all(&c, request, (size_t)n) != 0) {
    fprintf(stderr, "error: %s\n", c.error);
    wk_conn_close(&c);
    return 1;
  }
  /* The reply: the head, then exactly `expect` bytes of byte i = i % 251. */
  static char buf[65536];
  char head[4096];
  size_t head_len = 0, got;
  uint64_t body = 0, bad = 0;
  int in_body = 0;
  while (wk_read_some(&c, buf, sizeof buf, &got) == 0 && got > 0) {
    size_t i = 0;
    if (!in_body) {
      for (; i < got && !in_body; ++i) {
        if (head_len < sizeof head - 1) head[head_len++] = buf[i];
        if (head_len >= 4 && memcmp(head + head_len - 4, "\r\n\r\n", 4) == 0) in_body = 1;
      }
    }
    for (; i < got; ++i, ++body)
      if ((uint8_t)buf[i] != (uint8_t)(body % 251)) ++bad;
  }
  head[head_len] = 0;
  wk_conn_close(&c);
  const int ok = strncmp(head, "HTTP/1.1 200", 12) == 0 && body == expect && bad == 0;
  fprintf(stderr, "status=%.3s body=%llu %s\n", head + 9, (unsigned long long)body,
          ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
