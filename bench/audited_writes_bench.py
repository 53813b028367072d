"""Audited writes under concurrency: agent token issue and workspace mode change, with and without the audit row.

    make bench-writes                                 # or:
    DATABASE_URL=postgres://... .venv/bin/python bench/audited_writes_bench.py --duration 5 --rounds 3

Every state change appends an audit row in its own transaction (audit/services.py); a sealer links the
committed rows into the hash chain afterwards (audit/sealing.py). This bench measures what auditing costs
the writers, with a sealer running as it does in production. It creates a dedicated database
(`coderauth_bench_writes` on the server of DATABASE_URL), migrates it,
and creates, through the real services, one admin and a workspace with an agent per client, so that
clients share no row but the chain. Each client is a process with its own database connection that
calls the real service in a loop for --duration seconds:

  token issue    agents.services.tokens.agent_token_issue on its own agent
  mode change    agents.services.workspaces.workspace_mode_set on its own workspace, between two modes

at 1, 8 and 32 clients, audited (the product) and unaudited. Unaudited is a switch of this bench only:
inside the client process, the services' `audit_record` is replaced by a no-op. Audited cells run one
sealer process beside the clients (the loop of `manage.py seal_audit`) and report how many rows it left
unsealed when the clients stopped and how long it then took to catch up. Cells run in alternating
order (audited/unaudited inside clients inside operation inside round); the table shows medians over
--rounds. It exits 1 when, at 8 clients, audited throughput is below WRITE_TARGET of unaudited.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_description, write_section  # noqa: E402
from bench.servers import DEFAULT_ADMIN_URL, database_url_for, drop_database, recreate_database  # noqa: E402

WRITE_TARGET = 0.8
CLIENTS = (1, 8, 32)
OPERATIONS = ("token issue", "mode change")


@dataclass(frozen=True)
class Cell:
    writes: int
    seconds: float
    # Audited cells: rows unsealed when the clients stopped, and the time the sealer then took to seal them.
    unsealed_at_end: int = 0
    catch_up_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.writes / self.seconds


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def prepare(clients: int) -> None:
    """Migrate, then one admin and, per client, a workspace with one agent."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from agents.services.workspaces import agent_create, workspace_create

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    admin = get_user_model().objects.create_superuser("bench-admin", email="bench-admin@example.com")
    for number in range(clients):
        workspace = workspace_create(actor=admin, name=f"bench-{number}")
        agent_create(actor=admin, workspace=workspace, name="main")
    connection.close()


def client(number: int, operation: str, audited: bool, seconds: float, start_at: float, queue) -> None:
    """One client process: its own connection, the real service in a loop; puts (writes, elapsed)."""
    import django.db
    from django.contrib.auth import get_user_model

    from agents.models import Workspace, WorkspaceAgent
    from agents.services import tokens, workspaces
    from policies.models import PermissionMode
    from policies.scopes import MODE_DEFAULT, MODE_NO_USER_DATA

    django.db.connections.close_all()  # never share the parent's socket
    if not audited:

        def no_audit(**_kwargs) -> None:
            return None

        tokens.audit_record = no_audit
        workspaces.audit_record = no_audit

    admin = get_user_model().objects.get(username="bench-admin")
    workspace = Workspace.objects.get(name=f"bench-{number}")
    agent = WorkspaceAgent.objects.select_related("workspace").get(workspace=workspace)
    modes = [PermissionMode.objects.get(pk=MODE_NO_USER_DATA), PermissionMode.objects.get(pk=MODE_DEFAULT)]
    writes = 0
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        if operation == "token issue":
            tokens.agent_token_issue(actor=admin, agent=agent, name="bench")
        else:
            workspace = workspaces.workspace_mode_set(
                actor=admin, workspace=workspace, permission_mode=modes[writes % 2]
            )
        writes += 1
    queue.put((writes, time.perf_counter() - started))
    django.db.connections.close_all()


def sealer(stop, queue) -> None:
    """The seal_audit loop in its own process; when told to stop, reports the backlog and seals it, timed."""
    import django.db

    from audit.sealing import audit_seal, audit_unsealed_count

    django.db.connections.close_all()
    while not stop.is_set():
        if not audit_seal(wait_seconds=5).go_again_at_once:
            stop.wait(0.5)
    backlog = audit_unsealed_count()
    started = time.perf_counter()
    while audit_seal(wait_seconds=5).pending:
        pass
    queue.put((backlog, time.perf_counter() - started))
    django.db.connections.close_all()


def measure(operation: str, audited: bool, clients: int, seconds: float) -> Cell:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    # Every client starts at the same moment, after the slowest fork: the cell measures only the steady state.
    start_at = time.time() + 1 + clients * 0.05
    processes = [
        context.Process(target=client, args=(number, operation, audited, seconds, start_at, queue))
        for number in range(clients)
    ]
    stop, sealer_queue = context.Event(), context.Queue()
    sealing = context.Process(target=sealer, args=(stop, sealer_queue)) if audited else None
    for process in processes + ([sealing] if sealing else []):
        process.start()
    results = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    backlog, catch_up = 0, 0.0
    if sealing:
        stop.set()
        backlog, catch_up = sealer_queue.get(timeout=300)
        sealing.join()
    return Cell(
        writes=sum(result[0] for result in results),
        seconds=max(result[1] for result in results),
        unsealed_at_end=backlog,
        catch_up_seconds=catch_up,
    )


def markdown(results: dict[tuple[str, bool, int], list[Cell]], args: argparse.Namespace, machine: str):
    lines = [
        f"One process and connection per client, {args.duration:g} s a cell, {args.rounds} alternating round(s), "
        "medians shown. Audited cells run one sealer beside the clients (the `seal_audit` loop); the last two "
        "columns say how many rows it had not sealed yet when the clients stopped, and how long it took to seal them.",
        "",
        "| operation | clients | audited writes/s | unaudited writes/s | audited / unaudited "
        "| unsealed when the clients stopped | sealer catch-up ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    met = True
    for operation in OPERATIONS:
        for clients in args.clients:
            audited = results[(operation, True, clients)]
            unaudited = results[(operation, False, clients)]
            ratio = statistics.median(a.rate / u.rate for a, u in zip(audited, unaudited, strict=True))
            if clients == 8:
                met &= ratio >= WRITE_TARGET
            lines.append(
                f"| {operation} | {clients} | {statistics.median(cell.rate for cell in audited):,.0f} "
                f"| {statistics.median(cell.rate for cell in unaudited):,.0f} | {ratio:.0%} "
                f"| {statistics.median(cell.unsealed_at_end for cell in audited):,.0f} "
                f"| {statistics.median(cell.catch_up_seconds for cell in audited) * 1000:,.0f} |"
            )
    lines += [
        "",
        f"Target: with 8 clients, audited at least {WRITE_TARGET:.0%} of unaudited. "
        f"Result: {'met' if met else 'MISSED'}.",
        "",
        f"Machine: {machine}. Other work may share the machine, so read the ratios, not the absolutes.",
        "",
        "```sh",
        f"bench/audited_writes_bench.py --duration {args.duration:g} --rounds {args.rounds}",
        "```",
    ]
    return "\n".join(lines), met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median counts")
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--database", default="coderauth_bench_writes", help="bench database, created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--write", action="store_true", help="replace the audited-writes section of docs/benchmarks.md")
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL") or DEFAULT_ADMIN_URL
    env = {
        "DATABASE_URL": database_url_for(admin_url, args.database),
        "DJANGO_SETTINGS_MODULE": "coderauth.settings",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    # A SIGTERM (timeout, Ctrl-C from make) still drops the database in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    recreate_database(admin_url, args.database)
    results: dict[tuple[str, bool, int], list[Cell]] = {}
    try:
        setup_django(env)
        prepare(max(args.clients))
        for round_number in range(1, args.rounds + 1):
            for operation in OPERATIONS:
                for clients in args.clients:
                    for audited in (True, False):
                        cell = measure(operation, audited, clients, args.duration)
                        results.setdefault((operation, audited, clients), []).append(cell)
                        print(
                            f"  round {round_number}, {operation}, {clients:>2} clients, "
                            f"{'audited  ' if audited else 'unaudited'}: {cell.rate:7,.0f} writes/s"
                            + (
                                f", {cell.unsealed_at_end} unsealed at the end, sealed in "
                                f"{cell.catch_up_seconds * 1000:.0f} ms"
                                if audited
                                else ""
                            ),
                            flush=True,
                        )
    finally:
        if not args.keep:
            drop_database(admin_url, args.database)

    text, met = markdown(results, args, machine_description(admin_url))
    print()
    print(text)
    if args.write:
        write_section("audited-writes", text)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
