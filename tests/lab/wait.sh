# Bounded waits for the lab scripts (sourced): every wait is for a condition, polled, with a
# bound, never a fixed sleep, so a loaded machine only makes them slower.

# wait_until SECONDS COMMAND...: true once COMMAND is, false after SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# listening PORT: a socket listens on PORT. Read from /proc/net, not by connecting: a probe
# connection would be a failed handshake in a server's log and count as one of its connections.
listening() {
  local files=() f
  for f in /proc/net/tcp /proc/net/tcp6; do [[ -r $f ]] && files+=("$f"); done
  awk -v port="$(printf ':%04X' "$1")" \
    'substr($2, length($2) - 4) == port && $4 == "0A" { found = 1 } END { exit !found }' \
    "${files[@]}"
}

wait_listening() { wait_until 30 listening "$1"; }  # wait_listening PORT
