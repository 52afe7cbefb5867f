/* Not a program to run: a module that imports every function wasi_ktls_guest.h declares, so
 * that sdk_imports_test can compare each one's core type with sdk_imports.expected (written
 * from the WIT and the canonical ABI, not from this build). */
#include "wasi_ktls_guest.h"

typedef void (*any_function)(void);

static const any_function imports[] = {
    (any_function)&wk_client_handshake_new,
    (any_function)&wk_client_handshake_finish,
    (any_function)&wk_client_connection_close_output,
    (any_function)&wk_future_client_streams_subscribe,
    (any_function)&wk_future_client_streams_get,
    (any_function)&wk_client_handshake_drop,
    (any_function)&wk_client_connection_drop,
    (any_function)&wk_future_client_streams_drop,
    (any_function)&wk_error_to_debug_string,
    (any_function)&wk_error_drop,
    (any_function)&wk_pollable_ready,
    (any_function)&wk_pollable_block,
    (any_function)&wk_poll,
    (any_function)&wk_pollable_drop,
    (any_function)&wk_input_stream_read,
    (any_function)&wk_input_stream_blocking_read,
    (any_function)&wk_input_stream_skip,
    (any_function)&wk_input_stream_blocking_skip,
    (any_function)&wk_input_stream_subscribe,
    (any_function)&wk_input_stream_drop,
    (any_function)&wk_output_stream_check_write,
    (any_function)&wk_output_stream_write,
    (any_function)&wk_output_stream_blocking_write_and_flush,
    (any_function)&wk_output_stream_flush,
    (any_function)&wk_output_stream_blocking_flush,
    (any_function)&wk_output_stream_write_zeroes,
    (any_function)&wk_output_stream_blocking_write_zeroes_and_flush,
    (any_function)&wk_output_stream_splice,
    (any_function)&wk_output_stream_blocking_splice,
    (any_function)&wk_output_stream_subscribe,
    (any_function)&wk_output_stream_drop,
    (any_function)&wk_instance_network,
    (any_function)&wk_network_drop,
    (any_function)&wk_create_tcp_socket,
    (any_function)&wk_tcp_socket_start_connect,
    (any_function)&wk_tcp_socket_finish_connect,
    (any_function)&wk_tcp_socket_subscribe,
    (any_function)&wk_tcp_socket_shutdown,
    (any_function)&wk_tcp_socket_local_address,
    (any_function)&wk_tcp_socket_remote_address,
    (any_function)&wk_tcp_socket_set_keep_alive_enabled,
    (any_function)&wk_tcp_socket_set_hop_limit,
    (any_function)&wk_tcp_socket_receive_buffer_size,
    (any_function)&wk_tcp_socket_set_receive_buffer_size,
    (any_function)&wk_tcp_socket_send_buffer_size,
    (any_function)&wk_tcp_socket_set_send_buffer_size,
    (any_function)&wk_tcp_socket_drop,
    (any_function)&wk_resolve_addresses,
    (any_function)&wk_resolve_address_stream_resolve_next_address,
    (any_function)&wk_resolve_address_stream_subscribe,
    (any_function)&wk_resolve_address_stream_drop,
    (any_function)&wk_monotonic_clock_now,
    (any_function)&wk_monotonic_clock_resolution,
    (any_function)&wk_monotonic_clock_subscribe_instant,
    (any_function)&wk_monotonic_clock_subscribe_duration,
};

/* Exported so that the linker keeps the table, and with it every import. */
__attribute__((export_name("import_at"))) any_function import_at(unsigned i) {
  return i < sizeof imports / sizeof imports[0] ? imports[i] : 0;
}
