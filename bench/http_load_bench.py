"""HTTP under load: /healthz, the agent manifest and the app-status report under gunicorn, driven by wrk.

    make bench-http                                   # 30 s a cell, one round, or:
    DATABASE_URL=postgres://... .venv/bin/python bench/http_load_bench.py --duration 5 --rounds 3

It creates a dedicated database (`coderauth_bench_http` on the server of DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/postgres), migrates it under bench/settings_bench.py, creates a
user, workspace, agent and agent token through the real services, and serves the app with gunicorn
(--workers sync workers, default 3 on two cores). wrk, on the same machine, drives three routes at
1, 8 and 32 connections:

  GET   /healthz                                     no authentication, no database
  GET   /api/v2/workspaceagents/me/manifest          agent token: one SQL statement
  PATCH /api/v2/workspaceagents/me/app-status        agent token, a quota row and an insert

The server runs with the agent throttle and the app-status quotas raised out of reach (its environment,
see SERVER_LIMITS), so that every request is served and a 429 would count as an error. Cells are run
in alternating order (route inside connections inside round) so that a noisy moment hits every route;
the table shows the medians over --rounds. It exits 1 on any error, or when the manifest's throughput is
below MANIFEST_TARGET of /healthz's at any connection count. The database is dropped unless --keep.
No token is ever printed: wrk reads the header from a 0600 script in a private temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402 - the path above first
from bench.report import machine_description, write_section  # noqa: E402
from bench.servers import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    database_url_for,
    drop_database,
    free_port,
    recreate_database,
    start_gunicorn,
    write_private,
    wrk_script,
)

MANIFEST_TARGET = 0.7
CONNECTIONS = (1, 8, 32)
HEALTHZ = "/healthz"
MANIFEST = "/api/v2/workspaceagents/me/manifest"
APP_STATUS = "/api/v2/workspaceagents/me/app-status"
# Out of reach for a benchmark: the server must answer every request, not refuse with a 429.
SERVER_LIMITS = {
    "CODERAUTH_AGENT_THROTTLE_RATE": "1000000000/s",
    "CODERAUTH_APP_STATUSES_PER_MINUTE": "1000000000",
    "CODERAUTH_APP_STATUS_BYTES_PER_MINUTE": "1000000000000",
}


@dataclass(frozen=True)
class Route:
    key: str
    method: str
    path: str
    authenticated: bool
    body: str = ""


ROUTES = (
    Route("healthz", "GET", HEALTHZ, authenticated=False),
    Route("manifest", "GET", MANIFEST, authenticated=True),
    Route(
        "app-status",
        "PATCH",
        APP_STATUS,
        authenticated=True,
        body=json.dumps({"app_slug": "bench", "state": "working", "message": "under load"}),
    ),
)


@dataclass(frozen=True)
class Cell:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


def route_script(route: Route, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"} if route.authenticated else {}
    if route.body:
        headers["Content-Type"] = "application/json"
    return wrk_script(headers, method=route.method, body=route.body, lua=servers.COUNT_NON_2XX)


def run_wrk(wrk: str, base_url: str, script: Path, seconds: float, connections: int) -> Cell:
    result = servers.run_wrk(wrk, base_url, script, seconds, connections)
    return Cell(
        requests=result.requests,
        seconds=result.seconds,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        socket_errors=result.socket_errors,
        non_2xx=result.non_2xx if result.non_2xx is not None else result.status_errors,
    )


def prepare(env: dict[str, str]) -> str:
    """Migrate and create the agent's token through the real services; returns the token (kept in memory)."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from agents.services.tokens import agent_token_issue
    from agents.services.workspaces import agent_create, workspace_create

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    user = get_user_model().objects.create_user("bench-owner", email="bench-owner@example.com")
    workspace = workspace_create(actor=user, name="bench")
    agent = agent_create(actor=user, workspace=workspace, name="main")
    token = agent_token_issue(actor=user, agent=agent, name="bench").plaintext
    connection.close()
    return token


def first_status(url: str, route: Route, token: str) -> int:
    """One request as wrk sends it, to name the status when a route fails (the token is not printed)."""
    headers = {"Authorization": f"Bearer {token}"} if route.authenticated else {}
    if route.body:
        headers["Content-Type"] = "application/json"
    return httpx.request(route.method, url, headers=headers, content=route.body or None, timeout=10).status_code


def markdown(results: dict[tuple[str, int], list[Cell]], args: argparse.Namespace, machine: str) -> tuple[str, bool]:
    """The section's table and ratios, and whether every target was met."""
    lines = [
        f"gunicorn, {args.workers} sync workers; wrk -t1 on the same machine, {args.duration:g} s a cell, "
        f"{args.rounds} alternating round(s), medians shown. Errors are socket errors (connect, read, write, "
        "timeout) plus non-2xx answers, summed over the rounds.",
        "",
        "| route | connections | req/s | p50 ms | p99 ms | errors | req/s of each round |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    medians: dict[tuple[str, int], float] = {}
    met = True
    for route in ROUTES:
        for connections in args.connections:
            cells = results[(route.key, connections)]
            rates = [cell.rate for cell in cells]
            medians[(route.key, connections)] = statistics.median(rates)
            errors = sum(cell.errors for cell in cells)
            met &= errors == 0
            lines.append(
                f"| {route.method} {route.path} | {connections} | {medians[(route.key, connections)]:,.0f} "
                f"| {statistics.median(cell.p50_ms for cell in cells):.2f} "
                f"| {statistics.median(cell.p99_ms for cell in cells):.2f} | {errors} "
                f"| {', '.join(f'{rate:,.0f}' for rate in rates)} |"
            )
    lines += ["", "| connections | manifest / healthz | app-status / healthz |", "| ---: | ---: | ---: |"]
    for connections in args.connections:
        # Ratio of each round's own figures, then the median: robust to a noisy round.
        ratios = {
            key: statistics.median(
                mine.rate / healthz.rate
                for mine, healthz in zip(results[(key, connections)], results[("healthz", connections)], strict=True)
            )
            for key in ("manifest", "app-status")
        }
        met &= ratios["manifest"] >= MANIFEST_TARGET
        lines.append(f"| {connections} | {ratios['manifest']:.0%} | {ratios['app-status']:.0%} |")
    lines += [
        "",
        f"Targets: 0 errors; manifest at least {MANIFEST_TARGET:.0%} of /healthz's throughput. "
        f"Result: {'met' if met else 'MISSED'}.",
        "",
        f"Machine: {machine}. Other work may share the machine, so read the ratios, not the absolutes.",
        "",
        "```sh",
        f"bench/http_load_bench.py --duration {args.duration:g} --rounds {args.rounds} --workers {args.workers}",
        "```",
    ]
    return "\n".join(lines), met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30, help="seconds per cell (5 for a quick run)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the median counts")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per route")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, nargs="+", default=list(CONNECTIONS))
    parser.add_argument("--database", default="coderauth_bench_http", help="bench database, created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--write", action="store_true", help="replace the http-load section of docs/benchmarks.md")
    args = parser.parse_args()

    wrk = shutil.which("wrk")
    if wrk is None:
        parser.error("wrk not found (apt-get install wrk)")
    admin_url = os.environ.get("DATABASE_URL") or DEFAULT_ADMIN_URL
    bench_url = database_url_for(admin_url, args.database)
    env = {
        "DATABASE_URL": bench_url,
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        # gunicorn on plain HTTP, no TLS proxy in front: no redirect to HTTPS.
        "SERVED_OVER_HTTPS": "false",
        "LOG_LEVEL": "WARNING",
        **SERVER_LIMITS,
    }
    # A SIGTERM (timeout, Ctrl-C from make) still stops gunicorn and drops the database in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    recreate_database(admin_url, args.database)
    server = None
    results: dict[tuple[str, int], list[Cell]] = {}
    try:
        token = prepare(env)
        with tempfile.TemporaryDirectory(prefix="coderauth-bench-http-") as workdir:
            scripts = {}
            for route in ROUTES:
                scripts[route.key] = Path(workdir) / f"{route.key}.lua"
                write_private(scripts[route.key], route_script(route, token))
            port = free_port()
            server = start_gunicorn(
                port,
                env,
                workers=args.workers,
                ready_path=HEALTHZ,
                ready_status=200,
                log_path=Path(workdir) / "gunicorn.log",
            )

            def measure(route: Route, seconds: float, connections: int) -> Cell:
                return run_wrk(wrk, f"http://127.0.0.1:{port}{route.path}", scripts[route.key], seconds, connections)

            for route in ROUTES:
                warm = measure(route, args.warmup, max(args.connections))
                if warm.non_2xx:
                    status = first_status(f"http://127.0.0.1:{port}{route.path}", route, token)
                    print(f"error: {route.method} {route.path} answered {status} during warm-up", file=sys.stderr)
                    return 1
            for round_number in range(1, args.rounds + 1):
                for connections in args.connections:
                    for route in ROUTES:
                        cell = measure(route, args.duration, connections)
                        results.setdefault((route.key, connections), []).append(cell)
                        print(
                            f"  round {round_number}, {connections:>2} conn, {route.key:<10}: {cell.rate:8,.0f} req/s, "
                            f"p50 {cell.p50_ms:6.2f} ms, p99 {cell.p99_ms:7.2f} ms, errors {cell.errors}",
                            flush=True,
                        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if not args.keep:
            drop_database(admin_url, args.database)

    text, met = markdown(results, args, machine_description(admin_url))
    print()
    print(text)
    if args.write:
        write_section("http-load", text)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
