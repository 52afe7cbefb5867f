/* The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: no channel
 * binding ("n,,"), an empty user name (the server takes the startup message's), and the
 * password used as given: SASLprep leaves ASCII unchanged, and only ASCII passwords are meant
 * here. Every function returns 0, or -1 with the reason in s->error. */
#ifndef SCRAM_H
#define SCRAM_H

#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

#define SCRAM_NONCE_BYTES 18  /* random bytes in the client nonce (24 base64 characters) */
#define SCRAM_MAX_MESSAGE 512

typedef struct {
  char client_nonce[4 * SCRAM_NONCE_BYTES / 3 + 1];
  char client_first_bare[64];
  char auth_message[3 * SCRAM_MAX_MESSAGE];  /* client-first-bare,server-first,client-final-without-proof */
  uint8_t server_signature[SHA256_LEN];      /* what the server must prove it knows */
  char error[256];
} scram_t;

/* client-first-message: "n,,n=,r=" and the nonce made from `random`. */
int scram_client_first(scram_t *s, const uint8_t random[SCRAM_NONCE_BYTES], char *out,
                       size_t cap, size_t *len);
/* client-final-message (with the proof) for the server-first-message. */
int scram_client_final(scram_t *s, const char *password, const char *server_first,
                       size_t server_first_len, char *out, size_t cap, size_t *len);
/* Checks the server-final-message: "v=" and the signature only a server that holds the
 * password's verifier can compute ("e=..." is the server's refusal). */
int scram_check_server_final(scram_t *s, const char *server_final, size_t len);

#endif /* SCRAM_H */
