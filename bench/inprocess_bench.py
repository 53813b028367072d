"""Agent hot path in one process: what a request costs inside Django, next to a view without authentication
and three peers, through Django's test client (no HTTP server, no socket but PostgreSQL's).

    make bench-inprocess                      # or:
    DATABASE_URL=postgres://... .venv/bin/python bench/inprocess_bench.py --rounds 7 --requests 300 [--write]
    ... bench/inprocess_bench.py --profile     # pyinstrument profiles of the two agent routes, then exit

It creates a dedicated database (`coderauth_bench_inprocess` on the server of DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/postgres), migrates it under bench/settings_inprocess.py (the product's
settings plus DRF's authtoken, django-rest-knox and djangorestframework-api-key), creates a user, workspace,
agent and agent token through the real services and one credential of each peer for the same user, then runs
--rounds rounds; each round sends --requests requests to every route in turn, so a noisy moment hits all of them:

  no-auth        GET a DRF view without authentication or permission (the floor: routing, middleware, DRF, JSON)
  drf-token      GET the manifest's shape behind DRF's TokenAuthentication (`Token <key>`, plaintext key in the DB)
  knox           the same behind django-rest-knox (`Token <token>`, SHA-512 digest)
  api-key        the same behind djangorestframework-api-key (`Api-Key <key>`, a permission class)
  manifest       GET /api/v2/workspaceagents/me/manifest with the agent token
  app-status     PATCH /api/v2/workspaceagents/me/app-status with the agent token (a write: quota spend + insert)

The table gives each route's median µs per request over the rounds, its median ratio to no-auth within the same
round, and the SQL queries of one warm request. The database persists its connection across requests, as a
production worker with CONN_MAX_AGE does. The database is dropped at the end unless --keep. No token is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_description, write_section  # noqa: E402
from bench.servers import DEFAULT_ADMIN_URL, database_url_for, drop_database, recreate_database  # noqa: E402

MANIFEST = "/api/v2/workspaceagents/me/manifest"
APP_STATUS = "/api/v2/workspaceagents/me/app-status"
APP_STATUS_BODY = json.dumps({"app_slug": "code-server", "state": "working", "message": "Building the index"})
TARGET_RATIO = 2.0


@dataclass(frozen=True)
class Route:
    key: str
    label: str
    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None
    expected_status: int = 200


def prepare(env: dict[str, str]) -> list[Route]:
    """Migrate, create the principals through the real services and the peers' credentials; tokens stay in memory."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from knox.models import AuthToken
    from rest_framework.authtoken.models import Token
    from rest_framework_api_key.models import APIKey

    from agents.services.tokens import agent_token_issue
    from agents.services.workspaces import agent_create, workspace_create

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    user = get_user_model().objects.create_user("bench-owner", email="bench-owner@example.com")
    workspace = workspace_create(actor=user, name="bench")
    agent = agent_create(actor=user, workspace=workspace, name="main")
    agent_token = agent_token_issue(actor=user, agent=agent, name="bench").plaintext
    drf_key = Token.objects.create(user=user).key
    _, knox_token = AuthToken.objects.create(user=user)
    _, api_key = APIKey.objects.create_key(name="bench")
    agent_header = {"Authorization": f"Bearer {agent_token}"}
    return [
        Route("no-auth", "DRF view, no authentication (the floor)", "GET", "/api/bench/no-auth", {}),
        Route("drf-token", "DRF TokenAuthentication", "GET", "/api/bench/drf-token/manifest",
              {"Authorization": f"Token {drf_key}"}),
        Route("knox", "django-rest-knox", "GET", "/api/bench/knox/manifest", {"Authorization": f"Token {knox_token}"}),
        Route("api-key", "djangorestframework-api-key", "GET", "/api/bench/api-key/manifest",
              {"Authorization": f"Api-Key {api_key}"}),
        Route("manifest", "coderauth: GET workspaceagents/me/manifest", "GET", MANIFEST, agent_header),
        Route("app-status", "coderauth: PATCH workspaceagents/me/app-status", "PATCH", APP_STATUS, agent_header,
              APP_STATUS_BODY),
    ]  # fmt: skip


def send(client, route: Route):
    if route.body is None:
        return client.generic(route.method, route.path, headers=route.headers)
    return client.generic(route.method, route.path, route.body, content_type="application/json", headers=route.headers)


def queries_of(client, route: Route) -> tuple[int, int]:
    """(status, SQL queries) of one warm request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    send(client, route)
    with CaptureQueriesContext(connection) as captured:
        response = send(client, route)
    return response.status_code, len(captured.captured_queries)


def round_of(client, route: Route, requests: int) -> tuple[float, float]:
    """Mean wall-clock and mean CPU µs (this process) per request over `requests` requests; raises when one
    answers an unexpected status. The CPU time leaves out the database's share and most of the noise of a busy
    machine; the wall-clock time is what a client waits."""
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        response = send(client, route)
        if response.status_code != route.expected_status:
            raise RuntimeError(f"{route.key} answered {response.status_code}: {response.content[:200]!r}")
    return (time.perf_counter() - started) / requests * 1e6, (time.process_time() - started_cpu) / requests * 1e6


def profile(client, routes: list[Route], requests: int) -> None:
    from pyinstrument import Profiler

    for route in routes:
        if route.key not in ("manifest", "app-status", "no-auth"):
            continue
        round_of(client, route, 50)
        profiler = Profiler(interval=0.0001)
        profiler.start()
        round_of(client, route, requests)
        profiler.stop()
        print(f"\n### {route.key}: {requests} requests\n")
        print(profiler.output_text(unicode=False, color=False, show_all=False))


def render(routes: list[Route], timings: dict[str, list[tuple[float, float]]], counts, args, machine) -> str:
    lines = [
        f"Django test client in one process, {args.rounds} alternating rounds × {args.requests} requests per route, "
        "persistent database connection; medians of the rounds, each ratio to the no-auth view taken within its "
        "round. Wall is what the client waits (the database included); CPU is this process's own time. Measured on "
        "a machine other work may share: the ratios, and the CPU figures, are "
        "steadier than the wall-clock µs.",
        "",
        "| route | wall µs (min–max) | wall × no-auth | CPU µs | CPU × no-auth | SQL queries |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    floor = timings["no-auth"]
    for route in routes:
        values = timings[route.key]
        walls = [wall for wall, _ in values]
        wall_ratio = statistics.median(wall / base for (wall, _), (base, _) in zip(values, floor, strict=True))
        cpu_ratio = statistics.median(cpu / base for (_, cpu), (_, base) in zip(values, floor, strict=True))
        lines.append(
            f"| {route.label} | {statistics.median(walls):.0f} ({min(walls):.0f}–{max(walls):.0f}) "
            f"| {wall_ratio:.2f}× | {statistics.median(cpu for _, cpu in values):.0f} | {cpu_ratio:.2f}× "
            f"| {counts[route.key][1]} |"
        )
    lines += [
        "",
        f"Target: each agent route within {TARGET_RATIO:.1f}× the no-auth view. Machine: {machine}.",
        "",
        "```sh",
        f"make bench-inprocess BENCH_INPROCESS_ARGS='--rounds {args.rounds} --requests {args.requests} --write'",
        "```",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300, help="requests per route and round")
    parser.add_argument("--database", default="coderauth_bench_inprocess")
    parser.add_argument("--profile", action="store_true", help="print pyinstrument profiles instead of timing")
    parser.add_argument("--write", action="store_true", help="replace the 'inprocess' section of docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL") or DEFAULT_ADMIN_URL
    env = {
        "DATABASE_URL": database_url_for(admin_url, args.database),
        "DJANGO_SETTINGS_MODULE": "bench.settings_inprocess",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "testserver",
        "SERVED_OVER_HTTPS": "false",
        "DATABASE_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
    }
    recreate_database(admin_url, args.database)
    try:
        routes = prepare(env)
        from django.db import connection
        from django.test import Client

        logging.getLogger("django.request").setLevel(logging.ERROR)
        client = Client()
        counts = {route.key: queries_of(client, route) for route in routes}
        for route in routes:
            if counts[route.key][0] != route.expected_status:
                print(f"error: {route.key} answered {counts[route.key][0]}, expected {route.expected_status}")
                return 1
        if args.profile:
            profile(client, routes, args.requests)
            connection.close()
            return 0
        timings: dict[str, list[tuple[float, float]]] = {route.key: [] for route in routes}
        for route in routes:
            round_of(client, route, max(50, args.requests // 5))  # warm-up
        for number in range(args.rounds):
            # Alternate the order each round so neither end of the round is always the same route.
            ordered_routes = routes if number % 2 == 0 else list(reversed(routes))
            this_round = {route.key: round_of(client, route, args.requests) for route in ordered_routes}
            for route in routes:
                timings[route.key].append(this_round[route.key])
            print(
                f"round {number + 1}/{args.rounds}: " + ", ".join(f"{k} {v[0]:.0f} µs" for k, v in this_round.items())
            )
        connection.close()
        markdown = render(routes, timings, counts, args, machine_description(admin_url))
        print(markdown)
        if args.write:
            write_section("inprocess", markdown)
        # Informational: the exit status says whether the wall-clock target held in this run.
        worst = max(
            statistics.median(
                wall / base for (wall, _), (base, _) in zip(timings[key], timings["no-auth"], strict=True)
            )
            for key in ("manifest", "app-status")
        )
        return 0 if worst <= TARGET_RATIO else 1
    finally:
        if not args.keep:
            drop_database(admin_url, args.database)


if __name__ == "__main__":
    sys.exit(main())
