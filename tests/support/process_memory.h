// Looks for a byte pattern in this process's own memory: the evidence that a secret (a private
// key's PEM text, traffic keys after a kTLS hand-over) left no copy behind, in live or in freed
// memory, once its owner is gone.
//
// The scan reads the memory through /proc/self/mem with pread, never through pointers, so
// freed or poisoned memory is read without undefined behaviour and without tripping ASan. It
// covers every private writable mapping ([heap], anonymous memory, [stack], thread stacks,
// libraries' .data/.bss), which is where copies made by this process can live. It skips:
//   - read-only and shared mappings (file contents, io_uring rings, device memory): not where
//     this process keeps its own copies, and reading some of them has side effects;
//   - mappings over 4 GiB: address-space reservations (ASan's shadow memory), not data;
//   - pages never written (neither present nor swapped out, says /proc/self/pagemap);
//   - its own scratch memory, which it maps outside the heap so that the scan allocates
//     nothing from it (a malloc could reuse, and overwrite, the very freed chunk a test looks
//     for) and so that it never finds the copies it reads in.
// A pattern straddling two mappings is not found.
//
// The needle itself must not be in memory while the scan runs, or the scan finds it: keep it
// masked (`masked`, XOR with a byte) and search with process_memory_contains_masked, which
// compares without ever unmasking it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace wasi_ktls::test {

// What one scan covered, for a test to report or to check that the memory it cares about was
// looked at.
struct MemoryScanStats {
  std::size_t mappings = 0;          // scanned
  std::size_t bytes = 0;             // read and searched
  std::size_t skipped_mappings = 0;  // private writable, but over the size limit
  std::size_t untouched_bytes = 0;   // never written (/proc/self/pagemap): not read
  std::size_t unreadable_bytes = 0;  // pread failed (device memory, unmapped meanwhile)
};

// Each byte of `plain` XOR `mask`.
std::vector<std::uint8_t> masked(std::span<const std::uint8_t> plain, std::uint8_t mask);

// Whether the bytes of `needle` occur anywhere in the scanned memory. An error if the scan
// could not run at all (no /proc, needle empty or over 64 KiB), never a silent "not found".
// A needle in writable memory finds itself: use this one for needles in read-only memory
// (string literals) or to show that something is there, the masked one to show it is gone.
Result<bool> process_memory_contains(std::span<const std::uint8_t> needle,
                                     MemoryScanStats* stats = nullptr);
// The same for the needle whose bytes XOR `mask` are `masked_needle`.
Result<bool> process_memory_contains_masked(std::span<const std::uint8_t> masked_needle,
                                            std::uint8_t mask, MemoryScanStats* stats = nullptr);

}  // namespace wasi_ktls::test
