"""Audit export benchmark: the real CSV endpoint under gunicorn against PostgreSQL's own COPY.

    make bench-export                         # or:
    DATABASE_URL=postgres://... .venv/bin/python bench/export_bench.py --rows 1000000

It creates a dedicated database (`coderauth_bench` on the server of DATABASE_URL), migrates
it, inserts the rows with one INSERT ... SELECT generate_series (valid-looking fields, but
not a valid hash chain: the chain costs nothing at export time and verify_audit is not
measured here), starts the app under gunicorn, downloads the CSV export through HTTP with an
auditor token and measures rows/s and the server worker's peak RSS (VmHWM). Then it runs
`COPY (the same query) TO STDOUT WITH CSV` through psycopg on the same rows. It drops the
database at the end unless --keep. It prints the results as Markdown; with --write it also
replaces the `export` section of docs/benchmarks.md (bench/report.py). No token is ever printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_description, write_section  # noqa: E402 - the path above first
from bench.servers import database_url_for, drop_database, free_port, recreate_database, start_gunicorn  # noqa: E402

TARGET_PEAK_RSS_MB = 200
TARGET_RATIO = 0.5

# Fields that look like the real log: eight actions, users and agents, details as the
# services write them, every 997th actor a formula so the CSV guard does real work.
INSERT_SQL = """
INSERT INTO audit_auditevent
    (time, action, actor_type, actor, workspace_id, agent_id, details, ip, user_agent, request_id, prev_hash, hash)
SELECT
    %(start)s::timestamptz + g * interval '2 milliseconds',
    (ARRAY['user.login', 'agent_token.issued', 'agent.user_data_accessed', 'agent.access_denied',
           'workspace.mode_changed', 'agent.mode_changed', 'user_token.issued', 'agent_token.revoked'])[1 + g %% 8],
    CASE WHEN g %% 3 = 0 THEN 'user' ELSE 'agent' END,
    CASE WHEN g %% 997 = 0 THEN '=HYPERLINK("http://x")'
         WHEN g %% 3 = 0 THEN 'user' || (g %% 50)
         ELSE md5('agent' || (g %% 400))::uuid::text END,
    md5('workspace' || (g %% 200))::uuid,
    md5('agent' || (g %% 400))::uuid,
    jsonb_build_object('route', 'gitsshkey', 'token_id', md5('token' || g)::uuid, 'mode', 'default',
                       'reason', 'routine access ' || (g %% 10)),
    ('10.0.' || (g %% 250) || '.' || (g %% 200 + 1))::inet,
    'coder-agent/2.18.1 (linux; amd64) python-httpx/0.28.1',
    md5('request' || g),
    encode(sha256(('prev' || g)::bytea), 'hex'),
    encode(sha256(('hash' || g)::bytea), 'hex')
FROM generate_series(1, %(rows)s) AS g
"""


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found for pid {pid}")


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.append(int(status.parent.name))
                break
    return found


def prepare(rows: int, env: dict[str, str]) -> tuple[str, int]:
    """Migrate, insert the rows, create an auditor (one more audit row: its token's issue).

    Returns the auditor's token, kept in memory only, and the number of rows in the log.
    """
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection

    from agents.services.users import user_token_issue

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    started = time.perf_counter()
    start = datetime.now(UTC) - timedelta(days=1)
    with connection.cursor() as cursor:
        cursor.execute(INSERT_SQL, {"start": start, "rows": rows})
    inserted = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    print(f"inserted {rows:,} rows in {inserted:.1f} s (then VACUUM ANALYZE)", flush=True)

    auditor = get_user_model().objects.create_user("bench-auditor")
    auditor.groups.add(Group.objects.get_or_create(name="auditor")[0])
    token = user_token_issue(user=auditor, name="bench").plaintext
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_auditevent")
        (total,) = cursor.fetchone()
    connection.close()
    return token, total


def export_through_api(port: int, token: str, until: str) -> tuple[int, int, float]:
    headers = {"Authorization": f"Bearer {token}"}
    params = {"format": "csv", "until": until}
    started = time.perf_counter()
    lines = size = 0
    with httpx.stream(
        "GET", f"http://127.0.0.1:{port}/api/v2/audit/export", params=params, headers=headers, timeout=900
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(chunk_size=1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return lines - 1, size, time.perf_counter() - started


RAW_COLUMNS_SQL = (
    "SELECT id, time, action, actor_type, actor, workspace_id, agent_id, details, ip, user_agent, request_id, "
    "prev_hash, hash FROM audit_auditevent WHERE time < %s ORDER BY id"
)


def export_with_copy(bench_url: str, until: datetime, *, raw: bool = False) -> tuple[int, int, float]:
    """PostgreSQL's own CSV of the same rows and cells (the export's filter, order and formula guard).

    With raw=True, the stored columns as they are (no time format, no guard): a reference point.
    """
    from audit.exports import audit_export_cells_sql
    from audit.selectors import AuditFilters

    if raw:
        sql, params = RAW_COLUMNS_SQL, [until]
    else:
        sql, params = audit_export_cells_sql(filters=AuditFilters(until=until))
    with psycopg.connect(bench_url) as conn:
        literal_sql = psycopg.ClientCursor(conn).mogrify(sql, params)
        started = time.perf_counter()
        rows = size = 0
        with conn.cursor() as cursor, cursor.copy(f"COPY ({literal_sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            # PostgreSQL sends one CopyData message per row (the header is one too).
            for chunk in copy:
                size += len(chunk)
                rows += 1
        return rows - 1, size, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each method; the best counts")
    parser.add_argument("--database", default="coderauth_bench", help="bench database, created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--write", action="store_true", help="replace the export section of docs/benchmarks.md")
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        parser.error("Set DATABASE_URL (make bench-export does), e.g. postgres://postgres@127.0.0.1:5432/postgres")
    bench_url = database_url_for(admin_url, args.database)
    env = {
        "DATABASE_URL": bench_url,
        "DJANGO_SETTINGS_MODULE": "coderauth.settings",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        # gunicorn on plain HTTP, no TLS proxy in front: no redirect to HTTPS.
        "SERVED_OVER_HTTPS": "false",
        "LOG_LEVEL": "WARNING",
    }
    recreate_database(admin_url, args.database)
    server = None
    try:
        token, expected_rows = prepare(args.rows, env)
        until = datetime.now(UTC) + timedelta(days=1)
        port = free_port()
        # A 900 s worker timeout: a slow export of a million rows must not be killed midway.
        server = start_gunicorn(port, env, timeout=900, ready_path="/api/schema/", ready_status=200)
        (worker,) = children_of(server.pid)
        # Warm the worker (imports, first connection, token touch) so the peak is the export's.
        httpx.get(
            f"http://127.0.0.1:{port}/api/v2/audit",
            params={"page_size": 1},
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
        rss_before = vm_kib(worker, "VmRSS")

        results = {"api": [], "copy": [], "raw": []}
        for _ in range(args.repeat):
            results["api"].append(export_through_api(port, token, until.isoformat()))
            results["copy"].append(export_with_copy(bench_url, until))
            results["raw"].append(export_with_copy(bench_url, until, raw=True))
        peak_kib = vm_kib(worker, "VmHWM")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if not args.keep:
            drop_database(admin_url, args.database)

    best = {method: min(runs, key=lambda run: run[2]) for method, runs in results.items()}
    for method, (rows, _, _) in best.items():
        if rows != expected_rows:
            print(f"error: {method} exported {rows} rows, expected {expected_rows}", file=sys.stderr)
            return 1
    api_rate = best["api"][0] / best["api"][2]
    copy_rate = best["copy"][0] / best["copy"][2]
    ratio = api_rate / copy_rate
    peak_mb = peak_kib / 1024
    met = peak_mb < TARGET_PEAK_RSS_MB and ratio >= TARGET_RATIO
    lines = [
        f"Run on {datetime.now(UTC):%Y-%m-%d}: {args.rows:,} rows, {args.repeat} run(s) of each method, "
        "alternating, best shown.",
        "",
        f"| method | rows | MB | seconds (best of {args.repeat}) | rows/s | all runs (s) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    labels = {
        "api": "GET /api/v2/audit/export?format=csv (gunicorn, 1 sync worker, over HTTP)",
        "copy": "COPY (same query: same rows, cells, guard, order) TO STDOUT WITH CSV",
        "raw": "reference: COPY of the stored columns unformatted (no guard, raw time)",
    }
    for method, label in labels.items():
        rows, size, seconds = best[method]
        runs = ", ".join(f"{run[2]:.2f}" for run in results[method])
        lines.append(f"| {label} | {rows:,} | {size / 1e6:.0f} | {seconds:.2f} | {rows / seconds:,.0f} | {runs} |")
    lines += [
        "",
        f"- The gunicorn worker's RSS was {rss_before / 1024:.0f} MB before the exports and peaked at "
        f"**{peak_mb:.0f} MB** (VmHWM). Target: under {TARGET_PEAK_RSS_MB} MB.",
        f"- Export throughput was **{ratio:.0%}** of COPY's. Target: at least {TARGET_RATIO:.0%}.",
        f"- Result: {'met' if met else 'MISSED'}. The log has one row more than inserted, the "
        "`user_token.issued` event of the benchmark's auditor.",
        "",
        f"Machine: {machine_description(admin_url)}. The client, gunicorn and PostgreSQL share the cores, and "
        "other work may run at the same time: read the ratio within one run, not the absolute figures.",
        "",
        "```sh",
        f"make bench-export BENCH_ARGS='--rows {args.rows} --repeat {args.repeat} --write'",
        "```",
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.write:
        write_section("export", text)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
