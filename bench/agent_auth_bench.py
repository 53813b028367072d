"""Agent hot-path benchmark: the manifest route against DRF's plaintext TokenAuthentication, over HTTP.

    make bench-auth                           # or:
    DATABASE_URL=postgres://... .venv/bin/python bench/agent_auth_bench.py --duration 10 --runs 3

It creates a dedicated database (`coderauth_bench_auth` on the server of DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/postgres), migrates it under bench/settings_bench.py (the
product's settings plus `rest_framework.authtoken`), and creates a user, workspace, agent and agent
token through the real services, and a DRF `Token` for the same user. It counts the SQL queries of
one warm request of each route in-process, then serves the app with gunicorn (one sync worker) and
drives it with wrk (or, without wrk, an httpx loop) on three routes:

  (a) GET /api/v2/workspaceagents/me/manifest with the agent token
  (b) GET /bench/drf-token/manifest with `Authorization: Token <key>` (DRF's plaintext baseline)
  (c) GET /api/v2/workspaceagents/me/manifest with a token whose checksum fails (401, no database)

Each route is warmed up, then measured --runs times, interleaved so that a noisy moment hits all of
them; the table shows the medians. It exits 1 when (a)'s median throughput is more than 10 % below
(b)'s and the gap is larger than the run-to-run spread, so noise alone does not fail `make bench`.
It prints the results as Markdown; with --write it also replaces the `agent-auth` section of
docs/benchmarks.md (bench/report.py). The database is dropped at the end unless --keep. No token is
ever printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

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

MAX_SLOWDOWN = 0.10
AGENT_MANIFEST = "/api/v2/workspaceagents/me/manifest"
DRF_MANIFEST = "/bench/drf-token/manifest"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    path: str
    header: tuple[str, str]
    expected_status: int


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    wrong_status: int
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def bad_checksum_agent_token() -> str:
    """Well-shaped `cda_` token whose checksum cannot match: refused before any database query."""
    from core import tokens

    random_part = "".join(secrets.choice(tokens.ALPHABET) for _ in range(tokens.RANDOM_LENGTH))
    good = tokens.checksum(random_part)
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    return f"{tokens.AGENT_PREFIX}{random_part}{bad}"


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


def prepare(env: dict[str, str]) -> tuple[list[Scenario], dict[str, tuple[int, int]]]:
    """Migrate, create the principals through the real services, count each route's queries in-process.

    Returns the scenarios (their tokens held in memory only) and, per scenario, (status, queries) of one
    warm request through Django's test client.
    """
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from agents.services.tokens import agent_token_issue
    from agents.services.workspaces import agent_create, workspace_create

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    user = get_user_model().objects.create_user("bench-owner", email="bench-owner@example.com")
    workspace = workspace_create(actor=user, name="bench")
    agent = agent_create(actor=user, workspace=workspace, name="main")
    agent_token = agent_token_issue(actor=user, agent=agent, name="bench").plaintext
    drf_key = Token.objects.create(user=user).key

    bad_token = bad_checksum_agent_token()
    drf_header = ("Authorization", f"Token {drf_key}")
    scenarios = [
        Scenario("a", "agent token: GET workspaceagents/me/manifest", AGENT_MANIFEST, bearer(agent_token), 200),
        Scenario("b", "baseline: DRF TokenAuthentication, same JSON", DRF_MANIFEST, drf_header, 200),
        Scenario("c", "401: bad checksum on the manifest route (no DB)", AGENT_MANIFEST, bearer(bad_token), 401),
    ]  # fmt: skip

    # Django logs each 4xx as a warning; the 401 of (c) is expected here.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    client = Client()
    counts = {}
    for scenario in scenarios:
        headers = {scenario.header[0]: scenario.header[1]}
        client.get(scenario.path, headers=headers)  # warm: imports, connection, last_used_at touch
        with CaptureQueriesContext(connection) as captured:
            response = client.get(scenario.path, headers=headers)
        counts[scenario.key] = (response.status_code, len(captured.captured_queries))
    connection.close()
    return scenarios, counts


def run_wrk(wrk: str, url: str, scenario: Scenario, seconds: float, connections: int, workdir: Path) -> Run:
    # The header goes in the script (a 0600 file in a private temporary directory), not on wrk's command line.
    script = workdir / f"{scenario.key}.lua"
    write_private(script, wrk_script({scenario.header[0]: scenario.header[1]}))
    result = servers.run_wrk(wrk, url, script, seconds, connections)
    wrong = result.status_errors
    if scenario.expected_status != 200:
        # wrk counts every status >= 400 as an error: here the expected one is a 401.
        wrong = result.requests - wrong
    return Run(
        requests=result.requests,
        seconds=result.seconds,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        wrong_status=wrong,
        socket_errors=result.socket_errors,
    )


def run_httpx(url: str, scenario: Scenario, seconds: float) -> Run:
    """One client, sequential requests on a keep-alive connection (gunicorn's sync worker closes it anyway)."""
    latencies = []
    wrong = errors = 0
    headers = {scenario.header[0]: scenario.header[1]}
    with httpx.Client(headers=headers, timeout=10) as client:
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                status = client.get(url).status_code
            except httpx.TransportError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - sent)
            wrong += status != scenario.expected_status
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Run(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        wrong_status=wrong,
        socket_errors=errors,
    )


def spread(values: list[float]) -> float:
    """(max - min) / median: how far apart the runs of one route were."""
    return (max(values) - min(values)) / statistics.median(values)


def server_versions() -> str:
    import django
    import gunicorn
    import rest_framework

    # Cores, memory, Python and PostgreSQL come from bench.report.machine_description.
    return (
        f"{platform.system()} {platform.release()}, Django {django.get_version()}, DRF {rest_framework.VERSION}, "
        f"gunicorn {gunicorn.__version__}, psycopg {psycopg.__version__}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per route")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per route; the median counts")
    parser.add_argument("--connections", type=int, default=1, help="concurrent client connections")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--database", default="coderauth_bench_auth", help="bench database, created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--write", action="store_true", help="replace the agent-auth section of docs/benchmarks.md")
    args = parser.parse_args()

    wrk = shutil.which("wrk") if args.client in ("auto", "wrk") else None
    if args.client == "wrk" and wrk is None:
        parser.error("wrk not found (apt-get install wrk), or use --client httpx")
    if wrk is None and args.connections != 1:
        parser.error("the httpx client runs one connection; --connections needs wrk")
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
        # Production-like: Django logs each 4xx as a warning; the server's output goes to a file.
        "LOG_LEVEL": "WARNING",
    }
    recreate_database(admin_url, args.database)
    server = None
    results: dict[str, list[Run]] = {}
    try:
        scenarios, counts = prepare(env)
        versions = server_versions()
        for scenario in scenarios:
            status, _ = counts[scenario.key]
            if status != scenario.expected_status:
                print(f"error: ({scenario.key}) answered {status} in-process, expected {scenario.expected_status}")
                return 1
        with tempfile.TemporaryDirectory(prefix="coderauth-bench-") as workdir:
            port = free_port()
            server = start_gunicorn(
                port, env, ready_path=AGENT_MANIFEST, ready_status=401, log_path=Path(workdir) / "gunicorn.log"
            )

            def measure(scenario: Scenario, seconds: float) -> Run:
                url = f"http://127.0.0.1:{port}{scenario.path}"
                if wrk:
                    return run_wrk(wrk, url, scenario, seconds, args.connections, Path(workdir))
                return run_httpx(url, scenario, seconds)

            client = f"wrk -t1 -c{args.connections}" if wrk else "httpx, one connection"
            print(f"client: {client}; {args.runs} runs of {args.duration:g} s a route, {args.warmup:g} s warm-up first")
            for scenario in scenarios:
                measure(scenario, args.warmup)
            for run_number in range(1, args.runs + 1):
                for scenario in scenarios:
                    run = measure(scenario, args.duration)
                    results.setdefault(scenario.key, []).append(run)
                    print(
                        f"  run {run_number} ({scenario.key}): {run.rate:,.0f} req/s, "
                        f"p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms",
                        flush=True,
                    )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if not args.keep:
            drop_database(admin_url, args.database)

    for scenario in scenarios:
        runs = results[scenario.key]
        wrong = sum(run.wrong_status for run in runs)
        errors = sum(run.socket_errors for run in runs)
        if wrong or errors:
            print(f"error: ({scenario.key}) {wrong} answers not {scenario.expected_status}, {errors} socket errors")
            return 1

    agent_rates = [run.rate for run in results["a"]]
    baseline_rates = [run.rate for run in results["b"]]
    medians = {scenario.key: statistics.median(run.rate for run in results[scenario.key]) for scenario in scenarios}
    ratio = medians["a"] / medians["b"]
    if ratio >= 1 - MAX_SLOWDOWN:
        verdict, code = "met: the agent route holds DRF TokenAuthentication's cost or better", 0
    elif max(agent_rates) >= min(baseline_rates):
        # The runs overlap: the gap is within what one route varies from run to run on this machine.
        verdict, code = (
            "inconclusive: the agent route's runs overlap the baseline's (noise); rerun on a quiet machine",
            0,
        )
    else:
        verdict, code = f"MISSED: the agent route is more than {MAX_SLOWDOWN:.0%} below the baseline in every run", 1
    text = markdown(scenarios, results, counts, args, client, ratio, verdict, versions, machine_description(admin_url))
    print()
    print(text)
    if args.write:
        write_section("agent-auth", text)
    return code


def markdown(
    scenarios: list[Scenario],
    results: dict[str, list[Run]],
    counts: dict[str, tuple[int, int]],
    args: argparse.Namespace,
    client: str,
    ratio: float,
    verdict: str,
    versions: str,
    machine: str,
) -> str:
    """The section's table, the ratio, the machine and the command that produced them."""
    lines = [
        f"Run on {datetime.now(UTC):%Y-%m-%d}: gunicorn, one sync worker; {client} on the same machine, "
        f"{args.warmup:g} s of warm-up a route, then {args.runs} interleaved run(s) of {args.duration:g} s; "
        "medians shown.",
        "",
        f"| route | SQL queries | req/s (median of {args.runs}) | p50 ms | p99 ms | req/s of each run | spread |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for scenario in scenarios:
        runs = results[scenario.key]
        rates = [run.rate for run in runs]
        lines.append(
            f"| ({scenario.key}) {scenario.label} | {counts[scenario.key][1]} | {statistics.median(rates):,.0f} "
            f"| {statistics.median(run.p50_ms for run in runs):.2f} "
            f"| {statistics.median(run.p99_ms for run in runs):.2f} "
            f"| {', '.join(f'{rate:,.0f}' for rate in rates)} | {spread(rates):.0%} |"
        )
    lines += [
        "",
        f"Agent route / baseline throughput: **{ratio:.0%}** (target: at least {1 - MAX_SLOWDOWN:.0%}). "
        f"Result: {verdict}.",
        "",
        f"Machine: {machine}; {versions}. wrk, gunicorn and PostgreSQL share the cores, and other work may "
        "run at the same time: read the ratio within one run, not the absolute figures.",
        "",
        "```sh",
        "make bench-auth BENCH_AUTH_ARGS='"
        + f"--duration {args.duration:g} --warmup {args.warmup:g} --runs {args.runs} "
        + f"--connections {args.connections} --write'",
        "```",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
