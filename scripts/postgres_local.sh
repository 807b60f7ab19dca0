#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback, for the search tests and benchmarks.
#   postgres_local.sh install          Debian package `postgresql` (idempotent, no server started)
#   postgres_local.sh start DIR PORT   initdb DIR (once) and start on 127.0.0.1:PORT, trust auth,
#                                      database `edgenas`, user `edgenas`; prints the URL
#   postgres_local.sh stop DIR         fast shutdown
# Runs the server as the `postgres` user when called as root (PostgreSQL refuses root).
set -euo pipefail

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

as_owner() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  install)
    if bindir >/dev/null; then echo "postgresql: already installed ($(bindir))"; exit 0; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    # The package starts a cluster service on some systems; the tests use their own.
    (command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | while read -r v c _; do
        pg_ctlcluster "$v" "$c" stop || true; done) || true
    echo "postgresql: installed ($(bindir))"
    ;;
  start)
    dir=${2:?data directory}; port=${3:?port}
    bin=$(bindir) || { echo "postgresql is not installed: run scripts/postgres_local.sh install" >&2; exit 1; }
    mkdir -p "$dir"
    [ "$(id -u)" = "0" ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir" -A trust -U edgenas -E UTF8 >/dev/null
    fi
    if as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      echo "postgresql://edgenas@127.0.0.1:$port/edgenas"; exit 0
    fi
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=100" start >/dev/null
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U edgenas -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='edgenas'" | grep -q 1 \
      || as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U edgenas edgenas
    echo "postgresql://edgenas@127.0.0.1:$port/edgenas"
    ;;
  stop)
    dir=${2:?data directory}
    bin=$(bindir)
    [ -f "$dir/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    ;;
  *)
    echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2
    ;;
esac
