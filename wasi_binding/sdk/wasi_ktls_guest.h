/* wasi_ktls_guest.h: the guest side of wasi-ktls, one header for C11 or later (wasi-libc's
 * own socket headers need C11) and C++.
 *
 * A guest is a WebAssembly core module built with clang-14 for wasm32-wasi. It calls the
 * host through the imports declared below, with the exact core signatures that the canonical
 * ABI gives the WIT functions (lowered by hand: there is no wit-bindgen here), and gives the
 * host two exports:
 *   - `cabi_realloc`, through which the host allocates every list and string it returns
 *     (stream reads, error texts, poll results): WK_DEFINE_CABI_REALLOC(), once per module.
 *     Such memory belongs to the guest afterwards, which frees it with free().
 *   - an entry point: either a plain command (`main`, built as usual: the host calls
 *     `_start`), or a reactor (`-mexec-model=reactor`) with WK_RUN_MAIN(), which exports
 *     `wasi:cli/run@0.2.0#run` calling the same `main`. Reactors are what the component
 *     model expects; commands work too because the host looks inside the wrapper wasm-ld puts
 *     around a command's cabi_realloc.
 *
 * Handles are u32 and never 0, so 0 means "none" in the helpers' structs. Resources form a
 * tree: pollables belong to what they watch, streams to their socket or TLS connection.
 * Drop children first (pollables, then streams, then the client-connection, then the
 * tcp-socket): the host traps on a parent dropped before its children.
 *
 * The helpers at the end (wk_tcp_connect, wk_tls_handshake, wk_write_all, wk_read_some,
 * wk_close_output, wk_conn_close) cover a TLS client; they return 0 or -1 and leave the
 * reason in wk_conn_t.error. See README.md next to this file for an example.
 */
#ifndef WASI_KTLS_GUEST_H
#define WASI_KTLS_GUEST_H

#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifdef __cplusplus
#define WK_EXTERN_C extern "C"
#define WK_STATIC_ASSERT(cond) static_assert(cond, #cond)
#define WK_ALIGNOF(type) alignof(type)
extern "C" {
#else
#define WK_EXTERN_C
#define WK_STATIC_ASSERT(cond) _Static_assert(cond, #cond)
#define WK_ALIGNOF(type) _Alignof(type)
#endif

#define WK_IMPORT(module, name) __attribute__((import_module(module), import_name(name)))
#define WK_LAYOUT(type, size, align) \
  WK_STATIC_ASSERT(sizeof(type) == (size)); WK_STATIC_ASSERT(WK_ALIGNOF(type) == (align))
#define WK_AT(type, field, offset) WK_STATIC_ASSERT(offsetof(type, field) == (offset))

/* ---- Return areas: the canonical ABI's memory layout of each result, checked ---------- */

typedef struct { uint8_t *ptr; size_t len; } wk_bytes_t;  /* string or list<u8> */
typedef struct { uint32_t *ptr; size_t len; } wk_list_u32_t;
WK_LAYOUT(wk_bytes_t, 8, 4);

/* wasi:io/streams stream-error: variant { last-operation-failed(own<error>), closed } */
#define WK_STREAM_ERROR_LAST_OPERATION_FAILED 0
#define WK_STREAM_ERROR_CLOSED 1
typedef struct { uint8_t tag; uint32_t error; } wk_stream_error_t;
WK_LAYOUT(wk_stream_error_t, 8, 4);

/* result<list<u8>, stream-error>: read, blocking-read */
typedef struct {
  uint8_t is_err;
  union { wk_bytes_t ok; wk_stream_error_t err; } val;
} wk_read_result_t;
WK_LAYOUT(wk_read_result_t, 12, 4); WK_AT(wk_read_result_t, val, 4);
/* result<u64, stream-error>: check-write, skip, splice */
typedef struct {
  uint8_t is_err;
  union { uint64_t ok; wk_stream_error_t err; } val;
} wk_u64_result_t;
WK_LAYOUT(wk_u64_result_t, 16, 8); WK_AT(wk_u64_result_t, val, 8);
/* result<_, stream-error>: write, flush, write-zeroes */
typedef struct { uint8_t is_err; wk_stream_error_t err; } wk_unit_result_t;
WK_LAYOUT(wk_unit_result_t, 12, 4); WK_AT(wk_unit_result_t, err, 4);

/* wasi:sockets/network error-code, in WIT order */
enum {
  WK_ERROR_CODE_UNKNOWN, WK_ERROR_CODE_ACCESS_DENIED, WK_ERROR_CODE_NOT_SUPPORTED,
  WK_ERROR_CODE_INVALID_ARGUMENT, WK_ERROR_CODE_OUT_OF_MEMORY, WK_ERROR_CODE_TIMEOUT,
  WK_ERROR_CODE_CONCURRENCY_CONFLICT, WK_ERROR_CODE_NOT_IN_PROGRESS, WK_ERROR_CODE_WOULD_BLOCK,
  WK_ERROR_CODE_INVALID_STATE, WK_ERROR_CODE_NEW_SOCKET_LIMIT, WK_ERROR_CODE_ADDRESS_NOT_BINDABLE,
  WK_ERROR_CODE_ADDRESS_IN_USE, WK_ERROR_CODE_REMOTE_UNREACHABLE, WK_ERROR_CODE_CONNECTION_REFUSED,
  WK_ERROR_CODE_CONNECTION_RESET, WK_ERROR_CODE_CONNECTION_ABORTED,
  WK_ERROR_CODE_DATAGRAM_TOO_LARGE, WK_ERROR_CODE_NAME_UNRESOLVABLE,
  WK_ERROR_CODE_TEMPORARY_RESOLVER_FAILURE, WK_ERROR_CODE_PERMANENT_RESOLVER_FAILURE
};
enum { WK_IPV4, WK_IPV6 };                                       /* ip-address-family */
enum { WK_SHUTDOWN_RECEIVE, WK_SHUTDOWN_SEND, WK_SHUTDOWN_BOTH }; /* shutdown-type */

typedef struct { uint16_t port; uint8_t address[4]; } wk_ipv4_socket_address_t;
typedef struct {
  uint16_t port; uint32_t flow_info; uint16_t address[8]; uint32_t scope_id;
} wk_ipv6_socket_address_t;
typedef struct {
  uint8_t tag;  /* WK_IPV4 or WK_IPV6 */
  union { wk_ipv4_socket_address_t ipv4; wk_ipv6_socket_address_t ipv6; } val;
} wk_ip_socket_address_t;
typedef struct { uint8_t tag; union { uint8_t ipv4[4]; uint16_t ipv6[8]; } val; } wk_ip_address_t;
WK_LAYOUT(wk_ipv4_socket_address_t, 6, 2); WK_AT(wk_ipv4_socket_address_t, address, 2);
WK_LAYOUT(wk_ipv6_socket_address_t, 28, 4); WK_AT(wk_ipv6_socket_address_t, flow_info, 4);
WK_AT(wk_ipv6_socket_address_t, address, 8); WK_AT(wk_ipv6_socket_address_t, scope_id, 24);
WK_LAYOUT(wk_ip_socket_address_t, 32, 4); WK_AT(wk_ip_socket_address_t, val, 4);
WK_LAYOUT(wk_ip_address_t, 18, 2); WK_AT(wk_ip_address_t, val, 2);

/* result<_, error-code> */
typedef struct { uint8_t is_err; uint8_t err; } wk_sock_unit_result_t;
WK_LAYOUT(wk_sock_unit_result_t, 2, 1);
/* result<own<R>, error-code>: create-tcp-socket, resolve-addresses */
typedef struct { uint8_t is_err; union { uint32_t ok; uint8_t err; } val; } wk_sock_handle_result_t;
WK_LAYOUT(wk_sock_handle_result_t, 8, 4); WK_AT(wk_sock_handle_result_t, val, 4);
/* result<tuple<input-stream, output-stream>, error-code>: finish-connect */
typedef struct {
  uint8_t is_err;
  union { struct { uint32_t input; uint32_t output; } ok; uint8_t err; } val;
} wk_finish_connect_result_t;
WK_LAYOUT(wk_finish_connect_result_t, 12, 4); WK_AT(wk_finish_connect_result_t, val, 4);
/* result<ip-socket-address, error-code>: local-address, remote-address */
typedef struct {
  uint8_t is_err;
  union { wk_ip_socket_address_t ok; uint8_t err; } val;
} wk_sock_address_result_t;
WK_LAYOUT(wk_sock_address_result_t, 36, 4); WK_AT(wk_sock_address_result_t, val, 4);
/* result<u64, error-code>: receive-buffer-size, send-buffer-size */
typedef struct { uint8_t is_err; union { uint64_t ok; uint8_t err; } val; } wk_sock_u64_result_t;
WK_LAYOUT(wk_sock_u64_result_t, 16, 8); WK_AT(wk_sock_u64_result_t, val, 8);
/* result<option<ip-address>, error-code>: resolve-next-address */
typedef struct {
  uint8_t is_err;
  union { struct { uint8_t is_some; wk_ip_address_t address; } ok; uint8_t err; } val;
} wk_resolve_next_result_t;
WK_LAYOUT(wk_resolve_next_result_t, 22, 2); WK_AT(wk_resolve_next_result_t, val.ok.address, 4);

/* future-client-streams.get: option<result<result<tuple<client-connection, input-stream,
 * output-stream>, io-error>>>. The three discriminants are one byte each, 4 bytes apart. */
typedef struct { uint32_t connection; uint32_t input; uint32_t output; } wk_client_streams_t;
typedef struct {
  uint8_t is_some;   /* 0: the handshake is still running */
  uint8_t pad0_[3];
  uint8_t is_err;    /* 1: an earlier get already took the value */
  uint8_t pad1_[3];
  uint8_t failed;    /* 1: the handshake failed, val.error says why */
  uint8_t pad2_[3];
  union { wk_client_streams_t streams; uint32_t error; } val;
} wk_future_streams_result_t;
WK_LAYOUT(wk_future_streams_result_t, 24, 4); WK_AT(wk_future_streams_result_t, is_err, 4);
WK_AT(wk_future_streams_result_t, failed, 8); WK_AT(wk_future_streams_result_t, val, 12);

/* ---- Imports --------------------------------------------------------------------------- */

#define WK_TLS "wasi:tls/types@0.2.0-draft"
WK_IMPORT(WK_TLS, "[constructor]client-handshake")
uint32_t wk_client_handshake_new(const char *server_name, size_t len, uint32_t input,
                                 uint32_t output);
WK_IMPORT(WK_TLS, "[static]client-handshake.finish")
uint32_t wk_client_handshake_finish(uint32_t handshake);
WK_IMPORT(WK_TLS, "[method]client-connection.close-output")
void wk_client_connection_close_output(uint32_t conn);
WK_IMPORT(WK_TLS, "[method]future-client-streams.subscribe")
uint32_t wk_future_client_streams_subscribe(uint32_t future);
WK_IMPORT(WK_TLS, "[method]future-client-streams.get")
void wk_future_client_streams_get(uint32_t future, wk_future_streams_result_t *ret);
WK_IMPORT(WK_TLS, "[resource-drop]client-handshake")
void wk_client_handshake_drop(uint32_t handshake);
WK_IMPORT(WK_TLS, "[resource-drop]client-connection") void wk_client_connection_drop(uint32_t conn);
WK_IMPORT(WK_TLS, "[resource-drop]future-client-streams")
void wk_future_client_streams_drop(uint32_t future);

#define WK_ERROR "wasi:io/error@0.2.0"
WK_IMPORT(WK_ERROR, "[method]error.to-debug-string")
void wk_error_to_debug_string(uint32_t error, wk_bytes_t *ret);
WK_IMPORT(WK_ERROR, "[resource-drop]error") void wk_error_drop(uint32_t error);

#define WK_POLL "wasi:io/poll@0.2.0"
WK_IMPORT(WK_POLL, "[method]pollable.ready") int32_t wk_pollable_ready(uint32_t pollable);
WK_IMPORT(WK_POLL, "[method]pollable.block") void wk_pollable_block(uint32_t pollable);
/* ret: indexes into `pollables` of those ready, a list the host allocated (free its ptr) */
WK_IMPORT(WK_POLL, "poll")
void wk_poll(const uint32_t *pollables, size_t count, wk_list_u32_t *ret);
WK_IMPORT(WK_POLL, "[resource-drop]pollable") void wk_pollable_drop(uint32_t pollable);

#define WK_STREAMS "wasi:io/streams@0.2.0"
WK_IMPORT(WK_STREAMS, "[method]input-stream.read")
void wk_input_stream_read(uint32_t in, uint64_t len, wk_read_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]input-stream.blocking-read")
void wk_input_stream_blocking_read(uint32_t in, uint64_t len, wk_read_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]input-stream.skip")
void wk_input_stream_skip(uint32_t in, uint64_t len, wk_u64_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]input-stream.blocking-skip")
void wk_input_stream_blocking_skip(uint32_t in, uint64_t len, wk_u64_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]input-stream.subscribe")
uint32_t wk_input_stream_subscribe(uint32_t in);
WK_IMPORT(WK_STREAMS, "[resource-drop]input-stream") void wk_input_stream_drop(uint32_t in);
WK_IMPORT(WK_STREAMS, "[method]output-stream.check-write")
void wk_output_stream_check_write(uint32_t out, wk_u64_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.write")
void wk_output_stream_write(uint32_t out, const void *data, size_t len, wk_unit_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.blocking-write-and-flush")
void wk_output_stream_blocking_write_and_flush(uint32_t out, const void *data, size_t len,
                                               wk_unit_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.flush")
void wk_output_stream_flush(uint32_t out, wk_unit_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.blocking-flush")
void wk_output_stream_blocking_flush(uint32_t out, wk_unit_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.write-zeroes")
void wk_output_stream_write_zeroes(uint32_t out, uint64_t len, wk_unit_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.blocking-write-zeroes-and-flush")
void wk_output_stream_blocking_write_zeroes_and_flush(uint32_t out, uint64_t len,
                                                      wk_unit_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.splice")
void wk_output_stream_splice(uint32_t out, uint32_t src, uint64_t len, wk_u64_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.blocking-splice")
void wk_output_stream_blocking_splice(uint32_t out, uint32_t src, uint64_t len,
                                      wk_u64_result_t *ret);
WK_IMPORT(WK_STREAMS, "[method]output-stream.subscribe")
uint32_t wk_output_stream_subscribe(uint32_t out);
WK_IMPORT(WK_STREAMS, "[resource-drop]output-stream") void wk_output_stream_drop(uint32_t out);

WK_IMPORT("wasi:sockets/instance-network@0.2.0", "instance-network")
uint32_t wk_instance_network(void);
WK_IMPORT("wasi:sockets/network@0.2.0", "[resource-drop]network")
void wk_network_drop(uint32_t network);
/* family: WK_IPV4 or WK_IPV6 */
WK_IMPORT("wasi:sockets/tcp-create-socket@0.2.0", "create-tcp-socket")
void wk_create_tcp_socket(uint32_t family, wk_sock_handle_result_t *ret);

#define WK_TCP "wasi:sockets/tcp@0.2.0"
/* The ip-socket-address flattens to its tag and 11 slots: ipv4 = port, 4 octets; ipv6 =
 * port, flow-info, 8 groups, scope-id; unused slots 0. wk_start_connect() fills them. */
WK_IMPORT(WK_TCP, "[method]tcp-socket.start-connect")
void wk_tcp_socket_start_connect(uint32_t socket, uint32_t network, uint32_t tag, uint32_t s0,
                                 uint32_t s1, uint32_t s2, uint32_t s3, uint32_t s4, uint32_t s5,
                                 uint32_t s6, uint32_t s7, uint32_t s8, uint32_t s9, uint32_t s10,
                                 wk_sock_unit_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.finish-connect")
void wk_tcp_socket_finish_connect(uint32_t socket, wk_finish_connect_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.subscribe") uint32_t wk_tcp_socket_subscribe(uint32_t socket);
WK_IMPORT(WK_TCP, "[method]tcp-socket.shutdown")
void wk_tcp_socket_shutdown(uint32_t socket, uint32_t how, wk_sock_unit_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.local-address")
void wk_tcp_socket_local_address(uint32_t socket, wk_sock_address_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.remote-address")
void wk_tcp_socket_remote_address(uint32_t socket, wk_sock_address_result_t *ret);
/* result<bool, error-code> */
typedef struct { uint8_t is_err; uint8_t val; } wk_sock_bool_result_t;
WK_LAYOUT(wk_sock_bool_result_t, 2, 1);
WK_IMPORT(WK_TCP, "[method]tcp-socket.keep-alive-enabled")
void wk_tcp_socket_keep_alive_enabled(uint32_t socket, wk_sock_bool_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.set-keep-alive-enabled")
void wk_tcp_socket_set_keep_alive_enabled(uint32_t socket, uint32_t enabled,
                                          wk_sock_unit_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.set-hop-limit")
void wk_tcp_socket_set_hop_limit(uint32_t socket, uint32_t hops, wk_sock_unit_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.receive-buffer-size")
void wk_tcp_socket_receive_buffer_size(uint32_t socket, wk_sock_u64_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.set-receive-buffer-size")
void wk_tcp_socket_set_receive_buffer_size(uint32_t socket, uint64_t size,
                                           wk_sock_unit_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.send-buffer-size")
void wk_tcp_socket_send_buffer_size(uint32_t socket, wk_sock_u64_result_t *ret);
WK_IMPORT(WK_TCP, "[method]tcp-socket.set-send-buffer-size")
void wk_tcp_socket_set_send_buffer_size(uint32_t socket, uint64_t size, wk_sock_unit_result_t *ret);
WK_IMPORT(WK_TCP, "[resource-drop]tcp-socket") void wk_tcp_socket_drop(uint32_t socket);

#define WK_LOOKUP "wasi:sockets/ip-name-lookup@0.2.0"
WK_IMPORT(WK_LOOKUP, "resolve-addresses")
void wk_resolve_addresses(uint32_t network, const char *name, size_t len,
                          wk_sock_handle_result_t *ret);
WK_IMPORT(WK_LOOKUP, "[method]resolve-address-stream.resolve-next-address")
void wk_resolve_address_stream_resolve_next_address(uint32_t stream, wk_resolve_next_result_t *ret);
WK_IMPORT(WK_LOOKUP, "[method]resolve-address-stream.subscribe")
uint32_t wk_resolve_address_stream_subscribe(uint32_t stream);
WK_IMPORT(WK_LOOKUP, "[resource-drop]resolve-address-stream")
void wk_resolve_address_stream_drop(uint32_t stream);

#define WK_CLOCK "wasi:clocks/monotonic-clock@0.2.0"
WK_IMPORT(WK_CLOCK, "now") uint64_t wk_monotonic_clock_now(void);
WK_IMPORT(WK_CLOCK, "resolution") uint64_t wk_monotonic_clock_resolution(void);
WK_IMPORT(WK_CLOCK, "subscribe-instant")
uint32_t wk_monotonic_clock_subscribe_instant(uint64_t when);
WK_IMPORT(WK_CLOCK, "subscribe-duration")
uint32_t wk_monotonic_clock_subscribe_duration(uint64_t nanoseconds);

#define WK_WALL "wasi:clocks/wall-clock@0.2.0"
typedef struct { uint64_t seconds; uint32_t nanoseconds; } wk_datetime_t;
WK_LAYOUT(wk_datetime_t, 16, 8);
WK_IMPORT(WK_WALL, "now") void wk_wall_clock_now(wk_datetime_t *ret);
WK_IMPORT(WK_WALL, "resolution") void wk_wall_clock_resolution(wk_datetime_t *ret);

#define WK_RANDOM "wasi:random/random@0.2.0"
WK_IMPORT(WK_RANDOM, "get-random-bytes") void wk_get_random_bytes(uint64_t len, wk_bytes_t *ret);
WK_IMPORT(WK_RANDOM, "get-random-u64") uint64_t wk_get_random_u64(void);

/* wasi:cli. Arguments are a list<string>: `len` strings at `ptr`, each a wk_bytes_t. The
 * environment is a list<tuple<string, string>>: what `wasi-ktls run --env` gave the guest. */
typedef struct { wk_bytes_t *ptr; size_t len; } wk_list_string_t;
WK_LAYOUT(wk_list_string_t, 8, 4);
typedef struct { wk_bytes_t name; wk_bytes_t value; } wk_env_var_t;
WK_LAYOUT(wk_env_var_t, 16, 4); WK_AT(wk_env_var_t, value, 8);
typedef struct { wk_env_var_t *ptr; size_t len; } wk_list_env_t;
WK_LAYOUT(wk_list_env_t, 8, 4);
WK_IMPORT("wasi:cli/environment@0.2.0", "get-arguments")
void wk_get_arguments(wk_list_string_t *ret);
WK_IMPORT("wasi:cli/environment@0.2.0", "get-environment")
void wk_get_environment(wk_list_env_t *ret);
/* result<_, _>: 0 ok, 1 err; the host ends the guest with status 0 or 1. */
WK_IMPORT("wasi:cli/exit@0.2.0", "exit") __attribute__((noreturn)) void wk_exit(uint32_t is_err);
WK_IMPORT("wasi:cli/stdin@0.2.0", "get-stdin") uint32_t wk_get_stdin(void);
WK_IMPORT("wasi:cli/stdout@0.2.0", "get-stdout") uint32_t wk_get_stdout(void);
WK_IMPORT("wasi:cli/stderr@0.2.0", "get-stderr") uint32_t wk_get_stderr(void);

/* ---- Exports ----------------------------------------------------------------------------- */

/* cabi_realloc as wit-bindgen defines it: realloc-based, so that free() releases what the host
 * allocated; size 0 gets a non-null, aligned, unusable pointer. malloc aligns to 16, more than
 * any canonical-ABI alignment (8 at most). Out of memory aborts: the host cannot be told. */
#define WK_DEFINE_CABI_REALLOC()                                                            \
  WK_EXTERN_C __attribute__((export_name("cabi_realloc"))) void *cabi_realloc(              \
      void *old_ptr, size_t old_size, size_t align, size_t new_size) {                      \
    void *p;                                                                                \
    (void)old_size;                                                                         \
    if (new_size == 0) return (void *)align;                                                \
    p = realloc(old_ptr, new_size);                                                         \
    if (!p) abort();                                                                        \
    return p;                                                                               \
  }

/* For reactors only (-mexec-model=reactor; wasm-ld would wrap it in a command). wasi-libc's
 * __main_void reads argc/argv (wasi_snapshot_preview1 args_get) and calls main, whichever of
 * the two forms it has; __wasm_call_dtors then runs atexit handlers and flushes stdio, as a
 * command's exit would. run returns result<_, _>: 0 ok, 1 err; for another exit status
 * call exit() inside main. */
#define WK_RUN_MAIN()                                                                       \
  WK_EXTERN_C int __main_void(void);                                                        \
  WK_EXTERN_C void __wasm_call_dtors(void);                                                 \
  WK_EXTERN_C __attribute__((export_name("wasi:cli/run@0.2.0#run"))) int wk_run(void) {     \
    int status = __main_void();                                                             \
    __wasm_call_dtors();                                                                    \
    return status == 0 ? 0 : 1;                                                             \
  }

/* ---- Helpers ----------------------------------------------------------------------------- */

static inline const char *wk_error_code_name(unsigned code) {
  static const char *const names[] = {
      "unknown", "access-denied", "not-supported", "invalid-argument", "out-of-memory",
      "timeout", "concurrency-conflict", "not-in-progress", "would-block", "invalid-state",
      "new-socket-limit", "address-not-bindable", "address-in-use", "remote-unreachable",
      "connection-refused", "connection-reset", "connection-aborted", "datagram-too-large",
      "name-unresolvable", "temporary-resolver-failure", "permanent-resolver-failure"};
  return code < sizeof names / sizeof names[0] ? names[code] : "(bad error-code)";
}

/* start-connect with address `a` flattened into its tag and 11 payload slots. */
static inline void wk_start_connect(uint32_t sock, uint32_t network,
                                    const wk_ip_socket_address_t *a, wk_sock_unit_result_t *ret) {
  if (a->tag == WK_IPV4) {
    const wk_ipv4_socket_address_t *v4 = &a->val.ipv4;
    wk_tcp_socket_start_connect(sock, network, WK_IPV4, v4->port, v4->address[0], v4->address[1],
                                v4->address[2], v4->address[3], 0, 0, 0, 0, 0, 0, ret);
  } else {
    const wk_ipv6_socket_address_t *v6 = &a->val.ipv6;
    wk_tcp_socket_start_connect(sock, network, WK_IPV6, v6->port, v6->flow_info, v6->address[0],
                                v6->address[1], v6->address[2], v6->address[3], v6->address[4],
                                v6->address[5], v6->address[6], v6->address[7], v6->scope_id, ret);
  }
}

/* One client connection: TCP, then TLS over it. */
typedef struct {
  uint32_t network;  /* dropped last: start-connect only borrowed it, but the socket used it */
  uint32_t socket;   /* tcp-socket */
  uint32_t tls;      /* client-connection; 0 while the streams are plain TCP */
  uint32_t input;    /* the TCP streams after wk_tcp_connect, 0 while a handshake owns */
  uint32_t output;   /* them, the plaintext streams after wk_tls_handshake */
  int socket_error;  /* the wasi:sockets error-code of the last failure, -1 if none, */
  const char *socket_call;  /* and the function that returned it ("start-connect"...) */
  char error[256];   /* why the last helper returned -1 */
} wk_conn_t;

#define WK_MAX_ADDRESSES 8

__attribute__((format(printf, 2, 3))) static inline int wk_fail(wk_conn_t *c, const char *fmt,
                                                                ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->error, sizeof c->error, fmt, ap);
  va_end(ap);
  return -1;
}

/* "start-connect 1.2.3.4:443: access-denied" */
static inline int wk_socket_fail(wk_conn_t *c, const char *call, const char *target, uint8_t code) {
  c->socket_error = code;
  c->socket_call = call;
  return wk_fail(c, "%s %s: %s", call, target, wk_error_code_name(code));
}

/* Fails with the text of io-error `error` (which it drops) after `what`. */
static inline int wk_io_error_fail(wk_conn_t *c, const char *what, uint32_t error) {
  wk_bytes_t text;
  wk_error_to_debug_string(error, &text);
  wk_fail(c, "%s: %.*s", what, (int)text.len, (const char *)text.ptr);
  if (text.len > 0) free(text.ptr);  /* a 0-byte string was never malloc'd (cabi_realloc) */
  wk_error_drop(error);
  return -1;
}

static inline int wk_stream_fail(wk_conn_t *c, const char *what, const wk_stream_error_t *e) {
  if (e->tag == WK_STREAM_ERROR_CLOSED) return wk_fail(c, "%s: stream closed", what);
  return wk_io_error_fail(c, what, e->error);
}

/* "1.2.3.4:443" or "[::1]:443", for messages. */
static inline void wk_format_address(const wk_ip_address_t *a, uint16_t port, char *out,
                                     size_t cap) {
  char text[INET6_ADDRSTRLEN];
  if (a->tag == WK_IPV4) {
    inet_ntop(AF_INET, a->val.ipv4, text, sizeof text);
    snprintf(out, cap, "%s:%u", text, port);
  } else {
    uint8_t bytes[16];
    for (int i = 0; i < 8; ++i) {
      bytes[2 * i] = (uint8_t)(a->val.ipv6[i] >> 8);
      bytes[2 * i + 1] = (uint8_t)a->val.ipv6[i];
    }
    inet_ntop(AF_INET6, bytes, text, sizeof text);
    snprintf(out, cap, "[%s]:%u", text, port);
  }
}

/* An IP literal (IPv6 with or without brackets) is used as is, without ip-name-lookup: a host
 * may let a guest connect to an address and still refuse it name lookups. */
static inline int wk_parse_literal(const char *host, wk_ip_address_t *a) {
  char v6[INET6_ADDRSTRLEN];
  uint8_t bytes[16];
  size_t n = strlen(host);
  if (inet_pton(AF_INET, host, bytes) == 1) {
    a->tag = WK_IPV4;
    memcpy(a->val.ipv4, bytes, 4);
    return 1;
  }
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof v6) {
    memcpy(v6, host + 1, n - 2);
    v6[n - 2] = '\0';
    host = v6;
  }
  if (inet_pton(AF_INET6, host, bytes) != 1) return 0;
  a->tag = WK_IPV6;
  for (int i = 0; i < 8; ++i) a->val.ipv6[i] = (uint16_t)(bytes[2 * i] << 8 | bytes[2 * i + 1]);
  return 1;
}

/* Up to `cap` addresses of `host`, in the resolver's order of preference. */
static inline int wk_resolve(wk_conn_t *c, const char *host, wk_ip_address_t *out, size_t cap,
                             size_t *count) {
  wk_sock_handle_result_t r;
  wk_resolve_next_result_t next;
  uint32_t stream, ready = 0;
  int rc = 0;
  *count = 0;
  if (wk_parse_literal(host, &out[0])) {
    *count = 1;
    return 0;
  }
  wk_resolve_addresses(c->network, host, strlen(host), &r);
  if (r.is_err) return wk_socket_fail(c, "resolve-addresses", host, r.val.err);
  stream = r.val.ok;
  while (*count < cap) {
    wk_resolve_address_stream_resolve_next_address(stream, &next);
    if (next.is_err && next.val.err == WK_ERROR_CODE_WOULD_BLOCK) {
      if (!ready) ready = wk_resolve_address_stream_subscribe(stream);
      wk_pollable_block(ready);
      continue;
    }
    if (next.is_err) rc = wk_socket_fail(c, "resolve-next-address", host, next.val.err);
    if (next.is_err || !next.val.ok.is_some) break;
    out[(*count)++] = next.val.ok.address;
  }
  if (ready) wk_pollable_drop(ready);
  wk_resolve_address_stream_drop(stream);
  if (rc == 0 && *count == 0) rc = wk_fail(c, "%s has no address", host);
  return rc;
}

/* One attempt: create-tcp-socket, start-connect, block on the socket, finish-connect. */
static inline int wk_connect_one(wk_conn_t *c, const wk_ip_address_t *a, uint16_t port) {
  wk_ip_socket_address_t sa;
  wk_sock_handle_result_t created;
  wk_sock_unit_result_t started;
  wk_finish_connect_result_t done;
  char target[64];
  uint32_t sock, ready;
  wk_format_address(a, port, target, sizeof target);
  memset(&sa, 0, sizeof sa);
  sa.tag = a->tag;
  if (a->tag == WK_IPV4) {
    sa.val.ipv4.port = port;
    memcpy(sa.val.ipv4.address, a->val.ipv4, 4);
  } else {
    sa.val.ipv6.port = port;
    memcpy(sa.val.ipv6.address, a->val.ipv6, sizeof a->val.ipv6);
  }
  wk_create_tcp_socket(a->tag, &created);
  if (created.is_err) return wk_socket_fail(c, "create-tcp-socket", target, created.val.err);
  sock = created.val.ok;
  wk_start_connect(sock, c->network, &sa, &started);
  if (started.is_err) {
    wk_tcp_socket_drop(sock);
    return wk_socket_fail(c, "start-connect", target, started.err);
  }
  /* Ready once the connection is up or has failed; finish-connect may still say would-block
   * after a spurious wake-up, so it is asked again after the next one. */
  ready = wk_tcp_socket_subscribe(sock);
  do {
    wk_pollable_block(ready);
    wk_tcp_socket_finish_connect(sock, &done);
  } while (done.is_err && done.val.err == WK_ERROR_CODE_WOULD_BLOCK);
  wk_pollable_drop(ready);
  if (done.is_err) {
    wk_tcp_socket_drop(sock);
    return wk_socket_fail(c, "finish-connect", target, done.val.err);
  }
  c->socket = sock;
  c->input = done.val.ok.input;
  c->output = done.val.ok.output;
  return 0;
}

/* Initializes *c and connects it to host:port (a name, or an IPv4/IPv6 literal), trying each
 * address in turn; on failure c->error tells about the last one. Call wk_conn_close(c)
 * afterwards, whatever happened. */
static inline int wk_tcp_connect(wk_conn_t *c, const char *host, uint16_t port) {
  wk_ip_address_t addresses[WK_MAX_ADDRESSES];
  size_t count;
  memset(c, 0, sizeof *c);
  c->socket_error = -1;
  c->network = wk_instance_network();
  if (wk_resolve(c, host, addresses, WK_MAX_ADDRESSES, &count) != 0) return -1;
  for (size_t i = 0; i < count; ++i)
    if (wk_connect_one(c, &addresses[i], port) == 0) return 0;
  return -1;
}

/* TLS client handshake over the connection's TCP streams; `server_name` is sent as SNI and is
 * what the server's certificate must match. On success c->input/c->output are the plaintext
 * streams. On failure c->error holds the host's text (for a rejected certificate it says so);
 * the TCP streams are gone either way: the handshake took them. */
static inline int wk_tls_handshake(wk_conn_t *c, const char *server_name) {
  wk_future_streams_result_t r;
  uint32_t handshake, future, ready;
  handshake = wk_client_handshake_new(server_name, strlen(server_name), c->input, c->output);
  c->input = c->output = 0;
  future = wk_client_handshake_finish(handshake);  /* consumes the handshake */
  ready = wk_future_client_streams_subscribe(future);
  do {
    wk_pollable_block(ready);
    wk_future_client_streams_get(future, &r);
  } while (!r.is_some);
  wk_pollable_drop(ready);  /* before its parent, the future */
  wk_future_client_streams_drop(future);
  if (r.is_err) return wk_fail(c, "TLS handshake with %s: result already taken", server_name);
  if (r.failed) {
    char what[160];
    snprintf(what, sizeof what, "TLS handshake with %s failed", server_name);
    return wk_io_error_fail(c, what, r.val.error);
  }
  c->tls = r.val.streams.connection;
  c->input = r.val.streams.input;
  c->output = r.val.streams.output;
  return 0;
}

/* Blocks until c->output takes bytes (*permit > 0) or fails. *ready is the output's pollable,
 * made on first need and reused; the caller drops it. */
static inline int wk_wait_writable(wk_conn_t *c, uint32_t *ready, uint64_t *permit,
                                   const char *what) {
  wk_u64_result_t r;
  for (;;) {
    wk_output_stream_check_write(c->output, &r);
    if (r.is_err) return wk_stream_fail(c, what, &r.val.err);
    if (r.val.ok > 0) break;
    if (!*ready) *ready = wk_output_stream_subscribe(c->output);
    wk_pollable_block(*ready);
  }
  *permit = r.val.ok;
  return 0;
}

/* Writes all of data[0..len) as the host permits, then flushes and waits for the flush: once
 * it returns 0 every byte has left the guest's hands. */
static inline int wk_write_all(wk_conn_t *c, const void *data, size_t len) {
  const uint8_t *p = (const uint8_t *)data;
  wk_unit_result_t w;
  uint32_t ready = 0;
  uint64_t permit;
  int rc = 0;
  while (len > 0) {
    rc = wk_wait_writable(c, &ready, &permit, "write");
    if (rc != 0) break;
    size_t n = permit < len ? (size_t)permit : len;
    wk_output_stream_write(c->output, p, n, &w);
    if (w.is_err) {
      rc = wk_stream_fail(c, "write", &w.err);
      break;
    }
    p += n;
    len -= n;
  }
  if (rc == 0) {
    wk_output_stream_flush(c->output, &w);
    rc = w.is_err ? wk_stream_fail(c, "flush", &w.err)
                  : wk_wait_writable(c, &ready, &permit, "flush");
  }
  if (ready) wk_pollable_drop(ready);
  return rc;
}

/* Blocks until some bytes arrive and copies up to `cap` of them to buf; *got = 0 means the
 * peer has ended the stream (for TLS: close_notify). The host returns the bytes in memory it
 * allocated through cabi_realloc: copied, then freed. */
static inline int wk_read_some(wk_conn_t *c, void *buf, size_t cap, size_t *got) {
  wk_read_result_t r;
  *got = 0;
  do {
    wk_input_stream_blocking_read(c->input, cap, &r);
    if (r.is_err && r.val.err.tag == WK_STREAM_ERROR_CLOSED) return 0;
    if (r.is_err) return wk_stream_fail(c, "read", &r.val.err);
  } while (r.val.ok.len == 0);  /* an empty read ends nothing: ask again */
  if (r.val.ok.len <= cap) memcpy(buf, r.val.ok.ptr, r.val.ok.len);
  free(r.val.ok.ptr);
  if (r.val.ok.len > cap)
    return wk_fail(c, "read: the host returned %zu bytes, asked for %zu", r.val.ok.len, cap);
  *got = r.val.ok.len;
  return 0;
}

/* TLS half-close: close-output flushes what was written, then sends close_notify. The output
 * reports check-write = 0 while that runs, then `closed` once done; the input stays readable,
 * so the peer's answer can still be read to its end. */
static inline int wk_close_output(wk_conn_t *c) {
  wk_u64_result_t r;
  uint32_t ready;
  int rc;
  wk_client_connection_close_output(c->tls);
  ready = wk_output_stream_subscribe(c->output);
  for (;;) {
    wk_output_stream_check_write(c->output, &r);
    if (r.is_err) {
      rc = r.val.err.tag == WK_STREAM_ERROR_CLOSED ? 0
                                                   : wk_stream_fail(c, "close-output", &r.val.err);
      break;
    }
    if (r.val.ok > 0) {
      rc = wk_fail(c, "close-output: the output still takes %llu bytes",
                   (unsigned long long)r.val.ok);
      break;
    }
    wk_pollable_block(ready);
  }
  wk_pollable_drop(ready);
  return rc;
}

/* Drops what the connection holds, children first: streams, TLS connection, socket, then the
 * network. The helpers drop their pollables themselves. */
static inline void wk_conn_close(wk_conn_t *c) {
  if (c->input) wk_input_stream_drop(c->input);
  if (c->output) wk_output_stream_drop(c->output);
  if (c->tls) wk_client_connection_drop(c->tls);
  if (c->socket) wk_tcp_socket_drop(c->socket);
  if (c->network) wk_network_drop(c->network);
  c->input = c->output = c->tls = c->socket = c->network = 0;
}

#ifdef __cplusplus
}
#endif
#endif /* WASI_KTLS_GUEST_H */
