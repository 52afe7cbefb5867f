// The benchmark's cases and how one sample of each is taken. A case is one row: a scenario
// (bulk, rr, file, handshakes, idle, wasm, count), a system and a parameter. Its samples are
// JSON objects of raw measurements; report.h turns them into tables and plots.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace wasi_ktls::bench {

using Json = nlohmann::ordered_json;

// Where the harness runs and how big a run is.
struct Env {
  std::string self;     // this executable (the workers and `serve` are it)
  std::string work;     // scratch directory (PKI, files, logs)
  std::string guests;   // built wasm guests (bazel-bin/tests/guests)
  bool quick = false;
  bool smoke = false;   // seconds: the tiniest sizes, one sample (tools/test)
  bool lab = false;     // inside the kernel lab (UML: generic C crypto)
  bool kernel_tls = false;  // this kernel takes TLS 1.3 AES-128-GCM keys both ways
  std::string kernel;   // uname -r
};

struct Case {
  std::string id;        // "bulk/ours-userspace/16KiB": what --only matches
  std::string scenario;  // bulk, rr, file, handshakes, idle, wasm, count
  std::string system;    // the row's name in tables
  std::string param;     // "16 KiB", "64 B", "ECDSA P-256, TLS 1.3", "1000 connections"
  double x = 0;          // the parameter as a number, for plots (bytes, connections)
  bool needs_kernel_tls = false;  // runs only where the kernel does TLS (else in the lab)
  int samples = 3;
  // Samples taken first and dropped. None where each sample starts from scratch anyway (a
  // fresh server whose one-time set-up a first connection absorbs; instruction counts).
  int warmups = 1;
  // Takes one sample; it may start servers once (the case owns what `setup` returns).
  std::function<Result<Json>(const Env&)> sample;
};

std::vector<Case> all_cases(const Env& env);

// Prepares env.work: the test PKI (ECDSA P-256) plus an RSA-2048 server certificate.
Status prepare(const Env& env);

// Takes the case's samples (plus the warm-up), with a progress line on stderr for each.
// The result: {"id","scenario","system","param","x","where","status":"ok|skipped|failed",
// "reason","samples":[...]}.
Json run_case(const Case& c, const Env& env);

}  // namespace wasi_ktls::bench
