/* close_output HOST PORT SERVER_NAME PATH
 * TLS half-close: sends a keep-alive GET for PATH, then close-output (close_notify) and waits
 * until the output reports closed, and only then reads the reply, to the server's close. The
 * server answers a keep-alive request and ends only because of the close_notify, so a whole
 * reply shows that the input stayed readable after close-output. Prints the reply's head and
 * body length (and the body if it is short text); exits 0 for a 200 whose body is as long as
 * its Content-Length. */
#include <ctype.h>

#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

typedef struct {
  char text[1024];  /* the body's start, NUL-terminated */
  size_t len;
} body_start_t;

static void keep_start(void *ctx, const uint8_t *data, size_t n, uint64_t offset) {
  body_start_t *b = (body_start_t *)ctx;
  (void)offset;
  size_t take = n < sizeof b->text - 1 - b->len ? n : sizeof b->text - 1 - b->len;
  memcpy(b->text + b->len, data, take);
  b->len += take;
  b->text[b->len] = '\0';
}

static int printable(const body_start_t *b) {
  for (size_t i = 0; i < b->len; ++i)
    if (!isprint((unsigned char)b->text[i]) && b->text[i] != '\n' && b->text[i] != '\r') return 0;
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) usage(argv[0], "HOST PORT SERVER_NAME PATH");
  char request[1024];
  int n = snprintf(request, sizeof request,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wasi-ktls-guest\r\n\r\n", argv[4],
                   argv[3]);
  if (n < 0 || (size_t)n >= sizeof request) usage(argv[0], "HOST PORT SERVER_NAME PATH (shorter)");

  wk_conn_t c;
  http_reply_t reply;
  body_start_t body = {"", 0};
  connect_or_exit(&c, argv[1], argv[2]);
  int rc = wk_tls_handshake(&c, argv[3]);
  if (rc == 0) rc = wk_write_all(&c, request, (size_t)n);
  if (rc == 0) rc = wk_close_output(&c);
  if (rc == 0) say("request sent, output closed");
  if (rc == 0) rc = read_reply(&c, &reply, keep_start, &body);
  wk_conn_close(&c);
  if (rc != 0) {
    printf("error: %s\n", c.error);
    return 1;
  }

  printf("%sbody=%llu bytes\n", reply.head, (unsigned long long)reply.body_bytes);
  if (reply.body_bytes == body.len && printable(&body)) printf("%s", body.text);
  int ok = reply.status == 200 && (uint64_t)reply.content_length == reply.body_bytes;
  printf("%s\n", ok ? "ok" : "FAIL: expected 200 with a body of Content-Length bytes");
  return ok ? 0 : 1;
}
