/* Imports a function this host does not provide (wasi:filesystem): `wasi-ktls run` must refuse
 * to load it, naming the import, and exit 2 without running anything. */
#include <stdint.h>
#include <stdio.h>

__attribute__((import_module("wasi:filesystem/preopens@0.2.0"), import_name("get-directories")))
void get_directories(uint32_t ret);

int main(void) {
  uint32_t area[2];
  get_directories((uint32_t)(uintptr_t)area);
  printf("the host ran a module it cannot provide for\n");
  return 1;
}
