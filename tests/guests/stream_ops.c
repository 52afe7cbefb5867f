/* stream_ops PORT4 PORT6
 * The rest of the host's surface, against two `wasi-ktls serve --echo` servers (127.0.0.1:PORT4
 * and [::1]:PORT6): wasi:cli arguments and exit, wasi:random, both clocks, name lookup, IPv4
 * and IPv6 connect, socket addresses and options, and on a TLS connection write-zeroes, skip,
 * blocking-skip, splice, blocking-splice, poll over several pollables, pollable.ready,
 * close-output and shutdown. Prints "all ok" and leaves through wasi:cli/exit(ok). */
#include <unistd.h>

#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

#define EXPECT(cond)                                                        \
  do {                                                                      \
    if (!(cond)) {                                                          \
      printf("FAILED at line %d: %s\n", __LINE__, #cond);                   \
      fflush(stdout);                                                       \
      return 1;                                                             \
    }                                                                       \
  } while (0)

/* Reads exactly n bytes into buf. */
static int read_exactly(wk_conn_t *c, uint8_t *buf, size_t n) {
  size_t have = 0, got;
  while (have < n) {
    if (wk_read_some(c, buf + have, n - have, &got) != 0 || got == 0) return -1;
    have += got;
  }
  return 0;
}

/* Writes data with check-write + write (no flush wait), then blocking-flush. */
static int send_bytes(wk_conn_t *c, const char *data) { return wk_write_all(c, data, strlen(data)); }

int main(int argc, char **argv) {
  if (argc != 3) usage(argv[0], "PORT4 PORT6");
  const uint16_t port4 = (uint16_t)parse_u64(argv[1], "PORT4");
  const uint16_t port6 = (uint16_t)parse_u64(argv[2], "PORT6");

  /* wasi:cli arguments are the same as main's. */
  wk_list_string_t args;
  wk_get_arguments(&args);
  EXPECT(args.len == 3);
  const wk_bytes_t *arg = args.ptr;
  EXPECT(arg[1].len == strlen(argv[1]) && memcmp(arg[1].ptr, argv[1], arg[1].len) == 0);

  /* random, clocks */
  wk_bytes_t rnd;
  wk_get_random_bytes(32, &rnd);
  EXPECT(rnd.len == 32);
  int nonzero = 0;
  for (size_t i = 0; i < rnd.len; ++i) nonzero |= rnd.ptr[i];
  EXPECT(nonzero);
  EXPECT(wk_get_random_u64() != wk_get_random_u64());
  wk_datetime_t wall;
  wk_wall_clock_now(&wall);
  EXPECT(wall.seconds > 1700000000u && wall.nanoseconds < 1000000000u);
  const uint64_t t0 = wk_monotonic_clock_now();
  usleep(3000);  /* wasi-libc: poll_oneoff on a clock */
  EXPECT(wk_monotonic_clock_now() - t0 >= 3000000u);
  EXPECT(getchar() == EOF);  /* fd_read of stdin, which the test makes /dev/null */

  /* name lookup: localhost has 127.0.0.1 */
  uint32_t net = wk_instance_network();
  wk_sock_handle_result_t lookup;
  wk_resolve_addresses(net, "localhost", 9, &lookup);
  EXPECT(!lookup.is_err);
  int found = 0, count = 0;
  for (;;) {
    wk_resolve_next_result_t next;
    wk_resolve_address_stream_resolve_next_address(lookup.val.ok, &next);
    EXPECT(!next.is_err);
    if (!next.val.ok.is_some) break;
    ++count;
    const wk_ip_address_t *a = &next.val.ok.address;
    if (a->tag == WK_IPV4 && a->val.ipv4[0] == 127 && a->val.ipv4[3] == 1) found = 1;
  }
  wk_resolve_address_stream_drop(lookup.val.ok);
  wk_resolve_addresses(net, "no-such-host.invalid", 20, &lookup);
  /* No such name, or no resolver to ask (the kernel lab has no DNS): a resolver error. */
  EXPECT(lookup.is_err && lookup.val.err >= WK_ERROR_CODE_NAME_UNRESOLVABLE);
  wk_network_drop(net);
  EXPECT(count >= 1 && found);

  /* IPv4: addresses and options */
  wk_conn_t c;
  EXPECT(wk_tcp_connect(&c, "127.0.0.1", port4) == 0);
  wk_sock_address_result_t addr;
  wk_tcp_socket_remote_address(c.socket, &addr);
  EXPECT(!addr.is_err && addr.val.ok.tag == WK_IPV4 && addr.val.ok.val.ipv4.port == port4);
  EXPECT(addr.val.ok.val.ipv4.address[0] == 127 && addr.val.ok.val.ipv4.address[3] == 1);
  wk_tcp_socket_local_address(c.socket, &addr);
  EXPECT(!addr.is_err && addr.val.ok.tag == WK_IPV4 && addr.val.ok.val.ipv4.port != 0);
  wk_sock_unit_result_t unit;
  wk_tcp_socket_set_keep_alive_enabled(c.socket, 1, &unit);
  EXPECT(!unit.is_err);
  wk_sock_bool_result_t ka;
  wk_tcp_socket_keep_alive_enabled(c.socket, &ka);
  EXPECT(!ka.is_err && ka.val == 1);
  wk_tcp_socket_set_send_buffer_size(c.socket, 1 << 20, &unit);
  EXPECT(!unit.is_err);
  wk_sock_u64_result_t size;
  wk_tcp_socket_send_buffer_size(c.socket, &size);
  EXPECT(!size.is_err && size.val.ok > 0);  /* the kernel caps it at net.core.wmem_max */

  /* TLS, then the stream calls through the echo */
  EXPECT(wk_tls_handshake(&c, "localhost") == 0);
  wk_u64_result_t permit;
  wk_unit_result_t wr;
  do wk_output_stream_check_write(c.output, &permit);
  while (!permit.is_err && permit.val.ok < 1000);
  EXPECT(!permit.is_err);
  wk_output_stream_write_zeroes(c.output, 1000, &wr);
  EXPECT(!wr.is_err);
  wk_output_stream_blocking_flush(c.output, &wr);
  EXPECT(!wr.is_err);
  static uint8_t buf[4096];
  EXPECT(read_exactly(&c, buf, 1000) == 0);
  for (int i = 0; i < 1000; ++i) EXPECT(buf[i] == 0);

  EXPECT(send_bytes(&c, "hello world") == 0);
  wk_u64_result_t skipped;
  wk_input_stream_blocking_skip(c.input, 6, &skipped);
  EXPECT(!skipped.is_err && skipped.val.ok >= 1 && skipped.val.ok <= 6);
  uint64_t left = 6 - skipped.val.ok;
  while (left > 0) {  /* skip never waits: it may take less */
    wk_input_stream_skip(c.input, left, &skipped);
    EXPECT(!skipped.is_err);
    left -= skipped.val.ok;
  }
  EXPECT(read_exactly(&c, buf, 5) == 0 && memcmp(buf, "world", 5) == 0);

  /* splice: what the echo sends back goes out again, and comes back once more */
  EXPECT(send_bytes(&c, "splice-me") == 0);
  uint64_t spliced = 0;
  while (spliced < 9) {
    wk_u64_result_t s;
    wk_output_stream_blocking_splice(c.output, c.input, 9 - spliced, &s);
    EXPECT(!s.is_err);
    spliced += s.val.ok;
  }
  wk_output_stream_blocking_flush(c.output, &wr);
  EXPECT(!wr.is_err);
  wk_u64_result_t s0;
  wk_output_stream_splice(c.output, c.input, 0, &s0);  /* nothing asked: nothing moves */
  EXPECT(!s0.is_err && s0.val.ok == 0);
  EXPECT(read_exactly(&c, buf, 9) == 0 && memcmp(buf, "splice-me", 9) == 0);

  /* poll: the input has nothing, a 20 ms timer fires */
  uint32_t in_ready = wk_input_stream_subscribe(c.input);
  uint32_t timer = wk_monotonic_clock_subscribe_duration(20 * 1000 * 1000);
  EXPECT(wk_pollable_ready(in_ready) == 0);
  uint32_t both[2] = {in_ready, timer};
  wk_list_u32_t ready;
  wk_poll(both, 2, &ready);
  EXPECT(ready.len == 1 && ready.ptr[0] == 1);
  free(ready.ptr);
  EXPECT(wk_pollable_ready(timer) == 1);
  wk_pollable_drop(timer);
  wk_pollable_drop(in_ready);

  /* close-output: the server answers our close_notify with its own: the input ends */
  EXPECT(wk_close_output(&c) == 0);
  size_t got = 1;
  EXPECT(wk_read_some(&c, buf, sizeof buf, &got) == 0 && got == 0);
  wk_tcp_socket_shutdown(c.socket, WK_SHUTDOWN_BOTH, &unit);
  EXPECT(!unit.is_err);
  wk_conn_close(&c);

  /* IPv6 */
  wk_conn_t c6;
  EXPECT(wk_tcp_connect(&c6, "::1", port6) == 0);
  wk_tcp_socket_remote_address(c6.socket, &addr);
  EXPECT(!addr.is_err && addr.val.ok.tag == WK_IPV6 && addr.val.ok.val.ipv6.port == port6);
  EXPECT(addr.val.ok.val.ipv6.address[7] == 1);
  EXPECT(wk_tls_handshake(&c6, "localhost") == 0);
  EXPECT(send_bytes(&c6, "six") == 0);
  EXPECT(read_exactly(&c6, buf, 3) == 0 && memcmp(buf, "six", 3) == 0);
  wk_conn_close(&c6);

  printf("all ok\n");
  fflush(stdout);
  wk_exit(0);
}
