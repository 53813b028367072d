"""Start, stop and locate the embedded PostgreSQL used when DATABASE_URL is unset.

Imports no Django: the Makefile calls it before settings exist. The pgserver package
ships the PostgreSQL binaries, so a fresh machine with only Python needs nothing else.

    python -m coderauth.embedded_db start [--data DIR] [--session PID]  # prints a DATABASE_URL
    python -m coderauth.embedded_db stop  [--data DIR] [--session PID]
    python -m coderauth.embedded_db ensure-database [URL]  # creates DATABASE_URL's database if missing

With --session (scripts/with-database.sh passes its own process id), commands that overlap share
one server: `stop` ends that session and stops the server only when it was the last one using it
and the server was started by a session, not by a plain `start` (`make db-start`).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

import psycopg
from psycopg import errors, sql

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".pgdata"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql"}
# Query parameters django-environ turns into Django settings rather than connection options.
DJANGO_ONLY_OPTIONS = {
    "conn_max_age",
    "conn_health_checks",
    "atomic_requests",
    "autocommit",
    "disable_server_side_cursors",
}
MAINTENANCE_DATABASE = "postgres"
CONNECT_TIMEOUT_SECONDS = "5"


class DatabaseSetupError(Exception):
    """A one-line, password-free explanation of why the database cannot be used."""


def _server(data_dir: Path):
    # platformdirs warns about XDG_RUNTIME_DIR on root shells; it is harmless here.
    warnings.filterwarnings("ignore", module="platformdirs")
    import pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None keeps the server running after this short-lived process exits.
    return pgserver.get_server(data_dir, cleanup_mode=None)


def start(data_dir: Path) -> str:
    server = _server(data_dir)
    server.psql("SELECT 1;")
    database = "coderauth"  # a constant, so the f-strings below carry no outside input
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {database};")
    socket_dir = server.get_uri().split("host=", 1)[1].split("&", 1)[0]
    return f"postgres://postgres@/{database}?host={socket_dir}"


def stop(data_dir: Path, timeout_seconds: float = 30.0) -> None:
    """Fast shutdown: SIGINT to the postmaster, which pgserver may run as another user."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_seconds
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def connection_params(database_url: str) -> dict[str, str]:
    """The libpq parameters Django will use for DATABASE_URL, read the way django-environ and settings read it."""
    url = urlsplit(database_url)
    if url.scheme not in POSTGRES_SCHEMES:
        raise DatabaseSetupError("DATABASE_URL must point at PostgreSQL (postgres://user:password@host:port/name)")
    host_port = url.netloc.rpartition("@")[2]
    if "," in host_port:  # several hosts: host1:port1,host2:port2
        pairs = [item.rsplit(":", 1) for item in host_port.split(",")]
        host = ",".join(pair[0] for pair in pairs)
        port = ",".join(pair[1] for pair in pairs if len(pair) == 2)
    else:
        try:
            host, port = url.hostname or "", str(url.port or "")
        except ValueError:
            raise DatabaseSetupError("DATABASE_URL has an invalid port") from None
    name = unquote_plus(url.path[1:])
    if name.startswith("/"):  # postgres:////run/postgresql/name: a socket directory, then the name
        host, name = name.rsplit("/", 1)
    params = {
        "host": host,
        "port": port,
        "user": unquote(url.username or ""),
        "password": unquote(url.password or ""),
        "dbname": name,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    }
    for key, values in parse_qs(url.query).items():
        if key.lower() in DJANGO_ONLY_OPTIONS:
            continue
        if key == "host":  # settings take ?host= only when the URL names no host
            params["host"] = params["host"] or values[0]
        else:
            params[key] = values[0]
    return {key: value for key, value in params.items() if value}


def server_label(params: dict[str, str]) -> str:
    return f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"


def _reason(error: Exception, password: str) -> str:
    """libpq's message on one line: the last "... failed:" cause, without the hint lines or the password."""
    message = " ".join(str(error).rsplit("failed: ", 1)[-1].strip().splitlines()[0].split())
    return message.replace(password, "***") if password else message


def ensure_database(database_url: str) -> bool:
    """Create DATABASE_URL's database when it does not exist yet; True if this call created it.

    The database itself is tried first, so a user who may neither open the maintenance
    database nor create databases is never in the way once the database is there.
    """
    params = connection_params(database_url)
    password = params.get("password", "")
    name = params.get("dbname") or params.get("user", "")  # libpq's own default for the name
    server = server_label(params)
    try:
        psycopg.connect(**params).close()
        return False
    except psycopg.OperationalError as error:
        database_failure = _reason(error, password)
    try:
        maintenance = psycopg.connect(**{**params, "dbname": MAINTENANCE_DATABASE}, autocommit=True)
    except psycopg.OperationalError as error:
        raise DatabaseSetupError(f"cannot reach PostgreSQL at {server} ({_reason(error, password)})") from None
    with maintenance:
        if not name or maintenance.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            raise DatabaseSetupError(f"cannot open database {name!r} at {server} ({database_failure})")
        try:
            maintenance.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:  # another process created it in the meantime
            return False
        except errors.InsufficientPrivilege:
            user = params.get("user", "")
            statement = sql.SQL("CREATE DATABASE {} OWNER {};").format(sql.Identifier(name), sql.Identifier(user))
            raise DatabaseSetupError(
                f"database {name!r} does not exist at {server} and user {user!r} may not create it; "
                f"as a superuser run: {statement.as_string(maintenance)}"
            ) from None
    return True


def _is_running(data_dir: Path) -> bool:
    try:
        os.kill(int((data_dir / "postmaster.pid").read_text().splitlines()[0]), 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, run by pgserver's own system user
        pass
    return True


@contextmanager
def _sessions(data_dir: Path) -> Iterator[Path]:
    """The session register of one data directory, locked against other with-database.sh processes."""
    lock_name = f"coderauth-pgdata-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]}.lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield data_dir / ".coderauth_sessions"


def _live_sessions(register: Path) -> list[Path]:
    """Session files of processes still alive; those of killed ones are removed."""
    live = []
    for session in register.glob("[0-9]*"):
        try:
            os.kill(int(session.name), 0)
            live.append(session)
        except ProcessLookupError:
            session.unlink(missing_ok=True)
        except PermissionError:
            live.append(session)
    return live


def session_start(data_dir: Path, session: int | None) -> str:
    """Start or join the server; the last session to end stops it, unless it was started by hand."""
    with _sessions(data_dir) as register:
        was_running = _is_running(data_dir)
        url = start(data_dir)
        register.mkdir(exist_ok=True)
        managed = register / "managed"
        if session is None or (was_running and not _live_sessions(register)):
            managed.unlink(missing_ok=True)  # started by hand (make db-start): leave it running
        elif not was_running:
            managed.touch()
        if session is not None:
            (register / str(session)).touch()
        return url


def session_stop(data_dir: Path, session: int | None) -> None:
    """Without a session: stop now. With one: end it, and stop the server if nothing else uses it."""
    if session is None:
        stop(data_dir)
        return
    with _sessions(data_dir) as register:
        (register / str(session)).unlink(missing_ok=True)
        managed = register / "managed"
        if managed.exists() and not _live_sessions(register):
            stop(data_dir)
            managed.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coderauth.embedded_db", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "ensure-database"])
    parser.add_argument("url", nargs="?", help="ensure-database only; default: $DATABASE_URL (keeps it out of `ps`)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CODERAUTH_PGDATA", DEFAULT_DATA_DIR)))
    parser.add_argument("--session", type=int, help="start/stop: the process id of the command using the server")
    args = parser.parse_args(argv)
    if args.command == "ensure-database":
        database_url = args.url or os.environ.get("DATABASE_URL", "")
        if not database_url:
            print("error: no database URL: pass one or set DATABASE_URL", file=sys.stderr)
            return 2
        try:
            if ensure_database(database_url):
                params = connection_params(database_url)
                print(f"Created database {params.get('dbname')!r} at {server_label(params)}.", file=sys.stderr)
        except DatabaseSetupError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    data_dir = args.data.expanduser().resolve()
    if args.command == "start":
        print(session_start(data_dir, args.session))
    else:
        session_stop(data_dir, args.session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
