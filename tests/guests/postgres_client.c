/* postgres_client HOST PORT SERVER_NAME USER DATABASE
 * A PostgreSQL client (frontend protocol 3.0) over wasi:tls: SSLRequest in plaintext on the
 * TCP streams, exactly one byte of answer read ('S'), then those same streams handed to
 * client-handshake (SERVER_NAME: SNI and the name the server's certificate must have), so the
 * host can put the TLS session in the kernel. Then the startup message, authentication (none
 * asked, as with `cert`, where the TLS client certificate is the credential; or SCRAM-SHA-256
 * with the password from the environment variable PGPASSWORD), and three queries: SELECT 1,
 * the session's TLS facts from pg_stat_ssl, and about 1 MiB of rows, each checked; then
 * Terminate, and the server's close_notify.
 * Prints one line per step (see README.md); an ErrorResponse is printed as
 * "server error: SEVERITY CODE: MESSAGE". Exit 0 when every check held, 1 when one failed or
 * the server refused, 2 on bad arguments or no TCP connection. */
#include "guest_util.h"
#include "scram.h"

WK_DEFINE_CABI_REALLOC()

#define PROTOCOL_3_0 196608
#define SSL_REQUEST_CODE 80877103
#define MAX_MESSAGE (16u << 20)  /* bound on one server message, against a hostile peer */

/* The big query: row g is (g, 60 times the letter chr(65 + g % 26)), about 1.06 MiB of
 * DataRow messages for 14000 rows. */
#define BIG_ROWS 14000
#define BIG_WIDTH 60
#define BIG_QUERY                                                                     \
  "SELECT g, repeat(chr(65 + g % 26), 60) FROM generate_series(1, 14000) AS g ORDER BY g"

typedef struct {
  wk_conn_t c;
  uint8_t *buf;  /* what was read from the server and not yet consumed: buf[start, end) */
  size_t cap, start, end;
  char type;     /* the current message: type byte, body */
  const uint8_t *body;
  size_t len;
} pg_t;

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* ---- messages to the server ------------------------------------------------------------ */

typedef struct {
  uint8_t data[1024];
  size_t len;
  int overflow;
} out_msg_t;

static void out_bytes(out_msg_t *m, const void *p, size_t n) {
  if (m->overflow || n > sizeof m->data - m->len) {
    m->overflow = 1;
    return;
  }
  memcpy(m->data + m->len, p, n);
  m->len += n;
}
static void out_u32(out_msg_t *m, uint32_t v) {
  uint8_t b[4];
  put32(b, v);
  out_bytes(m, b, 4);
}
static void out_str(out_msg_t *m, const char *s) { out_bytes(m, s, strlen(s) + 1); }

/* Starts a message: its type byte (none for the startup message) and a length to be set. */
static void out_begin(out_msg_t *m, char type) {
  m->len = 0;
  m->overflow = 0;
  if (type) out_bytes(m, &type, 1);
  out_u32(m, 0);
}

/* Sets the length (which counts itself, not the type byte) and sends the message. */
static int out_send(pg_t *pg, out_msg_t *m, int typed) {
  if (m->overflow) return wk_fail(&pg->c, "message to the server too long");
  put32(m->data + (typed ? 1 : 0), (uint32_t)(m->len - (typed ? 1 : 0)));
  return wk_write_all(&pg->c, m->data, m->len);
}

/* ---- messages from the server ---------------------------------------------------------- */

/* Until buf[start, end) holds `need` bytes. */
static int fill(pg_t *pg, size_t need) {
  while (pg->end - pg->start < need) {
    size_t got;
    if (pg->start > 0) {  /* what is left moves to the front */
      memmove(pg->buf, pg->buf + pg->start, pg->end - pg->start);
      pg->end -= pg->start;
      pg->start = 0;
    }
    if (need > pg->cap || pg->cap - pg->end < 4096) {
      size_t cap = pg->cap * 2 > need ? pg->cap * 2 : need;
      if (cap < 65536) cap = 65536;
      uint8_t *grown = (uint8_t *)realloc(pg->buf, cap);
      if (!grown) return wk_fail(&pg->c, "out of memory for a %zu-byte message", need);
      pg->buf = grown;
      pg->cap = cap;
    }
    if (wk_read_some(&pg->c, pg->buf + pg->end, pg->cap - pg->end, &got) != 0) return -1;
    if (got == 0)
      return wk_fail(&pg->c, "the server closed the connection in the middle of a message");
    pg->end += got;
  }
  return 0;
}

/* The next message: pg->type, pg->body, pg->len (valid until the next call). */
static int next_message(pg_t *pg) {
  if (fill(pg, 5) != 0) return -1;
  const uint32_t len = be32(pg->buf + pg->start + 1);
  if (len < 4 || len > MAX_MESSAGE)
    return wk_fail(&pg->c, "server message '%c' with length %u", pg->buf[pg->start], len);
  if (fill(pg, 1 + len) != 0) return -1;
  pg->type = (char)pg->buf[pg->start];
  pg->body = pg->buf + pg->start + 5;
  pg->len = len - 4;
  pg->start += 1 + len;
  return 0;
}

/* An ErrorResponse or NoticeResponse as "SEVERITY CODE: MESSAGE (DETAIL)". */
static void describe_fields(const uint8_t *body, size_t len, char *out, size_t cap) {
  const char *severity = "?", *code = "?", *message = "?", *detail = NULL;
  size_t i = 0;
  while (i < len && body[i] != 0) {
    const char field = (char)body[i];
    const char *value = (const char *)body + i + 1;
    const uint8_t *nul = (const uint8_t *)memchr(body + i + 1, 0, len - i - 1);
    if (!nul) break;  /* malformed: stop at what was whole */
    if (field == 'V') severity = value;
    if (field == 'C') code = value;
    if (field == 'M') message = value;
    if (field == 'D') detail = value;
    i = (size_t)(nul - body) + 1;
  }
  snprintf(out, cap, "%s %s: %s%s%s%s", severity, code, message, detail ? " (" : "",
           detail ? detail : "", detail ? ")" : "");
}

/* Handles what may come at any time (notices, parameter status, key data); 1 if it did. An
 * ErrorResponse is printed and fails. */
static int common_message(pg_t *pg, int *rc) {
  char text[1024];
  *rc = 0;
  switch (pg->type) {
    case 'E':
      describe_fields(pg->body, pg->len, text, sizeof text);
      say("server error: %s", text);
      *rc = wk_fail(&pg->c, "the server sent an error");
      return 1;
    case 'N':
      describe_fields(pg->body, pg->len, text, sizeof text);
      say("notice: %s", text);
      return 1;
    case 'S': /* ParameterStatus */
    case 'K': /* BackendKeyData */
      return 1;
    default:
      return 0;
  }
}

/* ---- authentication -------------------------------------------------------------------- */

enum { AUTH_OK = 0, AUTH_SASL = 10, AUTH_SASL_CONTINUE = 11, AUTH_SASL_FINAL = 12 };

/* The next message, which must be Authentication with `code`; its data after the code. */
static int expect_auth(pg_t *pg, uint32_t code, const uint8_t **data, size_t *len) {
  int rc;
  do {
    if (next_message(pg) != 0) return -1;
  } while (common_message(pg, &rc) && rc == 0);
  if (rc != 0) return rc;
  if (pg->type != 'R' || pg->len < 4 || be32(pg->body) != code)
    return wk_fail(&pg->c, "expected Authentication %u, got '%c' (%zu bytes)", code, pg->type,
                   pg->len);
  *data = pg->body + 4;
  *len = pg->len - 4;
  return 0;
}

static int scram_sha_256(pg_t *pg, const uint8_t *mechanisms, size_t len) {
  const char *password = getenv("PGPASSWORD");
  uint8_t random[SCRAM_NONCE_BYTES];
  char text[SCRAM_MAX_MESSAGE];
  size_t text_len, i = 0;
  int offered = 0;
  scram_t s;
  out_msg_t m;
  wk_bytes_t r;
  while (i < len && mechanisms[i] != 0) {  /* NUL-terminated names, then an empty one */
    const uint8_t *nul = (const uint8_t *)memchr(mechanisms + i, 0, len - i);
    if (!nul) break;
    if (strcmp((const char *)mechanisms + i, "SCRAM-SHA-256") == 0) offered = 1;
    i = (size_t)(nul - mechanisms) + 1;
  }
  if (!offered) return wk_fail(&pg->c, "the server offers no SASL mechanism this client has");
  if (!password)
    return wk_fail(&pg->c, "the server asks for a password and PGPASSWORD is not set "
                           "(wasi-ktls run --env PGPASSWORD)");

  wk_get_random_bytes(SCRAM_NONCE_BYTES, &r);
  if (r.len != SCRAM_NONCE_BYTES) return wk_fail(&pg->c, "get-random-bytes: %zu bytes", r.len);
  memcpy(random, r.ptr, SCRAM_NONCE_BYTES);
  free(r.ptr);
  if (scram_client_first(&s, random, text, sizeof text, &text_len) != 0)
    return wk_fail(&pg->c, "SCRAM: %s", s.error);
  out_begin(&m, 'p');  /* SASLInitialResponse */
  out_str(&m, "SCRAM-SHA-256");
  out_u32(&m, (uint32_t)text_len);
  out_bytes(&m, text, text_len);
  if (out_send(pg, &m, 1) != 0) return -1;

  const uint8_t *data;
  if (expect_auth(pg, AUTH_SASL_CONTINUE, &data, &len) != 0) return -1;
  if (scram_client_final(&s, password, (const char *)data, len, text, sizeof text, &text_len) != 0)
    return wk_fail(&pg->c, "SCRAM: %s", s.error);
  out_begin(&m, 'p');  /* SASLResponse */
  out_bytes(&m, text, text_len);
  if (out_send(pg, &m, 1) != 0) return -1;

  if (expect_auth(pg, AUTH_SASL_FINAL, &data, &len) != 0) return -1;
  if (scram_check_server_final(&s, (const char *)data, len) != 0)
    return wk_fail(&pg->c, "SCRAM: %s", s.error);
  if (expect_auth(pg, AUTH_OK, &data, &len) != 0) return -1;
  say("auth: SCRAM-SHA-256, the server's signature verified");
  return 0;
}

/* Startup message, authentication, then up to ReadyForQuery. */
static int start_session(pg_t *pg, const char *user, const char *database) {
  out_msg_t m;
  int rc;
  out_begin(&m, 0);
  out_u32(&m, PROTOCOL_3_0);
  out_str(&m, "user");
  out_str(&m, user);
  out_str(&m, "database");
  out_str(&m, database);
  out_str(&m, "application_name");
  out_str(&m, "wasi-ktls guest");
  out_bytes(&m, "", 1);
  if (out_send(pg, &m, 0) != 0) return -1;

  do {
    if (next_message(pg) != 0) return -1;
  } while (common_message(pg, &rc) && rc == 0);
  if (rc != 0) return rc;
  if (pg->type != 'R' || pg->len < 4)
    return wk_fail(&pg->c, "expected Authentication, got '%c'", pg->type);
  const uint32_t code = be32(pg->body);
  if (code == AUTH_OK) {
    say("auth: none asked (the TLS client certificate, or trust)");
  } else if (code == AUTH_SASL) {
    if (scram_sha_256(pg, pg->body + 4, pg->len - 4) != 0) return -1;
  } else {
    return wk_fail(&pg->c, "authentication method %u is not one this client speaks", code);
  }
  for (;;) {
    if (next_message(pg) != 0) return -1;
    if (common_message(pg, &rc)) {
      if (rc != 0) return rc;
      continue;
    }
    if (pg->type == 'Z') return 0;
    return wk_fail(&pg->c, "unexpected '%c' before ReadyForQuery", pg->type);
  }
}

/* ---- queries --------------------------------------------------------------------------- */

#define MAX_COLUMNS 8

typedef struct {
  int n;
  const char *value[MAX_COLUMNS];  /* NULL for SQL NULL; not NUL-terminated */
  size_t len[MAX_COLUMNS];
} row_t;

typedef int (*row_fn)(void *ctx, const row_t *row, size_t message_bytes);

static int parse_row(const uint8_t *body, size_t len, row_t *row) {
  size_t at = 2;
  if (len < 2) return -1;
  row->n = body[0] << 8 | body[1];
  if (row->n > MAX_COLUMNS) return -1;
  for (int i = 0; i < row->n; ++i) {
    if (len - at < 4) return -1;
    const uint32_t n = be32(body + at);
    at += 4;
    if (n == 0xffffffffu) {
      row->value[i] = NULL;
      row->len[i] = 0;
      continue;
    }
    if (n > len - at) return -1;
    row->value[i] = (const char *)body + at;
    row->len[i] = n;
    at += n;
  }
  return at == len ? 0 : -1;
}

/* Simple query: each DataRow to `on_row`; 0 once ReadyForQuery follows a CommandComplete. */
static int query(pg_t *pg, const char *sql, row_fn on_row, void *ctx) {
  out_msg_t m;
  int rc, failed = 0, completed = 0;
  out_begin(&m, 'Q');
  out_str(&m, sql);
  if (out_send(pg, &m, 1) != 0) return -1;
  for (;;) {
    if (next_message(pg) != 0) return -1;
    if (common_message(pg, &rc)) {
      failed |= rc != 0;  /* the server still ends the query with ReadyForQuery */
      continue;
    }
    switch (pg->type) {
      case 'T': break;  /* RowDescription */
      case 'C': completed = 1; break;
      case 'D': {
        row_t row;
        if (parse_row(pg->body, pg->len, &row) != 0)
          return wk_fail(&pg->c, "a malformed DataRow");
        if (!failed && on_row(ctx, &row, 5 + pg->len) != 0) failed = 1;
        break;
      }
      case 'Z':
        if (failed) return -1;
        return completed ? 0 : wk_fail(&pg->c, "%s: no CommandComplete", sql);
      default:
        return wk_fail(&pg->c, "%s: unexpected message '%c'", sql, pg->type);
    }
  }
}

typedef struct {
  pg_t *pg;
  uint64_t rows, bytes;
  char text[512];  /* the single-row queries' row, formatted */
} result_t;

static int one_row(void *ctx, const row_t *row, size_t message_bytes) {
  result_t *r = (result_t *)ctx;
  size_t at = 0;
  (void)message_bytes;
  if (++r->rows > 1) return wk_fail(&r->pg->c, "more than one row");
  r->text[0] = '\0';
  for (int i = 0; i < row->n && at < sizeof r->text; ++i)
    at += (size_t)snprintf(r->text + at, sizeof r->text - at, "%s%.*s", i ? "|" : "",
                           row->value[i] ? (int)row->len[i] : 4,
                           row->value[i] ? row->value[i] : "NULL");
  return 0;
}

/* Row g of BIG_QUERY, in order, exactly. */
static int big_row(void *ctx, const row_t *row, size_t message_bytes) {
  result_t *r = (result_t *)ctx;
  const uint64_t g = r->rows + 1;
  char expect_g[24];
  const int n = snprintf(expect_g, sizeof expect_g, "%llu", (unsigned long long)g);
  const char letter = (char)('A' + g % 26);
  if (row->n != 2 || !row->value[0] || !row->value[1] || row->len[0] != (size_t)n ||
      memcmp(row->value[0], expect_g, (size_t)n) != 0 || row->len[1] != BIG_WIDTH)
    return wk_fail(&r->pg->c, "row %llu: not (%s, %d x %c)", (unsigned long long)g, expect_g,
                   BIG_WIDTH, letter);
  for (int i = 0; i < BIG_WIDTH; ++i)
    if (row->value[1][i] != letter)
      return wk_fail(&r->pg->c, "row %llu: byte %d is not %c", (unsigned long long)g, i, letter);
  r->rows = g;
  r->bytes += message_bytes;
  return 0;
}

static int run_queries(pg_t *pg) {
  result_t r = {pg, 0, 0, ""};
  if (query(pg, "SELECT 1", one_row, &r) != 0) return -1;
  if (r.rows != 1 || strcmp(r.text, "1") != 0)
    return wk_fail(&pg->c, "SELECT 1 gave %llu rows: %s", (unsigned long long)r.rows, r.text);
  say("SELECT 1: 1");

  r.rows = 0;
  if (query(pg,
            "SELECT current_user, s.version, s.cipher, coalesce(s.client_dn, '(none)') "
            "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
            one_row, &r) != 0)
    return -1;
  say("session: %s", r.text);  /* user|TLS version|cipher|client certificate DN */

  r.rows = 0;
  if (query(pg, BIG_QUERY, big_row, &r) != 0) return -1;
  if (r.rows != BIG_ROWS || r.bytes < (1u << 20))
    return wk_fail(&pg->c, "big query: %llu rows, %llu bytes", (unsigned long long)r.rows,
                   (unsigned long long)r.bytes);
  say("big query: rows=%llu bytes=%llu checked ok", (unsigned long long)r.rows,
      (unsigned long long)r.bytes);
  return 0;
}

/* Terminate, then the server's close: its close_notify, with nothing before it. No
 * close_notify of ours: the server closes its socket right after Terminate, and bytes
 * arriving then would only make its kernel answer with a reset. */
static int terminate(pg_t *pg) {
  out_msg_t m;
  uint8_t rest[64];
  size_t got;
  out_begin(&m, 'X');
  if (out_send(pg, &m, 1) != 0) return -1;
  if (wk_read_some(&pg->c, rest, sizeof rest, &got) != 0) return -1;
  if (got != 0 || pg->end != pg->start) return wk_fail(&pg->c, "bytes after Terminate");
  say("terminated: the server ended the TLS session with close_notify");
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 6) usage(argv[0], "HOST PORT SERVER_NAME USER DATABASE");
  pg_t pg;
  memset(&pg, 0, sizeof pg);
  connect_or_exit(&pg.c, argv[1], argv[2]);

  /* In plaintext on the TCP streams: SSLRequest, and exactly one byte of answer, so that
   * nothing of the server's TLS handshake has been read when the streams are handed over. */
  uint8_t ssl_request[8], answer;
  size_t got;
  put32(ssl_request, 8);
  put32(ssl_request + 4, SSL_REQUEST_CODE);
  int rc = wk_write_all(&pg.c, ssl_request, sizeof ssl_request);
  if (rc == 0) rc = wk_read_some(&pg.c, &answer, 1, &got);
  if (rc == 0 && got != 1) rc = wk_fail(&pg.c, "the server closed instead of answering SSLRequest");
  if (rc == 0 && answer != 'S') rc = wk_fail(&pg.c, "SSLRequest answered '%c', not 'S'", answer);
  if (rc == 0) say("SSLRequest: S");
  if (rc == 0) rc = wk_tls_handshake(&pg.c, argv[3]);
  if (rc == 0) say("TLS: handshake done with %s", argv[3]);
  if (rc == 0) rc = start_session(&pg, argv[4], argv[5]);
  if (rc == 0) rc = run_queries(&pg);
  if (rc == 0) rc = terminate(&pg);
  if (rc != 0) say("error: %s", pg.c.error);
  wk_conn_close(&pg.c);
  free(pg.buf);
  return rc == 0 ? 0 : 1;
}
