#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the store's tests and print its URL on stdout.
#
#   export CACTUS_TEST_PG_URL="$(.ci/postgres.sh)"
#   python -m pytest tests/test_db*.py tests/test_jobs*.py
#   "$CACTUS_PG_DIR/stop.sh"      # or: .ci/postgres.sh stop DIR
#
# Installs PostgreSQL from Debian's packages when no server binaries are found, creates a data folder
# under /tmp (or $CACTUS_PG_DIR), starts the server on 127.0.0.1 on a free port (or $CACTUS_PG_PORT)
# as the `postgres` user when run as root, creates a database, and prints
# postgresql+psycopg://cactus:cactus@127.0.0.1:PORT/cactus_test. Everything else goes to stderr.
# The server is tuned for tests (fsync off): never put data you want to keep in it.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

if [[ "${1:-}" == "stop" ]]; then
    dir="${2:?usage: postgres.sh stop DIR}"
    exec "$dir/stop.sh"
fi

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bin="$(find_bin)"
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    log "PostgreSQL server not found; installing it from Debian's packages"
    sudo=""
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null || { log "not root and no sudo: install the 'postgresql' package first"; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq postgresql >&2
    bin="$(find_bin)"
    [[ -n "$bin" && -x "$bin/initdb" ]] || { log "installed postgresql but found no initdb under /usr/lib/postgresql"; exit 1; }
fi

dir="${CACTUS_PG_DIR:-$(mktemp -d /tmp/cactus-pg.XXXXXX)}"
mkdir -p "$dir"
port="${CACTUS_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
user=cactus
password=cactus
database=cactus_test

# The server refuses to run as root: run it as the `postgres` user (made by the Debian package).
as_owner=()
if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" --shell /usr/sbin/nologin postgres
    chown -R postgres: "$dir"
    as_owner=(runuser -u postgres --)
fi

printf '%s\n' "$password" > "$dir/pwfile"
[[ ${#as_owner[@]} -gt 0 ]] && chown postgres: "$dir/pwfile"
mkdir -p "$dir/socket"
[[ ${#as_owner[@]} -gt 0 ]] && chown postgres: "$dir/socket"

log "initdb in $dir/data ($bin)"
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >&2
rm -f "$dir/pwfile"

log "starting the server on 127.0.0.1:$port"
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/socket -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=200" >&2 \
    || { log "the server did not start; its log:"; cat "$dir/server.log" >&2; exit 1; }

cat > "$dir/stop.sh" <<EOF
#!/usr/bin/env bash
# Stop the throwaway PostgreSQL started by .ci/postgres.sh and delete its data.
${as_owner[*]} "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
rm -rf "$dir"
EOF
chmod +x "$dir/stop.sh"

PGPASSWORD="$password" "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$database" >&2
log "running; stop it with $dir/stop.sh (CACTUS_PG_DIR=$dir)"
echo "postgresql+psycopg://$user:$password@127.0.0.1:$port/$database"
