#!/bin/sh
# Runs a command with DATABASE_URL set. When the environment has none, it starts the
# embedded PostgreSQL under .pgdata (git-ignored), or joins it when another command is
# already using it, and stops it when the last of these commands ends (so `make manage`
# next to `make run` is harmless either way round). A server started with `make db-start`
# is left running.
#
# --create-database: when DATABASE_URL is set, create its database first if it does not
# exist (`make run`, `make manage`; not `make test`, whose test database pytest-django makes).
set -eu
cd "$(dirname "$0")/.."
create_database=no
if [ "${1:-}" = --create-database ]; then
    create_database=yes
    shift
fi
if [ -n "${DATABASE_URL:-}" ]; then
    if [ "$create_database" = yes ]; then
        # The URL stays in the environment, out of the process list: it may carry a password.
        .venv/bin/python -m coderauth.embedded_db ensure-database
    fi
    exec "$@"
fi
# This shell's process id names the session; it lives until the command has ended.
DATABASE_URL="$(.venv/bin/python -m coderauth.embedded_db start --session $$)"
export DATABASE_URL
echo "Using embedded PostgreSQL in .pgdata (set DATABASE_URL to use another server)." >&2
# Ctrl-C on `make run` (or a TERM from CI) must still end the session.
trap '.venv/bin/python -m coderauth.embedded_db stop --session $$' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
status=0
"$@" || status=$?
exit $status
