"""Start, stop and locate the embedded PostgreSQL used when DATABASE_URL is unset.

Imports no Django: the Makefile calls it before settings exist. The pgserver package
ships the PostgreSQL binaries, so a fresh machine with only Python needs nothing else.

    python -m coderauth.embedded_db start [--data DIR]   # prints a DATABASE_URL
    python -m coderauth.embedded_db stop  [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".pgdata"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coderauth.embedded_db", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CODERAUTH_PGDATA", DEFAULT_DATA_DIR)))
    args = parser.parse_args(argv)
    data_dir = args.data.expanduser().resolve()
    if args.command == "start":
        print(start(data_dir))
    else:
        stop(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
