/* SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104) and PBKDF2-HMAC-SHA-256 (RFC 8018), in plain C
 * for guests: a wasm guest has no OpenSSL, and SCRAM-SHA-256 (scram.h) needs all three. */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

typedef struct {
  uint32_t h[8];
  uint64_t total;     /* bytes hashed so far */
  uint8_t block[64];  /* a partial block */
  size_t used;
} sha256_t;

void sha256_init(sha256_t *s);
void sha256_update(sha256_t *s, const void *data, size_t len);
void sha256_final(sha256_t *s, uint8_t out[SHA256_LEN]);
void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);

typedef struct {
  sha256_t inner;
  uint8_t opad[64];
} hmac_sha256_t;

void hmac_sha256_init(hmac_sha256_t *m, const void *key, size_t key_len);
void hmac_sha256_update(hmac_sha256_t *m, const void *data, size_t len);
void hmac_sha256_final(hmac_sha256_t *m, uint8_t out[SHA256_LEN]);
void hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                 uint8_t out[SHA256_LEN]);

/* One 32-byte block of PBKDF2 (SCRAM's Hi()): exactly what SCRAM-SHA-256 asks for. */
void pbkdf2_sha256(const void *password, size_t password_len, const void *salt, size_t salt_len,
                   uint32_t iterations, uint8_t out[SHA256_LEN]);

#endif /* SHA256_H */
