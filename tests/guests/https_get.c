/* https_get HOST PORT SERVER_NAME PATH [EXPECT_BYTES]
 * GET PATH over TLS (Connection: close) and read the reply to the server's close. Checks: status
 * 200, a body as long as Content-Length says and, with EXPECT_BYTES, exactly that many bytes
 * of `wasi-ktls serve`'s /bytes/N pattern (byte i = i % 251). Prints "status=200 body=N ok".
 * Built as a reactor: it runs through wasi:cli/run. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()
WK_RUN_MAIN()

typedef struct {
  int check;             /* compare with the pattern */
  uint64_t mismatch_at;  /* first byte that differs, UINT64_MAX if none */
} pattern_check_t;

static void check_pattern(void *ctx, const uint8_t *data, size_t n, uint64_t offset) {
  pattern_check_t *p = (pattern_check_t *)ctx;
  if (!p->check || p->mismatch_at != UINT64_MAX) return;
  uint8_t expect = (uint8_t)(offset % 251);
  for (size_t i = 0; i < n; ++i) {
    if (data[i] != expect) {
      p->mismatch_at = offset + i;
      return;
    }
    expect = expect == 250 ? 0 : expect + 1;
  }
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) usage(argv[0], "HOST PORT SERVER_NAME PATH [EXPECT_BYTES]");
  pattern_check_t pattern = {argc == 6, UINT64_MAX};
  uint64_t expect = argc == 6 ? parse_u64(argv[5], "EXPECT_BYTES") : 0;
  char request[1024];
  int n = snprintf(request, sizeof request,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wasi-ktls-guest\r\n"
                   "Connection: close\r\n\r\n",
                   argv[4], argv[3]);
  if (n < 0 || (size_t)n >= sizeof request) usage(argv[0], "HOST PORT SERVER_NAME PATH (shorter)");

  wk_conn_t c;
  http_reply_t reply;
  connect_or_exit(&c, argv[1], argv[2]);
  if (wk_tls_handshake(&c, argv[3]) != 0 || wk_write_all(&c, request, (size_t)n) != 0 ||
      read_reply(&c, &reply, check_pattern, &pattern) != 0) {
    printf("error: %s\n", c.error);
    wk_conn_close(&c);
    return 1;
  }
  wk_conn_close(&c);

  char why[96] = "";
  if (reply.status != 200)
    snprintf(why, sizeof why, "status is not 200");
  else if (reply.content_length >= 0 && (uint64_t)reply.content_length != reply.body_bytes)
    snprintf(why, sizeof why, "Content-Length is %lld", reply.content_length);
  else if (pattern.check && reply.body_bytes != expect)
    snprintf(why, sizeof why, "expected %llu body bytes", (unsigned long long)expect);
  else if (pattern.mismatch_at != UINT64_MAX)
    snprintf(why, sizeof why, "body byte %llu is not %llu %% 251",
             (unsigned long long)pattern.mismatch_at, (unsigned long long)pattern.mismatch_at);
  printf("status=%d body=%llu", reply.status, (unsigned long long)reply.body_bytes);
  if (why[0] != '\0') {
    printf(" FAIL: %s\n", why);
    return 1;
  }
  printf(" ok\n");
  return 0;
}
