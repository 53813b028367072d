"""Scale-of-data benchmark: the big lists, the audit filters, the permissions report and a mode change at scale.

    make bench-scale                                  # or:
    DATABASE_URL=postgres://... .venv/bin/python bench/scale_bench.py --events 100000 --rounds 3

It creates a dedicated database (`coderauth_bench_scale` on the server of DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/postgres), migrates it, and fills it with `manage.py seed_scale`
(default: 10,000 workspaces, 20,000 agents, 100,000 tokens, 1,000,000 audit events, the first workspace
holding 1,000 agents). It then times, in-process through Django's test client as the seeded admin
(so the figures are the app's own time, without a web server or network):

  - GET /api/v2/workspaces, the first page and a deep page (cursor followed --deep-pages times);
  - GET /workspaces/, the web page, the first page and a deep one;
  - GET /api/v2/audit with each filter (action, workspace, agent, since) and all of them at once;
  - GET /api/v2/reports/permissions?format=csv (every agent) with the process's peak RSS growth,
    and the report's first JSON page;
  - workspace_mode_set on the workspace with 1,000 agents (alternating between two modes).

Each scenario runs --requests times per round; rounds alternate across scenarios so a noisy moment
hits them all; the table shows the median of the rounds' p50s. EXPLAIN of each audit filter says whether
a sequential scan is left. --write replaces the `scale` section of docs/benchmarks.md; --keep keeps the
database, --reuse measures a database kept earlier without seeding again. No token is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_description, write_section  # noqa: E402
from bench.servers import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    database_exists,
    database_url_for,
    drop_database,
    recreate_database,
)

DATABASE = "coderauth_bench_scale"
AUDIT_TARGET_MS = 50.0
REPORT_TARGET_MS = 2000.0


def seed(args, env: dict[str, str]) -> float:
    """Migrate and run seed_scale in a child process (its progress bar on our stderr); returns the seconds taken."""
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0", "--no-input"], env=env, check=True)  # noqa: S603
    started = time.monotonic()
    subprocess.run(  # noqa: S603 - our own manage.py
        [
            *manage,
            "seed_scale",
            f"--workspaces={args.workspaces}",
            f"--agents={args.agents}",
            f"--tokens={args.tokens}",
            f"--events={args.events}",
            f"--big-workspace-agents={args.big_workspace_agents}",
        ],
        env=env,
        check=True,
    )
    return time.monotonic() - started


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(args, env: dict[str, str]) -> dict:
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from agents.models import AgentToken, Workspace, WorkspaceAgent
    from agents.services.scale import SEED_PREFIX
    from agents.services.workspaces import workspace_mode_set
    from audit import actions
    from audit.models import AuditEvent
    from policies.models import PermissionMode
    from policies.scopes import MODE_DEFAULT, MODE_NO_USER_DATA

    admin = get_user_model().objects.filter(username__startswith=SEED_PREFIX, is_superuser=True).latest("id")
    client = Client()
    client.force_login(admin)
    counts = {
        "workspaces": Workspace.objects.count(),
        "agents": WorkspaceAgent.objects.count(),
        "tokens": AgentToken.objects.count(),
        "events": AuditEvent.objects.count(),
    }

    def get(url: str) -> Callable[[], None]:
        def run() -> None:
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"{url}: {response.status_code} {response.content[:300]!r}")
            if response.streaming:
                for _chunk in response.streaming_content:
                    pass

        return run

    deep_api = "/api/v2/workspaces"
    for _ in range(args.deep_pages):
        next_url = client.get(deep_api).json().get("next")
        if not next_url:
            break
        deep_api = next_url
    deep_page = max(1, counts["workspaces"] // 25 // 2)

    big = Workspace.objects.filter(owner__username__startswith=SEED_PREFIX).order_by("created_at", "name").first()
    big_agents = big.agents.count()
    sample_agent = WorkspaceAgent.objects.exclude(workspace=big).order_by("id").first()
    modes = [PermissionMode.objects.get(name=MODE_NO_USER_DATA), PermissionMode.objects.get(name=MODE_DEFAULT)]
    flips = {"n": 0}

    def mode_change() -> None:
        flips["n"] += 1
        workspace_mode_set(actor=admin, workspace=big, permission_mode=modes[flips["n"] % 2], reason="bench")

    # One day back from the newest row: a narrow window, the common "what happened lately" question.
    newest = AuditEvent.objects.order_by("-id").values_list("time", flat=True).first()
    since = (newest - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    audit = "/api/v2/audit"
    filters = {
        "action": f"action={actions.AGENT_ACCESS_DENIED}",
        "workspace": f"workspace={sample_agent.workspace_id}",
        "agent": f"agent={sample_agent.id}",
        "since": f"since={since}",
        "all four": (
            f"action={actions.AGENT_ACCESS_DENIED}&workspace={sample_agent.workspace_id}"
            f"&agent={sample_agent.id}&since={since}"
        ),
    }
    scenarios: dict[str, Callable[[], None]] = {
        "API workspace list, first page": get("/api/v2/workspaces"),
        f"API workspace list, page {args.deep_pages + 1} (keyset)": get(deep_api),
        "web workspace list, first page": get("/workspaces/"),
        f"web workspace list, page {deep_page}": get(f"/workspaces/?page={deep_page}"),
        **{f"API audit list, filter: {name}": get(f"{audit}?{query}") for name, query in filters.items()},
        "API permissions report, first JSON page": get("/api/v2/reports/permissions"),
        f"mode change, workspace with {big_agents} agents": mode_change,
    }

    # Plans of the audit filters: is a sequential scan left at this size?
    plans = {}
    for name, query in filters.items():
        with CaptureQueriesContext(connection) as captured:
            get(f"{audit}?{query}")()
        sql = next(q["sql"] for q in captured.captured_queries if "audit_auditevent" in q["sql"])
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        plans[name] = "Seq Scan" in plan

    # The whole report: measured apart (once per round) with the peak RSS it adds.
    report_seconds, report_cpu, report_rss = [], [], []
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    for run in scenarios.values():
        run()  # warm up: connection, prepared statements, caches of the first request
    for _round in range(args.rounds):
        for name, run in scenarios.items():
            round_samples = []
            for _ in range(args.requests):
                started = time.perf_counter()
                run()
                round_samples.append(time.perf_counter() - started)
            samples[name].append(p50_ms(round_samples))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started, cpu_started = time.perf_counter(), time.process_time()
        get("/api/v2/reports/permissions?format=csv")()
        report_seconds.append(time.perf_counter() - started)
        # The app's own CPU time: on a loaded machine the wall time also holds the wait for a core.
        report_cpu.append(time.process_time() - cpu_started)
        report_rss.append((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024)
    return {
        "counts": counts,
        "p50": {name: statistics.median(values) for name, values in samples.items()},
        "spread": {name: (min(values), max(values)) for name, values in samples.items()},
        "report_ms": statistics.median(report_seconds) * 1000,
        "report_cpu_ms": statistics.median(report_cpu) * 1000,
        "report_rss_mib": report_rss,
        "seq_scans": plans,
    }


def markdown(results: dict, args, *, seed_seconds: float | None, machine: str) -> str:
    counts = results["counts"]
    lines = [
        f"Measured on {machine}; a machine other work may share (other benchmarks, test suites), so read the "
        "ratios and the targets' margins rather than the last digit.",
        "",
        f"Data: {counts['workspaces']:,} workspaces, {counts['agents']:,} agents, {counts['tokens']:,} agent tokens, "
        f"{counts['events']:,} audit events"
        + (f" (seeded by `seed_scale` in {seed_seconds:.0f} s)." if seed_seconds is not None else "."),
        "",
        f"Command: `make bench-scale` (`bench/scale_bench.py --workspaces {args.workspaces} --agents {args.agents} "
        f"--tokens {args.tokens} --events {args.events} --rounds {args.rounds} --requests {args.requests}`). "
        "In-process through Django's test client as an admin: the app's time without a web server.",
        "",
        "| scenario | p50 (median of rounds) | rounds' p50 range | target |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, value in results["p50"].items():
        low, high = results["spread"][name]
        target = ""
        if name.startswith("API audit list"):
            verdict = "met" if value < AUDIT_TARGET_MS else "MISSED"
            scan = "; seq scan" if results["seq_scans"].get(name.split("filter: ")[1]) else "; no seq scan"
            target = f"< {AUDIT_TARGET_MS:.0f} ms: {verdict}{scan}"
        lines.append(f"| {name} | {value:.1f} ms | {low:.1f}–{high:.1f} ms | {target} |")
    report_ms = results["report_ms"]
    verdict = "met" if report_ms < REPORT_TARGET_MS else "MISSED"
    rss = ", ".join(f"{value:.0f}" for value in results["report_rss_mib"])
    lines.append(
        f"| permissions report, every agent (CSV) | {report_ms:.0f} ms | | < {REPORT_TARGET_MS:.0f} ms: {verdict} |"
    )
    lines += [
        "",
        f"The whole report's CPU time in the app process (median): {results['report_cpu_ms']:.0f} ms; the rest of "
        "its wall time is PostgreSQL and waiting for a core.",
        f"Peak RSS growth of the process during each round's whole report (MiB): {rss}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspaces", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--big-workspace-agents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20, help="requests per scenario per round")
    parser.add_argument("--deep-pages", type=int, default=100, help="cursor pages followed for the deep page")
    parser.add_argument("--write", action="store_true", help="replace the `scale` section of docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a database kept by --keep without seeding")
    args = parser.parse_args()
    if not 0 < args.big_workspace_agents < args.agents:
        # The audit filters sample an agent outside the big workspace: there must be one.
        parser.error("--big-workspace-agents must be at least 1 and fewer than --agents")

    admin_url = os.environ.get("DATABASE_URL", DEFAULT_ADMIN_URL)
    url = database_url_for(admin_url, DATABASE)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "SERVED_OVER_HTTPS": "false",
        "LOG_LEVEL": "ERROR",
    }
    seed_seconds = None
    if not (args.reuse and database_exists(admin_url, DATABASE)):
        recreate_database(admin_url, DATABASE)
        seed_seconds = seed(args, env)
    try:
        results = measure(args, env)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(admin_url, DATABASE)
    text = markdown(results, args, seed_seconds=seed_seconds, machine=machine_description(admin_url))
    print(text)
    if args.write:
        write_section("scale", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
