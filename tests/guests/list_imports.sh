#!/usr/bin/env bash
# list_imports.sh GUEST.wasm: one line per import, "module.field (params) -> results", sorted:
# what a host must provide, with the core type it must declare.
set -euo pipefail
{ wasm-objdump -x -j Type "$1"; wasm-objdump -x -j Import "$1"; } | awk '
  /^ - type\[[0-9]+\] / {
    i = $2; gsub(/[^0-9]/, "", i)
    t = $0; sub(/^ - type\[[0-9]+\] /, "", t)
    type[i] = t
  }
  /^ - func\[[0-9]+\] sig=[0-9]+ / { s = $3; gsub(/[^0-9]/, "", s); print $NF "  " type[s] }
' | sort
