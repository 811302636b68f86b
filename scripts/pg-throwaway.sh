#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the mirror's tests and benchmarks, in a temporary directory,
# run by an unprivileged user, listening on loopback only.
#
#   eval "$(scripts/pg-throwaway.sh start)"   # installs PostgreSQL when missing (as root),
#                                             # starts a cluster, prints VAULT_TEST_PG=... and
#                                             # VAULT_TEST_PG_DIR=... for the shell to export
#   scripts/pg-throwaway.sh stop              # stops the cluster in $VAULT_TEST_PG_DIR, removes it
#   scripts/pg-throwaway.sh halt DIR          # stops the server of the cluster in DIR, keeps it
#   scripts/pg-throwaway.sh resume DIR        # starts it again, same port (fault tests)
set -euo pipefail

find_bin() {
  local name=$1 dir
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
  done
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
  if ! find_bin initdb >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL is not installed and this is not root: install the postgresql package" >&2
      exit 1
    fi
    echo "installing PostgreSQL from the distribution's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
  fi
  INITDB=$(find_bin initdb)
  PG_CTL=$(find_bin pg_ctl)
  PG_USER=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root: a dedicated unprivileged user owns the cluster.
    PG_USER=vault-pg-test
    id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
  fi
  DIR=$(mktemp -d /tmp/vault-pg.XXXXXX)
  chmod 755 "$DIR"
  PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '%s\n' "$PASSWORD" > "$DIR/pwfile"
  chown -R "$PG_USER" "$DIR"
  as_owner "$INITDB" -D "$DIR/data" -U vault --pwfile="$DIR/pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --no-locale >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
  rm -f "$DIR/pwfile"
  # A free port on loopback.
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000)))
  echo "$PORT" > "$DIR/port"
  as_owner "$PG_CTL" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR -c max_connections=200" \
    start >&2 || { cat "$DIR/server.log" >&2; exit 1; }
  echo "export VAULT_TEST_PG='postgres://vault:$PASSWORD@127.0.0.1:$PORT/postgres'"
  echo "export VAULT_TEST_PG_DIR='$DIR'"
  ;;
stop)
  DIR=${VAULT_TEST_PG_DIR:?no cluster started}
  PG_CTL=$(find_bin pg_ctl)
  PG_USER=$(stat -c %U "$DIR/data")
  as_owner "$PG_CTL" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
  ;;
halt)
  DIR=${2:?usage: $0 halt DIR}
  PG_CTL=$(find_bin pg_ctl)
  PG_USER=$(stat -c %U "$DIR/data")
  as_owner "$PG_CTL" -D "$DIR/data" -m fast -w stop >/dev/null
  ;;
resume)
  DIR=${2:?usage: $0 resume DIR}
  PG_CTL=$(find_bin pg_ctl)
  PG_USER=$(stat -c %U "$DIR/data")
  PORT=$(cat "$DIR/port")
  as_owner "$PG_CTL" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR -c max_connections=200" \
    start >/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
  ;;
*)
  echo "usage: $0 start|stop|halt DIR|resume DIR" >&2
  exit 2
  ;;
esac
