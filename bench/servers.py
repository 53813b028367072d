"""What the benchmarks share to set up and drive a server: their own database, gunicorn and wrk.

Every bench works in a database of its own that it creates and drops; the HTTP ones serve the app with gunicorn,
configured as production runs it, and load it with wrk. One copy here, so that every bench sets up and measures
the server the same way, and a change of flags or a fix reaches them all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = ROOT / ".venv/bin/gunicorn"
DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


# --- The bench's own database, on the server of DATABASE_URL -------------------------------------------------


def database_url_for(url: str, name: str) -> str:
    """DATABASE_URL's server and credentials, with the bench's database in place of its own."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def recreate_database(admin_url: str, name: str) -> None:
    """An empty database; FORCE, because a bench stopped midway may have left a connection to the old one."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- gunicorn --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    port: int,
    env: dict[str, str],
    *,
    ready_path: str,
    ready_status: int,
    workers: int = 1,
    timeout: int | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen:
    """`gunicorn coderauth.wsgi` with sync workers on 127.0.0.1:port, returned once it serves the app.

    It loads coderauth/gunicorn.py as production does (docs/operations.md), so the workers count their metrics
    in prometheus_client's multiprocess files: the dearer mode, and the one a deployment pays. The flags given
    here win over that file's settings. Ready when GET ready_path answers ready_status: pick a route whose
    answer needs the whole app loaded. The server's output goes to log_path, else to this process's own.
    """
    command = [
        str(GUNICORN),
        "--config",
        "python:coderauth.gunicorn",
        "coderauth.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
    ]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    server_env = {
        **os.environ,
        # A metrics directory of this run's own, removed when gunicorn exits: the configuration empties the one
        # CODERAUTH_METRICS_DIR names, which may be a running server's.
        "CODERAUTH_METRICS_DIR": "",
        **env,
    }
    if log_path is None:
        server = subprocess.Popen(command, cwd=ROOT, env=server_env)  # noqa: S603 - a fixed command line
    else:
        with log_path.open("wb") as log:  # gunicorn keeps its own copy of the descriptor
            server = subprocess.Popen(  # noqa: S603 - a fixed command line
                command, cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT
            )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=10).status_code == ready_status:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"gunicorn did not start; see {log_path}" if log_path else "gunicorn did not start")


# --- wrk -------------------------------------------------------------------------------------------------------

# wrk reports through done(): one JSON line, latencies in microseconds. errors.status counts the answers whose
# status is >= 400; the socket errors are the other four kinds. A script that also wants 1xx and 3xx answers
# counted adds COUNT_NON_2XX: done() runs in the main Lua state, so it sums each thread's count through the
# thread objects setup() kept, the way wrk's own scripts do.
WRK_DONE = """done = function(summary, latency, requests)
  local errors = summary.errors
  local non_2xx = -1
  if threads ~= nil then
    non_2xx = 0
    for _, thread in ipairs(threads) do non_2xx = non_2xx + thread:get("non_2xx") end
  end
  io.write(string.format(
    "WRK_RESULT {\\"requests\\": %d, \\"duration_us\\": %d, \\"status_errors\\": %d, \\"socket_errors\\": %d, "
    .. "\\"non_2xx\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n",
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout, non_2xx,
    latency:percentile(50), latency:percentile(99)))
end
"""

COUNT_NON_2XX = """threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) non_2xx = 0 end
response = function(status, headers, body)
  if status < 200 or status >= 300 then non_2xx = non_2xx + 1 end
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    status_errors: int  # answers with a status >= 400
    socket_errors: int  # connect, read, write and timeout errors
    non_2xx: int | None  # every answer outside 2xx, when the script added COUNT_NON_2XX


def wrk_script(headers: dict[str, str], *, method: str | None = None, body: str = "", lua: str = "") -> str:
    """The Lua of one route: its request (method, headers, body), any `lua` of the caller's, then WRK_DONE."""
    lines = [f'wrk.method = "{method}"'] if method else []
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    if body:
        lines.append(f"wrk.body = {json.dumps(body)}")
    return "\n".join(lines) + "\n" + lua + WRK_DONE


def write_private(path: Path, text: str) -> None:
    """A script that holds a token: 0600 before anything is written, and never on wrk's command line (`ps`)."""
    path.touch(mode=0o600)
    path.write_text(text)


def run_wrk(wrk: str, url: str, script: Path, seconds: float, connections: int) -> WrkResult:
    output = subprocess.run(  # noqa: S603 - a fixed command line
        [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK_RESULT "))
    result = json.loads(line.removeprefix("WRK_RESULT "))
    return WrkResult(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        status_errors=result["status_errors"],
        socket_errors=result["socket_errors"],
        non_2xx=result["non_2xx"] if result["non_2xx"] >= 0 else None,
    )
