// The server side of one group: accepts on its listener, and on each connection checks every
// request and answers with the reply (client.h), until the client ends the connection, which
// it answers with close_notify. An abrupt end between messages is counted as provoked (the
// client made it); anything else is an error.
#pragma once

#include "base/unique_fd.h"
#include "bench/soak/group_context.h"

namespace wasi_ktls::soak {

// Keeps accepting on `listener` (owned by the caller) until the engine shuts down or the
// listener's accept is cancelled.
void start_server(GroupContext& group, int listener);

}  // namespace wasi_ktls::soak
