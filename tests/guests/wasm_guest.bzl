"""wasm_guest: one C file built into a WebAssembly core module for `wasi-ktls run`."""

# Debian's clang-14 with its wasm32 backend and the wasi-libc sysroot under /usr (outside the
# workspace, but visible inside Bazel's sandbox, which hides nothing under /usr).
_CLANG = "/usr/bin/clang-14 --target=wasm32-wasi --sysroot=/usr"
_SDK_HEADER = "//wasi_binding/sdk:wasi_ktls_guest.h"

def wasm_guest(name, src, reactor = False, hdrs = [], srcs = [], **kwargs):
    """Builds `src` into `name`.wasm against the guest SDK (wasi_ktls_guest.h).

    Args:
      name: the target; the module is name.wasm.
      src: the C source.
      reactor: link a reactor (`_initialize`, no `_start`) instead of a command; a runnable
          reactor exports wasi:cli/run with WK_RUN_MAIN().
      hdrs: headers of this package that `src` includes.
      srcs: more C files of this package, compiled and linked with `src`.
      **kwargs: passed to the genrule (visibility, tags...).
    """
    native.genrule(
        name = name,
        srcs = [src, _SDK_HEADER] + hdrs + srcs,
        outs = [name + ".wasm"],
        cmd = " ".join([
            _CLANG,
            "-O2 -Wall -Wextra -Werror",
            "-mexec-model=reactor" if reactor else "",
            "-I$$(dirname $(location %s))" % _SDK_HEADER,
            "-o $@ $(location %s)" % src,
        ] + ["$(location %s)" % s for s in srcs]),
        message = "Building WebAssembly guest " + name,
        **kwargs
    )
