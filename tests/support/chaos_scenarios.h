// One scenario per wire fault (tools/chaos), run through the chaos proxy between our client on
// one front end (fault_client.h) and our blocking server, on one backend: the kernel transport
// in the lab, the userspace transport natively. Each asserts exactly what the user of that
// front end sees, what the server sees, that the proxy really applied the fault, and that no
// fd leaked. Failures are doctest CHECKs and REQUIREs.
#pragma once

#include "ktls/conn/backend.h"
#include "tests/support/fault_client.h"

namespace wasi_ktls::test {

void chaos_none(FrontEnd f, Backend b);               // the proxy alone changes nothing
void chaos_flip_byte(FrontEnd f, Backend b);
void chaos_truncate_record(FrontEnd f, Backend b);
void chaos_fin(FrontEnd f, Backend b);
void chaos_rst(FrontEnd f, Backend b);
void chaos_stall(FrontEnd f, Backend b);
void chaos_split_coalesce(FrontEnd f, Backend b);     // TLS 1.2 and TLS 1.3
void chaos_inject_alert(FrontEnd f, Backend b);
void chaos_inject_key_update(FrontEnd f, Backend b);
void chaos_data_after_close(FrontEnd f, Backend b);

}  // namespace wasi_ktls::test
