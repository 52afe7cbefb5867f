#include "bench/channel.h"

namespace wasi_ktls::bench {

Result<std::unique_ptr<Channel>> open_channel(const std::string& system, bool server, UniqueFd fd,
                                              const TlsSetup& tls) {
  if (system == "tcp") return open_tcp(std::move(fd));
  if (system == "openssl") return open_openssl(server, false, std::move(fd), tls);
  if (system == "openssl-ktls") return open_openssl(server, true, std::move(fd), tls);
  if (system == "ours-kernel") return open_ours(server, true, std::move(fd), tls);
  if (system == "ours-userspace") return open_ours(server, false, std::move(fd), tls);
  if (system == "asio") return open_asio(server, std::move(fd), tls);
  return make_error(ErrorKind::usage, "unknown system '{}'", system);
}

}  // namespace wasi_ktls::bench
