/* bulk HOST PORT SERVER_NAME MIB
 * Against `wasi-ktls serve --echo` (which sends back every byte it reads until the client's
 * close_notify): sends MIB MiB of a deterministic pattern and reads the echo back, then
 * close-output and reads to the server's close. FNV-1a 64 of each direction must agree.
 * Prints "up=N down=N fnv=H seconds=S checksum ok".
 *
 * Writing and reading go on together: the server writes each piece back before it reads the
 * next, so a client that wrote everything first would leave both sides stuck in a write once
 * the socket buffers fill. Non-blocking read/check-write, and poll when neither moves. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

#define CHUNK (256 * 1024)  /* per write and per read: big enough that calls cost nothing */

static uint8_t out_buf[CHUNK];

/* Byte i of the stream: a byte of murmur3's finalizer of i / 4, so that no shift, repeat or
 * drop of a piece goes unnoticed by the checksum. */
static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  x *= 0xc2b2ae35u;
  return x ^ (x >> 16);
}

static void fill_pattern(uint64_t offset, uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t at = offset + i;
    p[i] = (uint8_t)(mix32((uint32_t)(at >> 2)) >> (8 * (at & 3)));
  }
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull

static int fail(wk_conn_t *c) {
  printf("error: %s\n", c->error);
  wk_conn_close(c);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) usage(argv[0], "HOST PORT SERVER_NAME MIB");
  const uint64_t total = parse_u64(argv[4], "MIB") << 20;
  uint64_t up = 0, down = 0, up_fnv = FNV_OFFSET, down_fnv = FNV_OFFSET;
  wk_conn_t c;
  connect_or_exit(&c, argv[1], argv[2]);
  if (wk_tls_handshake(&c, argv[3]) != 0) return fail(&c);

  const uint64_t start = wk_monotonic_clock_now();
  uint32_t ready[2] = {wk_input_stream_subscribe(c.input), wk_output_stream_subscribe(c.output)};
  int rc = 0;
  while (rc == 0 && down < total) {
    int moved = 0;
    if (up < total) {
      wk_u64_result_t permit;
      wk_unit_result_t w;
      wk_output_stream_check_write(c.output, &permit);
      if (permit.is_err) {
        rc = wk_stream_fail(&c, "check-write", &permit.val.err);
        break;
      }
      if (permit.val.ok > 0) {
        uint64_t n = total - up < CHUNK ? total - up : CHUNK;
        if (n > permit.val.ok) n = permit.val.ok;
        fill_pattern(up, out_buf, (size_t)n);
        up_fnv = fnv1a(up_fnv, out_buf, (size_t)n);
        wk_output_stream_write(c.output, out_buf, (size_t)n, &w);
        up += n;
        if (!w.is_err && up == total) wk_output_stream_flush(c.output, &w);  /* the last piece */
        if (w.is_err) {
          rc = wk_stream_fail(&c, "write", &w.err);
          break;
        }
        moved = 1;
      }
    }
    wk_read_result_t r;
    wk_input_stream_read(c.input, CHUNK, &r);
    if (r.is_err) {
      rc = r.val.err.tag == WK_STREAM_ERROR_CLOSED
               ? wk_fail(&c, "the server closed after echoing %llu of %llu bytes",
                         (unsigned long long)down, (unsigned long long)total)
               : wk_stream_fail(&c, "read", &r.val.err);
      break;
    }
    if (r.val.ok.len > 0) {
      down_fnv = fnv1a(down_fnv, r.val.ok.ptr, r.val.ok.len);
      down += r.val.ok.len;
      free(r.val.ok.ptr);  /* the host allocated it through cabi_realloc */
      moved = 1;
    }
    if (down > total) rc = wk_fail(&c, "the server echoed more than was sent");
    if (rc == 0 && !moved) {
      /* Wait for input, and for output room while there is more to send. The list of ready
       * indexes is not needed: both are tried again. */
      wk_list_u32_t which;
      wk_poll(ready, up < total ? 2 : 1, &which);
      if (which.len > 0) free(which.ptr);
    }
  }
  wk_pollable_drop(ready[0]);
  wk_pollable_drop(ready[1]);
  if (rc != 0) return fail(&c);
  const double seconds = (double)(wk_monotonic_clock_now() - start) / 1e9;

  /* close_notify; the server then ends its side, and nothing more may come. */
  size_t extra = 0;
  uint8_t byte;
  if (wk_close_output(&c) != 0 || wk_read_some(&c, &byte, 1, &extra) != 0) return fail(&c);
  wk_conn_close(&c);
  if (extra != 0) {
    printf("FAIL: data after the echo\n");
    return 1;
  }

  printf("up=%llu down=%llu", (unsigned long long)up, (unsigned long long)down);
  if (up_fnv != down_fnv) {
    printf(" up_fnv=%016llx down_fnv=%016llx checksum MISMATCH\n", (unsigned long long)up_fnv,
           (unsigned long long)down_fnv);
    return 1;
  }
  printf(" fnv=%016llx seconds=%.3f checksum ok\n", (unsigned long long)up_fnv, seconds);
  return 0;
}
