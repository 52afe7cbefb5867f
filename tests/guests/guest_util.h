/* What the test guests share: argument parsing, progress lines that survive a trap, and an
 * HTTP/1.1 reply reader. Exit statuses of every guest: 0 the behaviour checked is there,
 * 1 it is not, 2 bad arguments or a failure before the check could be made. */
#ifndef GUEST_UTIL_H
#define GUEST_UTIL_H

#include <strings.h>

#include "wasi_ktls_guest.h"

static inline void usage(const char *argv0, const char *args) {
  fprintf(stderr, "usage: %s %s\n", argv0, args);
  exit(2);
}

static inline uint64_t parse_u64(const char *text, const char *what) {
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  if (*text == '\0' || *end != '\0' || *text == '-') {
    fprintf(stderr, "%s: not a number: %s\n", what, text);
    exit(2);
  }
  return v;
}

static inline uint16_t parse_port(const char *text) {
  uint64_t port = parse_u64(text, "PORT");
  if (port == 0 || port > 65535) {
    fprintf(stderr, "PORT out of range: %s\n", text);
    exit(2);
  }
  return (uint16_t)port;
}

/* A line on stdout, flushed at once: stdout is fully buffered when it is not a terminal, and
 * a guest about to be trapped never gets to flush it. */
__attribute__((format(printf, 1, 2))) static inline void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* Connects, or exits 2 saying why. */
static inline void connect_or_exit(wk_conn_t *c, const char *host, const char *port) {
  if (wk_tcp_connect(c, host, parse_port(port)) == 0) return;
  fprintf(stderr, "connect: %s\n", c->error);
  exit(2);
}

typedef struct {
  int status;              /* from the status line */
  long long content_length;  /* -1 without a Content-Length header */
  uint64_t body_bytes;     /* counted up to EOF */
  char head[8192];         /* status line and header fields, NUL-terminated */
} http_reply_t;

/* Called with the body as it arrives; `offset` is where `data` starts in the body. */
typedef void (*body_fn)(void *ctx, const uint8_t *data, size_t n, uint64_t offset);

/* Fills r->status and r->content_length from r->head. */
static inline int parse_head(wk_conn_t *c, http_reply_t *r) {
  char *line = r->head;
  if (strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
      sscanf(line + 9, "%3d", &r->status) != 1)
    return wk_fail(c, "not an HTTP/1.x status line: %.40s", line);
  r->content_length = -1;
  while ((line = strstr(line, "\r\n")) != NULL) {
    line += 2;
    if (strncasecmp(line, "Content-Length:", 15) == 0)
      r->content_length = strtoll(line + 15, NULL, 10);
  }
  return 0;
}

/* Reads the reply to the end of the stream: the head into r, the body through `body`. */
static inline int read_reply(wk_conn_t *c, http_reply_t *r, body_fn body, void *ctx) {
  static uint8_t buf[64 * 1024];
  size_t head_len = 0, got;
  int in_head = 1;
  memset(r, 0, sizeof *r);
  for (;;) {
    if (wk_read_some(c, buf, sizeof buf, &got) != 0) return -1;
    if (got == 0) break;
    const uint8_t *data = buf;
    if (in_head) {
      /* The end of the head may straddle two reads: search from 3 bytes before the new ones. */
      size_t take = got < sizeof r->head - 1 - head_len ? got : sizeof r->head - 1 - head_len;
      size_t from = head_len > 3 ? head_len - 3 : 0;
      memcpy(r->head + head_len, buf, take);
      r->head[head_len + take] = '\0';
      char *end = strstr(r->head + from, "\r\n\r\n");
      if (end == NULL) {
        if (head_len + take == sizeof r->head - 1)
          return wk_fail(c, "HTTP head longer than %zu bytes", head_len + take);
        head_len += take;
        continue;
      }
      size_t used = (size_t)(end + 4 - r->head) - head_len;  /* head bytes in this read */
      end[2] = '\0';  /* keep the last field's CRLF, drop the empty line */
      in_head = 0;
      if (parse_head(c, r) != 0) return -1;
      data += used;
      got -= used;
    }
    if (got > 0) body(ctx, data, got, r->body_bytes);
    r->body_bytes += got;
  }
  if (in_head) return wk_fail(c, "stream ended inside the HTTP head (%zu bytes)", head_len);
  return 0;
}

#endif /* GUEST_UTIL_H */
