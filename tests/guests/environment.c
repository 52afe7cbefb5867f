/* environment: prints the variables the host gave it, one NAME=VALUE line each, as
 * wasi:cli/environment's get-environment lists them, then checks that wasi-libc's `environ`
 * (wasi_snapshot_preview1 environ_sizes_get/environ_get) holds the same, in the same order.
 * Prints "N variables, the same both ways"; 0 when they agree, 1 when not. */
#include "guest_util.h"

extern char **environ;  /* wasi-libc fills it from environ_get on first use */

WK_DEFINE_CABI_REALLOC()

int main(void) {
  wk_list_env_t env;
  size_t i = 0;
  int same = 1;
  wk_get_environment(&env);
  for (; i < env.len; ++i) {
    const wk_env_var_t *v = &env.ptr[i];
    char line[4096];
    snprintf(line, sizeof line, "%.*s=%.*s", (int)v->name.len, (const char *)v->name.ptr,
             (int)v->value.len, (const char *)v->value.ptr);
    say("%s", line);
    if (!environ[i] || strcmp(environ[i], line) != 0) same = 0;
    if (v->name.len > 0) free(v->name.ptr);  /* 0-byte strings were never allocated */
    if (v->value.len > 0) free(v->value.ptr);
  }
  if (environ[i]) same = 0;  /* environ has more */
  if (env.len > 0) free(env.ptr);
  say(same ? "%zu variables, the same both ways" : "%zu variables, environ differs", env.len);
  return same ? 0 : 1;
}
