// Carrying out a Step now, without waiting (MSG_DONTWAIT on socket calls), for any driver:
// the steps that never wait always come here; the blocking and Asio drivers also bring their
// socket steps here and wait for readiness themselves on -EAGAIN.
#pragma once

#include "ktls/conn/step.h"

namespace wasi_ktls {

// The result the core's complete() takes: a count or value >= 0, or -errno (-EAGAIN: the
// socket is not ready; wait for step.poll_events() and try again). `splice` needs an Engine
// and gives -EOPNOTSUPP here.
long perform_now(int fd, const Step& step);

}  // namespace wasi_ktls
