#include "scram.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 2, 3))) static int fail(scram_t *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->error, sizeof s->error, fmt, ap);
  va_end(ap);
  return -1;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes the base64 of data[0..n) and a NUL; out needs 4 * ((n + 2) / 3) + 1 bytes. */
static void base64_encode(const uint8_t *data, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0) |
                 (i + 2 < n ? data[i + 2] : 0);
    out[o++] = b64[v >> 18 & 63];
    out[o++] = b64[v >> 12 & 63];
    out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? b64[v & 63] : '=';
  }
  out[o] = '\0';
}

/* Decodes text[0..n) (padded base64) into out; -1 if it is not base64 or does not fit. */
static int base64_decode(const char *text, size_t n, uint8_t *out, size_t cap, size_t *len) {
  uint32_t v = 0;
  int bits = 0;
  size_t o = 0, pad = 0;
  if (n % 4 != 0) return -1;
  for (size_t i = 0; i < n; ++i) {
    const char *p = text[i] ? strchr(b64, text[i]) : NULL;
    if (text[i] == '=' && i >= n - 2) {
      ++pad;
      continue;
    }
    if (!p || pad > 0) return -1;
    v = v << 6 | (uint32_t)(p - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o == cap) return -1;
      out[o++] = (uint8_t)(v >> bits);
    }
  }
  *len = o;
  return 0;
}

/* The value of attribute `name` ("r", "s", ...) in a comma-separated SCRAM message. */
static int attribute(const char *msg, size_t len, char name, const char **value,
                     size_t *value_len) {
  size_t i = 0;
  while (i < len) {
    size_t end = i;
    while (end < len && msg[end] != ',') ++end;
    if (end - i >= 2 && msg[i] == name && msg[i + 1] == '=') {
      *value = msg + i + 2;
      *value_len = end - i - 2;
      return 0;
    }
    i = end + 1;
  }
  return -1;
}

int scram_client_first(scram_t *s, const uint8_t random[SCRAM_NONCE_BYTES], char *out,
                       size_t cap, size_t *len) {
  base64_encode(random, SCRAM_NONCE_BYTES, s->client_nonce);
  snprintf(s->client_first_bare, sizeof s->client_first_bare, "n=,r=%s", s->client_nonce);
  int n = snprintf(out, cap, "n,,%s", s->client_first_bare);
  if (n < 0 || (size_t)n >= cap) return fail(s, "client-first-message: buffer too small");
  *len = (size_t)n;
  return 0;
}

int scram_client_final(scram_t *s, const char *password, const char *server_first,
                       size_t server_first_len, char *out, size_t cap, size_t *len) {
  const char *nonce, *salt64, *iter_text;
  size_t nonce_len, salt64_len, iter_len, salt_len;
  uint8_t salt[64], salted[SHA256_LEN], client_key[SHA256_LEN], stored_key[SHA256_LEN],
      signature[SHA256_LEN], server_key[SHA256_LEN];
  char iter_buf[16], *end, without_proof[SCRAM_MAX_MESSAGE], proof64[4 * SHA256_LEN / 3 + 4];
  const size_t client_nonce_len = strlen(s->client_nonce);

  if (server_first_len >= SCRAM_MAX_MESSAGE)
    return fail(s, "server-first-message: %zu bytes, too long", server_first_len);
  if (server_first_len > 0 && server_first[0] == 'm')
    return fail(s, "server-first-message: a mandatory extension this client does not know");
  if (attribute(server_first, server_first_len, 'r', &nonce, &nonce_len) != 0 ||
      attribute(server_first, server_first_len, 's', &salt64, &salt64_len) != 0 ||
      attribute(server_first, server_first_len, 'i', &iter_text, &iter_len) != 0)
    return fail(s, "server-first-message: no r=, s= or i=: %.*s", (int)server_first_len,
                server_first);
  if (nonce_len <= client_nonce_len || memcmp(nonce, s->client_nonce, client_nonce_len) != 0)
    return fail(s, "server-first-message: the nonce does not extend ours");
  if (base64_decode(salt64, salt64_len, salt, sizeof salt, &salt_len) != 0 || salt_len == 0)
    return fail(s, "server-first-message: the salt is not base64 of 1 to 64 bytes");
  if (iter_len == 0 || iter_len >= sizeof iter_buf)
    return fail(s, "server-first-message: bad iteration count");
  memcpy(iter_buf, iter_text, iter_len);
  iter_buf[iter_len] = '\0';
  unsigned long iterations = strtoul(iter_buf, &end, 10);
  /* a bound, so that a hostile server cannot keep the guest hashing for hours */
  if (*end != '\0' || iter_buf[0] < '1' || iter_buf[0] > '9' || iterations > 10000000)
    return fail(s, "server-first-message: iteration count %s out of range", iter_buf);

  int n = snprintf(without_proof, sizeof without_proof, "c=biws,r=%.*s", (int)nonce_len, nonce);
  if (n < 0 || (size_t)n >= sizeof without_proof) return fail(s, "client-final-message too long");
  n = snprintf(s->auth_message, sizeof s->auth_message, "%s,%.*s,%s", s->client_first_bare,
               (int)server_first_len, server_first, without_proof);
  if (n < 0 || (size_t)n >= sizeof s->auth_message) return fail(s, "AuthMessage too long");

  /* SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SaltedPassword, "Client Key");
   * StoredKey = H(ClientKey); ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage) */
  pbkdf2_sha256(password, strlen(password), salt, salt_len, (uint32_t)iterations, salted);
  hmac_sha256(salted, SHA256_LEN, "Client Key", 10, client_key);
  sha256(client_key, SHA256_LEN, stored_key);
  hmac_sha256(stored_key, SHA256_LEN, s->auth_message, strlen(s->auth_message), signature);
  for (int i = 0; i < SHA256_LEN; ++i) client_key[i] ^= signature[i];
  base64_encode(client_key, SHA256_LEN, proof64);
  /* ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage) */
  hmac_sha256(salted, SHA256_LEN, "Server Key", 10, server_key);
  hmac_sha256(server_key, SHA256_LEN, s->auth_message, strlen(s->auth_message),
              s->server_signature);

  n = snprintf(out, cap, "%s,p=%s", without_proof, proof64);
  if (n < 0 || (size_t)n >= cap) return fail(s, "client-final-message: buffer too small");
  *len = (size_t)n;
  return 0;
}

int scram_check_server_final(scram_t *s, const char *server_final, size_t len) {
  const char *v;
  size_t v_len, sig_len;
  uint8_t sig[SHA256_LEN + 2];
  if (attribute(server_final, len, 'e', &v, &v_len) == 0)
    return fail(s, "the server refused: %.*s", (int)v_len, v);
  if (attribute(server_final, len, 'v', &v, &v_len) != 0)
    return fail(s, "server-final-message without v=: %.*s", (int)len, server_final);
  if (base64_decode(v, v_len, sig, sizeof sig, &sig_len) != 0 || sig_len != SHA256_LEN ||
      memcmp(sig, s->server_signature, SHA256_LEN) != 0)
    return fail(s, "the server's signature is wrong: it does not know this password");
  return 0;
}
