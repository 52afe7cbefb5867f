/* hostile_bad_utf8_name HOST PORT
 * Hostile: [constructor]client-handshake on real TCP streams (HOST:PORT need only accept TCP)
 * with a server name of bytes 0xff 0xfe, which is not UTF-8. A WIT string must be; the host
 * must trap. */
#include "guest_util.h"

WK_DEFINE_CABI_REALLOC()

int main(int argc, char **argv) {
  if (argc != 3) usage(argv[0], "HOST PORT");
  static const char name[] = {(char)0xff, (char)0xfe};
  wk_conn_t c;
  connect_or_exit(&c, argv[1], argv[2]);
  say("calling [constructor]client-handshake with server name bytes ff fe (not UTF-8)");
  wk_client_handshake_new(name, sizeof name, c.input, c.output);
  say("the host did not trap");
  return 1;
}
