#include "handshake/traffic_keys.h"

#include <openssl/crypto.h>

namespace wasi_ktls {

DirectionKeys::DirectionKeys(const DirectionKeys&) = default;
DirectionKeys& DirectionKeys::operator=(const DirectionKeys&) = default;

DirectionKeys::~DirectionKeys() {
  OPENSSL_cleanse(key.data(), key.size());
  OPENSSL_cleanse(iv.data(), iv.size());
  OPENSSL_cleanse(secret.data(), secret.size());
}

TrafficSecrets::~TrafficSecrets() {
  OPENSSL_cleanse(tx.data(), tx.size());
  OPENSSL_cleanse(rx.data(), rx.size());
}

}  // namespace wasi_ktls
