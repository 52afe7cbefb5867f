// One client slot of the soak: connects, then exchanges messages (a request the server checks,
// a reply of the same length it checks itself) with random pauses, now and then closing,
// cleanly or abruptly, and connecting again; once the group is stopping it closes cleanly
// and stays closed.
#pragma once

#include <memory>

#include "bench/soak/group_context.h"

namespace wasi_ktls::soak {

// Starts slot `slot` on the group's engine thread; it keeps itself alive through its
// callbacks and is gone when it has closed for good.
void start_client(GroupContext& group, unsigned slot);

}  // namespace wasi_ktls::soak
