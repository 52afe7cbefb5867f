#!/usr/bin/env bash
# Tests for tools/kernel-lab. Runs on the host and boots the lab (~2 s a run, ~1.5 min in all).
# Prints one line per check and ends with "N passed, M failed"; exits non-zero on any failure.
# shellcheck disable=SC2016,SC2012  # single-quoted $ is for the guest's shell; ls of our own dir
set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
readonly REPO
readonly LAB=$REPO/tools/kernel-lab
readonly PY=/usr/bin/python3

# Everything of ours (the lab's temp dirs via TMPDIR, --out dirs, captured output) lives under
# one scratch dir, so "nothing left behind" can be checked exactly even when other labs run.
SCRATCH=$(mktemp -d /tmp/kernel-lab-test.XXXXXXXX) || exit 1
readonly SCRATCH
trap 'rm -rf "$SCRATCH"' EXIT
mkdir "$SCRATCH/tmp" "$SCRATCH/cap"
export TMPDIR=$SCRATCH/tmp

# The lab's default cwd is ours; it must be visible in the guest (not under the host's /tmp).
cd "$REPO" || exit 1

passed=0
failed=0
runs=0
leftovers=""

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
skip() { echo "SKIP $1: $2"; }

# Runs the lab with the given arguments; sets status, out, err (file contents) and elapsed (s).
# stdin is /dev/null unless the caller redirects it. Afterwards it records any leftover
# process or temp dir of this run.
lab() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$LAB" "$@" >"$SCRATCH/cap/out" 2>"$SCRATCH/cap/err"
  status=$?
  t1=$EPOCHREALTIME
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  out=$(tr -d '\0' <"$SCRATCH/cap/out") # (binary output is compared from the file)
  err=$(<"$SCRATCH/cap/err")
  note_leftovers "$*"
}

# A lab's temp dir is $TMPDIR/kernel-lab.*, and its linux.uml processes carry that path on their
# command line. (A guest that panicked leaves zombies for init to reap; they have no command
# line, hold nothing, and are not counted.)
note_leftovers() {
  runs=$((runs + 1))
  local what=""
  if [[ -n $(ls -A "$TMPDIR") ]]; then what+=" temp: $(ls -A "$TMPDIR" | tr '\n' ' ')"; fi
  if pgrep -f "$TMPDIR/kernel-lab" >/dev/null; then what+=" processes: $(pgrep -f "$TMPDIR/kernel-lab" | tr '\n' ' ')"; fi
  [[ -z $what ]] || leftovers+="[after: $1]$what; "
  rm -rf "${TMPDIR:?}"/* # so one leak is reported once
  pkill -KILL -f "$TMPDIR/kernel-lab" 2>/dev/null
}

expect_status() { # name want
  if [[ $status == "$2" ]]; then pass "$1"; else fail "$1" "status $status, want $2; stderr: ${err:0:300}"; fi
}

# ---- status --------------------------------------------------------------------------------

check_statuses() {
  lab -- true
  expect_status "true -> 0" 0
  lab -- false
  expect_status "false -> 1" 1
  lab -- sh -c 'exit 7'
  expect_status "sh -c 'exit 7' -> 7" 7
  lab -- sh -c 'kill -TERM $$'
  expect_status "command killed by SIGTERM -> 143" 143
  lab -- /nonexistent/command
  expect_status "command not found -> 127" 127
  # A server left running in the background still holds COMMAND's stdout; the run must end.
  lab --timeout 30 -- sh -c 'sleep 100 & echo bg; exit 3'
  if [[ $status == 3 && $out == bg ]] && awk -v e="$elapsed" 'BEGIN { exit !(e < 15) }'; then
    pass "a background process left by COMMAND does not keep the lab running"
  else
    fail "background process" "status $status after ${elapsed}s, out <$out>"
  fi
}

check_timeout() {
  lab --timeout 5 -- sleep 60
  if [[ $status == 124 ]] && awk -v e="$elapsed" 'BEGIN { exit !(e >= 4 && e < 15) }' &&
    [[ $err == *"timed out"* ]]; then
    pass "--timeout 5 -- sleep 60 -> 124 in ${elapsed}s with a message"
  else
    fail "--timeout 5" "status $status after ${elapsed}s, stderr: $err"
  fi
}

# A kernel panic must end the run at once with the lab's own status, not hang or leave a core.
check_panic() {
  lab -- sh -c 'echo c >/proc/sysrq-trigger'
  if [[ $status == 125 && $err == *"kernel panic"* ]] && awk -v e="$elapsed" 'BEGIN { exit !(e < 15) }'; then
    pass "guest kernel panic -> 125 in ${elapsed}s with a message"
  else
    fail "guest kernel panic" "status $status after ${elapsed}s, stderr: ${err:0:300}"
  fi
}

check_lab_errors() {
  KERNEL_LAB_UML=/nonexistent/linux.uml lab -- true
  if [[ $status == 125 && $err == *"install user-mode-linux"*"tools/setup"* ]]; then
    pass "linux.uml missing -> 125 naming the package and tools/setup"
  else
    fail "linux.uml missing" "status $status, stderr: $err"
  fi
  lab --timeout 5
  expect_status "no COMMAND -> 125" 125
  lab --bogus -- true
  expect_status "unknown option -> 125" 125
  lab --help
  if [[ $status == 0 && $out == *"tens of MB/s"* && $out == *"never for absolute speed"* &&
    $out == *"stdout"*"stderr"* ]]; then
    pass "--help says kTLS runs at tens of MB/s there, not for speed, and how output travels"
  else
    fail "--help" "status $status"
  fi
  echo from-the-host >"$SCRATCH/marker"
  lab --cwd "$SCRATCH" -- sh -c 'cat marker && ! touch new 2>/dev/null && echo read-only'
  if [[ $status == 0 && $out == $'from-the-host\nread-only' && ! -e $SCRATCH/new ]]; then
    pass "a cwd under the host's /tmp is visible in the guest, read-only"
  else
    fail "cwd under host /tmp" "status $status, out <$out>, stderr: $err"
  fi
  rm -f "$SCRATCH/marker"
}

# ---- output and arguments ------------------------------------------------------------------

check_output() {
  lab -- printf '%s|' 'a b' '$HOME' "it's"
  if [[ $status == 0 && $out == 'a b|$HOME|it'"'"'s|' ]]; then
    pass "quoting: printf '%s|' 'a b' '\$HOME' \"it's\""
  else
    fail "quoting" "got <$out> status $status"
  fi

  local -a nasty=('' ' lead' $'tab\there' $'new\nline' '\back\\slash' '*' '"dq"' '`id`' '$(id)' ';|&<>' 'é')
  lab -- printf '[%s]' "${nasty[@]}"
  local want
  want=$(printf '[%s]' "${nasty[@]}")
  if [[ $status == 0 && $out == "$want" ]]; then pass "quoting: empty, tab, newline, globs, \$(), backslashes, UTF-8"; else fail "quoting of odd args" "got <$out>"; fi

  # Exact equality: no kernel boot message, no \r from a tty, stdout and stderr kept apart.
  lab -- sh -c 'echo to-stdout; echo to-stderr >&2'
  if [[ $status == 0 ]] && cmp -s "$SCRATCH/cap/out" <(printf 'to-stdout\n') &&
    cmp -s "$SCRATCH/cap/err" <(printf 'to-stderr\n'); then
    pass "stdout and stderr arrive exactly and separately, without boot noise"
  else
    fail "stdout/stderr" "stdout <$out> stderr <$err>"
  fi

  # Binary output, all byte values, more than any pipe or console buffer.
  mkdir -p "$SCRATCH/bin"
  head -c 3000000 /dev/urandom >"$SCRATCH/bin/data"
  lab --out "$SCRATCH/bin" -- cat "$SCRATCH/bin/data"
  if [[ $status == 0 ]] && cmp -s "$SCRATCH/cap/out" "$SCRATCH/bin/data"; then
    pass "3 MB of random bytes on stdout arrive byte for byte"
  else
    fail "binary stdout" "status $status, $(wc -c <"$SCRATCH/cap/out") bytes"
  fi

  lab -- sh -c 'test -t 0 || test -t 1 || test -t 2 || read -r x || echo no-tty-no-input'
  if [[ $out == no-tty-no-input ]]; then pass "COMMAND has no tty and stdin at EOF"; else fail "COMMAND's stdio" "got <$out>"; fi
}

# ---- the host stays read-only, except --out ------------------------------------------------

check_filesystem() {
  if [[ -e /usr/x ]]; then
    skip "touch /usr/x" "/usr/x exists on the host already"
  else
    lab -- sh -c 'touch /usr/x'
    if [[ $status != 0 && ! -e /usr/x && $err == *"Read-only file system"* ]]; then
      pass "touch /usr/x fails read-only and /usr/x stays absent on the host"
    else
      fail "touch /usr/x" "status $status, exists: $([[ -e /usr/x ]] && echo yes || echo no)"
    fi
  fi

  local outdir=$SCRATCH/out\ dir probe=$REPO/.kernel-lab-write-probe
  rm -f "$probe"
  lab --out "$outdir" -- sh -c 'echo written-in-guest >"$1/file" && ! touch "$2" 2>/dev/null' sh "$outdir" "$probe"
  if [[ $status == 0 && $(<"$outdir/file") == written-in-guest && ! -e $probe ]]; then
    pass "--out DIR (with a space) is writable in the guest and the repo next to it is not"
  else
    fail "--out" "status $status, file: $(cat "$outdir/file" 2>&1), probe exists: $([[ -e $probe ]] && echo yes || echo no)"
  fi

  # The host's /tmp holds $SCRATCH; the guest's /tmp is its own (it may hold the mount
  # point of a cwd under the host's /tmp, and nothing else of the host's).
  lab -- sh -c 'touch /tmp/a /run/a /dev/shm/a && test ! -e "$1"' sh "$SCRATCH"
  expect_status "/tmp, /run, /dev/shm are the guest's own writable tmpfs" 0
}

# ---- the kernel -----------------------------------------------------------------------------

check_kernel() {
  lab -- sh -c "grep -q '^TlsCurrTxSw' /proc/net/tls_stat && for m in tls gcm ccm chacha20poly1305; do grep -q \"^\$m \" /proc/modules || exit 3; done"
  expect_status "tls, gcm, ccm, chacha20poly1305 loaded; /proc/net/tls_stat present" 0

  lab -- sh -c 'uname -r; ip -o link show lo; cat /proc/sys/kernel/modprobe'
  if [[ $status == 0 && $out == *"6.1."* && $out == *"LOOPBACK,UP"* && $out == *"/run/"* ]]; then
    pass "Linux 6.1 guest, loopback up, kernel module autoload configured"
  else
    fail "kernel basics" "status $status, out <$out>"
  fi

  if [[ ! -x $PY ]]; then
    skip "kTLS round trip" "$PY not found"
    return
  fi
  # Both ends of a loopback TCP pair get TCP_ULP "tls"; one sends through TLS_TX, the other reads
  # through TLS_RX with the same (random) key. A third socket with TX only shows the wire carries
  # a TLS record, not the plaintext. Every cipher kTLS offers in 6.1 for TLS 1.3.
  local code='
import os, socket, struct
SOL_TLS, TLS_TX, TLS_RX, TCP_ULP = 282, 1, 2, 31
def pair():
    lsn = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(lsn.getsockname())
    return a, lsn.accept()[0]
for name, (ctype, iv, key, salt) in {"AES-128-GCM": (51, 8, 16, 4), "AES-256-GCM": (52, 8, 32, 4),
        "AES-128-CCM": (53, 8, 16, 4), "CHACHA20-POLY1305": (54, 12, 32, 0)}.items():
    info = struct.pack("=HH", 0x0304, ctype) + os.urandom(iv + key + salt) + bytes(8)
    a, b = pair()
    for s in (a, b): s.setsockopt(socket.SOL_TCP, TCP_ULP, b"tls")
    a.setsockopt(SOL_TLS, TLS_TX, info); b.setsockopt(SOL_TLS, TLS_RX, info)
    a.sendall(b"hello kTLS"); assert b.recv(100) == b"hello kTLS", name
    c, d = pair()
    c.setsockopt(socket.SOL_TCP, TCP_ULP, b"tls"); c.setsockopt(SOL_TLS, TLS_TX, info)
    c.sendall(b"hello kTLS"); wire = d.recv(100)
    assert wire[:3] == b"\x17\x03\x03" and len(wire) == 5 + 10 + 1 + 16 and b"hello" not in wire, wire
    print(name, "ok")
'
  lab -- "$PY" -c "$code"
  if [[ $status == 0 && $(grep -c ' ok$' <<<"$out") == 4 ]]; then
    pass "kTLS round trip (TCP_ULP, TLS_TX, TLS_RX) with AES-128/256-GCM, AES-128-CCM, ChaCha20-Poly1305"
  else
    fail "kTLS round trip" "status $status, out <$out>, err <${err:0:400}>"
  fi
}

# ---- environment and cwd --------------------------------------------------------------------

check_environment() {
  (
    cd /usr/share || exit 1
    WASI_KTLS_BACKEND='k tls $x' NOT_PASSED=1 lab --env 'EXTRA=a=b' -- sh -c \
      'echo "$PWD|$HOME|$WASI_KTLS_BACKEND|${NOT_PASSED-unset}|$EXTRA"'
    [[ $status == 0 && $out == '/usr/share|/tmp|k tls $x|unset|a=b' ]] || { echo "got <$out> err <$err>"; exit 1; }
  ) >"$SCRATCH/cap/sub" 2>&1
  if [[ $? == 0 ]]; then
    pass "cwd defaults to the caller's; HOME=/tmp; WASI_KTLS_* and --env passed, others not"
  else
    fail "environment" "$(<"$SCRATCH/cap/sub")"
  fi
  runs=$((runs + 1)) # the subshell's run; its leftovers are checked by the next run
  lab --cwd /usr/lib -- pwd
  if [[ $out == /usr/lib ]]; then pass "--cwd /usr/lib"; else fail "--cwd" "got <$out>"; fi
}

# ---- how it is run -------------------------------------------------------------------------

check_invocation() {
  lab -- true </dev/null
  expect_status "stdin from /dev/null" 0
  lab -- true 0<&-
  expect_status "stdin closed (0<&-)" 0
  "$LAB" -- echo ok 0<&- 2>&- >"$SCRATCH/cap/out"
  status=$?
  if [[ $status == 0 && $(<"$SCRATCH/cap/out") == ok ]]; then pass "stdin and stderr closed"; else fail "stderr closed" "status $status"; fi
  note_leftovers "stderr closed"

  # Two labs at once must not collide (umid, uml_dir, temp dirs).
  mkdir -p "$SCRATCH/p1" "$SCRATCH/p2"
  "$LAB" --out "$SCRATCH/p1" -- sh -c 'sleep 1; echo one >"$0/f"' "$SCRATCH/p1" >/dev/null 2>"$SCRATCH/cap/e1" &
  local p1=$!
  "$LAB" --out "$SCRATCH/p2" -- sh -c 'sleep 1; echo two >"$0/f"' "$SCRATCH/p2" >/dev/null 2>"$SCRATCH/cap/e2" &
  local p2=$!
  wait "$p1"
  local s1=$?
  wait "$p2"
  local s2=$?
  if [[ $s1 == 0 && $s2 == 0 && $(<"$SCRATCH/p1/f") == one && $(<"$SCRATCH/p2/f") == two ]]; then
    pass "two labs at once"
  else
    fail "two labs at once" "status $s1/$s2: $(cat "$SCRATCH/cap/e1" "$SCRATCH/cap/e2")"
  fi
  note_leftovers "two labs at once"
}

# From a terminal: the lab must leave the terminal's modes and flags exactly as it found them,
# also when the guest is killed on timeout. Python provides the pseudo-terminal.
check_terminal() {
  if [[ ! -x $PY ]]; then
    skip "terminal untouched" "$PY not found"
    return
  fi
  "$PY" - "$LAB" <<'EOF' >"$SCRATCH/cap/out" 2>&1
import fcntl, os, pty, subprocess, sys, termios
master, tty = pty.openpty()
modes, flags = termios.tcgetattr(tty), fcntl.fcntl(tty, fcntl.F_GETFL)
for args in (["--", "echo", "hi"], ["--timeout", "3", "--", "sleep", "30"]):
    subprocess.run([sys.argv[1]] + args, stdin=tty, stdout=tty, stderr=tty, timeout=30)
print(termios.tcgetattr(tty) == modes and fcntl.fcntl(tty, fcntl.F_GETFL) == flags)
EOF
  if [[ $(<"$SCRATCH/cap/out") == True ]]; then
    pass "a terminal keeps its modes and flags (also after a timeout)"
  else
    fail "terminal untouched" "$(<"$SCRATCH/cap/out")"
  fi
  note_leftovers "terminal"
}

# SIGTERM (as from a CI runner) and SIGINT (Ctrl-C) stop the guest and clean up.
check_interrupts() {
  "$LAB" -- sh -c 'echo started; sleep 60' >"$SCRATCH/cap/out" 2>"$SCRATCH/cap/err" &
  local pid=$! i
  for ((i = 0; i < 150; i++)); do
    [[ $(<"$SCRATCH/cap/out") == started ]] && break
    sleep 0.1
  done
  kill -TERM "$pid"
  wait "$pid"
  status=$?
  if [[ $status == 143 && $(<"$SCRATCH/cap/err") == *interrupted* ]]; then pass "SIGTERM -> 143, guest killed"; else fail "SIGTERM" "status $status"; fi
  note_leftovers "SIGTERM"

  if [[ ! -x $PY ]]; then
    skip "SIGINT" "$PY not found"
    return
  fi
  # A background job of a script ignores SIGINT, so Python starts the lab with default signals.
  "$PY" - "$LAB" <<'EOF' >"$SCRATCH/cap/out" 2>&1
import subprocess, signal, sys, time
p = subprocess.Popen([sys.argv[1], "--", "sh", "-c", "echo started; sleep 60"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
assert p.stdout.readline() == b"started\n"
t = time.time()
p.send_signal(signal.SIGINT)
_, err = p.communicate(timeout=20)
print(p.returncode, round(time.time() - t, 1), err.decode().strip())
EOF
  local got
  got=$(<"$SCRATCH/cap/out")
  if [[ $got == "130 "*interrupted* ]]; then pass "SIGINT (Ctrl-C) -> 130, guest killed"; else fail "SIGINT" "$got"; fi
  note_leftovers "SIGINT"
}

# Lab tests will run Bazel-built binaries through bazel-bin, a symlink into /root/.cache/bazel.
check_bazel_bin() {
  if [[ ! -e $REPO/bazel-bin ]]; then
    skip "bazel-bin readable in the guest" "no bazel-bin (run bazel build //...)"
    return
  fi
  lab --cwd "$REPO" -- ls -L bazel-bin/
  if [[ $status == 0 && $out == "$(cd "$REPO" && ls -L bazel-bin/)" ]]; then
    pass "bazel-bin/ (symlink into /root/.cache/bazel) is readable in the guest"
  else
    fail "bazel-bin" "status $status, err <$err>"
  fi
}

check_statuses
check_timeout
check_panic
check_lab_errors
check_output
check_filesystem
check_kernel
check_environment
check_invocation
check_terminal
check_interrupts
check_bazel_bin

if [[ -z $leftovers ]]; then
  pass "nothing left behind (no linux.uml process, no temp dir) after each of $runs runs"
else
  fail "leftovers" "$leftovers"
fi

echo "$passed passed, $failed failed"
((failed == 0))
