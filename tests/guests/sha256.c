#include "sha256.h"

#include <string.h>

static const uint32_t k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return x >> n | x << (32 - n); }

static void compress(uint32_t h[8], const uint8_t block[64]) {
  uint32_t w[64], a, b, c, d, e, f, g, hh;
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
           (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3;
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10;
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void sha256_init(sha256_t *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->total = 0;
  s->used = 0;
}

void sha256_update(sha256_t *s, const void *data, size_t len) {
  const uint8_t *p = (const uint8_t *)data;
  s->total += len;
  while (len > 0) {
    size_t n = 64 - s->used < len ? 64 - s->used : len;
    memcpy(s->block + s->used, p, n);
    s->used += n;
    p += n;
    len -= n;
    if (s->used == 64) {
      compress(s->h, s->block);
      s->used = 0;
    }
  }
}

void sha256_final(sha256_t *s, uint8_t out[SHA256_LEN]) {
  const uint64_t bits = s->total * 8;
  uint8_t pad[72] = {0x80};
  /* 0x80, zeros up to 56 mod 64, then the length in bits, big-endian */
  size_t pad_len = (s->used < 56 ? 56 : 120) - s->used;
  for (int i = 0; i < 8; ++i) pad[pad_len + i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(s, pad, pad_len + 8);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = (uint8_t)(s->h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
    out[4 * i + 3] = (uint8_t)s->h[i];
  }
}

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]) {
  sha256_t s;
  sha256_init(&s);
  sha256_update(&s, data, len);
  sha256_final(&s, out);
}

void hmac_sha256_init(hmac_sha256_t *m, const void *key, size_t key_len) {
  uint8_t k0[64] = {0}, ipad[64];
  if (key_len > 64)
    sha256(key, key_len, k0);  /* a long key is hashed first */
  else
    memcpy(k0, key, key_len);
  for (int i = 0; i < 64; ++i) {
    ipad[i] = k0[i] ^ 0x36;
    m->opad[i] = k0[i] ^ 0x5c;
  }
  sha256_init(&m->inner);
  sha256_update(&m->inner, ipad, 64);
}

void hmac_sha256_update(hmac_sha256_t *m, const void *data, size_t len) {
  sha256_update(&m->inner, data, len);
}

void hmac_sha256_final(hmac_sha256_t *m, uint8_t out[SHA256_LEN]) {
  uint8_t inner[SHA256_LEN];
  sha256_t outer;
  sha256_final(&m->inner, inner);
  sha256_init(&outer);
  sha256_update(&outer, m->opad, 64);
  sha256_update(&outer, inner, SHA256_LEN);
  sha256_final(&outer, out);
}

void hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                 uint8_t out[SHA256_LEN]) {
  hmac_sha256_t m;
  hmac_sha256_init(&m, key, key_len);
  hmac_sha256_update(&m, data, len);
  hmac_sha256_final(&m, out);
}

void pbkdf2_sha256(const void *password, size_t password_len, const void *salt, size_t salt_len,
                   uint32_t iterations, uint8_t out[SHA256_LEN]) {
  static const uint8_t first_block[4] = {0, 0, 0, 1};  /* INT(1) */
  uint8_t u[SHA256_LEN];
  hmac_sha256_t m;
  hmac_sha256_init(&m, password, password_len);  /* U1 = HMAC(P, S || INT(1)) */
  hmac_sha256_update(&m, salt, salt_len);
  hmac_sha256_update(&m, first_block, 4);
  hmac_sha256_final(&m, u);
  memcpy(out, u, SHA256_LEN);
  for (uint32_t i = 1; i < iterations; ++i) {  /* Ui = HMAC(P, Ui-1); out = U1 ^ ... ^ Uc */
    hmac_sha256(password, password_len, u, SHA256_LEN, u);
    for (int j = 0; j < SHA256_LEN; ++j) out[j] ^= u[j];
  }
}
