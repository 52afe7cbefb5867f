/* download HOST PORT SERVER_NAME PATH EXPECT_BYTES
 * GET PATH over TLS (Connection: close) and read the reply to the server's close with
 * input-stream.blocking-read straight, 256 KiB at a time, without copying or looking at the
 * body: each list the host returns is counted and freed. Only the head's bytes are read (to
 * find its end and check the status). 0 when the status is 200 and the body is EXPECT_BYTES
 * bytes long (and as long as Content-Length says, when there is one). Prints
 * "reads=R" (blocking-reads that returned bytes), then "body=N ok".
 *
 * The guest of bench/wasm-copy-check: it does no per-byte work of its own, so what a large
 * download costs in userspace is the host's data path. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

#define CHUNK (256 * 1024)  /* per blocking-read */

int main(int argc, char **argv) {
  if (argc != 6) usage(argv[0], "HOST PORT SERVER_NAME PATH EXPECT_BYTES");
  const uint64_t expect = parse_u64(argv[5], "EXPECT_BYTES");
  char request[1024];
  int n = snprintf(request, sizeof request,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wasi-ktls-guest\r\n"
                   "Connection: close\r\n\r\n",
                   argv[4], argv[3]);
  if (n < 0 || (size_t)n >= sizeof request)
    usage(argv[0], "HOST PORT SERVER_NAME PATH EXPECT_BYTES (shorter)");

  wk_conn_t c;
  connect_or_exit(&c, argv[1], argv[2]);
  if (wk_tls_handshake(&c, argv[3]) != 0 || wk_write_all(&c, request, (size_t)n) != 0) {
    printf("error: %s\n", c.error);
    wk_conn_close(&c);
    return 1;
  }

  /* The head is copied into reply.head as it comes, until its empty line: `matched` counts
   * how much of "\r\n\r\n" the bytes so far end with, so the end is found across reads. */
  static http_reply_t reply;
  static const char kEnd[] = "\r\n\r\n";
  size_t head_len = 0;
  int matched = 0, in_head = 1, rc = 0;
  uint64_t body = 0, reads = 0;
  for (;;) {
    wk_read_result_t r;
    wk_input_stream_blocking_read(c.input, CHUNK, &r);
    if (r.is_err) {
      if (r.val.err.tag != WK_STREAM_ERROR_CLOSED) rc = wk_stream_fail(&c, "read", &r.val.err);
      break;
    }
    const size_t got = r.val.ok.len;
    if (got == 0) continue;  /* an empty list was never malloc'd (cabi_realloc): nothing to free */
    ++reads;
    size_t used = 0;  /* head bytes in this read */
    if (in_head) {
      const uint8_t *p = r.val.ok.ptr;
      while (used < got && matched < 4) {
        if (head_len == sizeof reply.head - 1) break;
        const char ch = (char)p[used++];
        reply.head[head_len++] = ch;
        matched = ch == kEnd[matched] ? matched + 1 : (ch == '\r' ? 1 : 0);
      }
      if (matched == 4) {
        reply.head[head_len - 2] = '\0';  /* keep the last field's CRLF, drop the empty line */
        in_head = 0;
      } else if (head_len == sizeof reply.head - 1) {
        rc = wk_fail(&c, "HTTP head longer than %zu bytes", head_len);
      }
    }
    body += got - used;
    free(r.val.ok.ptr);  /* the host allocated it through cabi_realloc */
    if (rc != 0) break;
  }
  if (rc == 0 && in_head) rc = wk_fail(&c, "stream ended inside the HTTP head (%zu bytes)", head_len);
  if (rc == 0) rc = parse_head(&c, &reply);
  if (rc != 0) {
    printf("error: %s\n", c.error);
    wk_conn_close(&c);
    return 1;
  }
  wk_conn_close(&c);

  char why[96] = "";
  if (reply.status != 200)
    snprintf(why, sizeof why, "status is %d, not 200", reply.status);
  else if (reply.content_length >= 0 && (uint64_t)reply.content_length != body)
    snprintf(why, sizeof why, "Content-Length is %lld", reply.content_length);
  else if (body != expect)
    snprintf(why, sizeof why, "expected %llu body bytes", (unsigned long long)expect);
  printf("reads=%llu\n", (unsigned long long)reads);
  printf("body=%llu", (unsigned long long)body);
  if (why[0] != '\0') {
    printf(" FAIL: %s\n", why);
    return 1;
  }
  printf(" ok\n");
  return 0;
}
