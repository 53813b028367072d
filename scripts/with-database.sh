#!/bin/sh
# Runs a command with DATABASE_URL set. When the environment has none, it starts the
# embedded PostgreSQL under .pgdata (git-ignored) and stops it again afterwards unless
# it was already running before (so `make run` next to a running one is harmless).
set -eu
cd "$(dirname "$0")/.."
if [ -n "${DATABASE_URL:-}" ]; then
    exec "$@"
fi
already_running=no
[ -f .pgdata/postmaster.pid ] && kill -0 "$(head -1 .pgdata/postmaster.pid)" 2>/dev/null && already_running=yes
DATABASE_URL="$(.venv/bin/python -m coderauth.embedded_db start)"
export DATABASE_URL
echo "Using embedded PostgreSQL in .pgdata (set DATABASE_URL to use another server)." >&2
stop_embedded() {
    if [ "$already_running" = no ]; then
        .venv/bin/python -m coderauth.embedded_db stop
    fi
}
# Ctrl-C on `make run` (or a TERM from CI) must still stop the embedded server.
trap stop_embedded EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
status=0
"$@" || status=$?
exit $status
