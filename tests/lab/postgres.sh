# Debian's PostgreSQL 15 as a TLS test server for the lab scripts (sourced; needs wait.sh).

pg_bin=/usr/lib/postgresql/15/bin
# PostgreSQL refuses to run as root: its programs run as the postgres user (setpriv execs
# them in place, so the server's pid is the background job's).
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups --)

# start_postgres DIR PORT PKI SCRAM_PASSWORD: a cluster in DIR (created; postgres must be able
# to reach it), on 127.0.0.1:PORT only, TLS with PKI/server.pem and client certificates
# checked against PKI/ca.pem. Two roles, TLS required for both:
#   certuser   `cert` authentication: the client certificate is the credential; its CN
#              ("wasi-ktls test client") is mapped to certuser by pg_ident.conf
#   scramuser  SCRAM-SHA-256 with SCRAM_PASSWORD
# Connections are logged (DIR/log, with the authenticated identity). Runs in the background
# with its pid added to `pids`; returns once the server accepts connections (bounded), or 1.
start_postgres() {
  local dir=$1 port=$2 pki=$3 password=$4 data=$1/data
  mkdir -p "$dir"
  chown postgres "$dir"
  "${as_postgres[@]}" "$pg_bin/initdb" -D "$data" -U postgres --no-sync --auth-local=reject \
    --auth-host=reject >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return 1; }
  cp "$pki/server.pem" "$pki/ca.pem" "$data/"
  install -m 600 -o postgres "$pki/server.key" "$data/server.key"
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
ssl = on
ssl_cert_file = 'server.pem'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.pem'
log_connections = on
log_disconnections = on
fsync = off
CONF
  cat >"$data/pg_hba.conf" <<HBA
hostssl all certuser  127.0.0.1/32 cert clientcert=verify-full map=guests
hostssl all scramuser 127.0.0.1/32 scram-sha-256
HBA
  echo 'guests "wasi-ktls test client" certuser' >"$data/pg_ident.conf"
  # The roles, in single-user mode before the server listens: no connection without TLS is
  # ever needed, and the password goes through a pipe, not a command line or a log.
  printf "CREATE ROLE certuser LOGIN;\nCREATE ROLE scramuser LOGIN PASSWORD '%s';\n" "$password" |
    "${as_postgres[@]}" "$pg_bin/postgres" --single -D "$data" postgres >/dev/null 2>&1 ||
    { echo "creating the roles failed"; return 1; }
  "${as_postgres[@]}" "$pg_bin/postgres" -D "$data" >"$dir/log" 2>&1 &
  pids+=($!)
  wait_until 60 grep -q 'database system is ready to accept connections' "$dir/log" ||
    { echo "postgres did not start:"; cat "$dir/log"; return 1; }
}
