// The kernel TLS socket options this project uses. <linux/tls.h> has the structs; glibc's
// <sys/socket.h> and <netinet/tcp.h> have SOL_TLS and TCP_ULP since 2.2x, and these fallbacks
// keep older headers building. Every file that touches them includes this one.
#pragma once

#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#ifndef SOL_TLS
#define SOL_TLS 282  // include/linux/socket.h
#endif
#ifndef TCP_ULP
#define TCP_ULP 31  // include/uapi/linux/tcp.h
#endif
