"""Audited writes under concurrency: agent token issue and workspace mode change, with and without the audit row.

    make bench-writes                                 # or:
    DATABASE_URL=postgres://... .venv/bin/python bench/audited_writes_bench.py --duration 5 --rounds 3

Every state change appends to the audit hash chain under one advisory lock (audit/services.py,
chain_lock), so all audited writes form one global queue. This bench measures what that queue costs.
It creates a dedicated database (`coderauth_bench_writes` on the server of DATABASE_URL), migrates it,
and creates, through the real services, one admin and a workspace with an agent per client, so that
clients share no row but the chain. Each client is a process with its own database connection that
calls the real service in a loop for --duration seconds:

  token issue    agents.services.tokens.agent_token_issue on its own agent
  mode change    agents.services.workspaces.workspace_mode_set on its own workspace, between two modes

at 1, 8 and 32 clients, audited (the product) and unaudited. Unaudited is a switch of this bench only:
inside the client process, the services' `audit_record` is replaced by a no-op. Audited runs also time
the chain lock (the wait in `SELECT pg_advisory_xact_lock`) from the client. Cells run in alternating
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

from bench.agent_auth_bench import DEFAULT_ADMIN_URL, database_url_for, drop_database, recreate_database  # noqa: E402
from bench.report import machine_description, write_section  # noqa: E402

WRITE_TARGET = 0.8
CLIENTS = (1, 8, 32)
OPERATIONS = ("token issue", "mode change")


@dataclass(frozen=True)
class Cell:
    writes: int
    seconds: float
    lock_wait_seconds: float
    lock_held_seconds: float

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
    """One client process: its own connection, the real service in a loop; puts (writes, elapsed, lock wait)."""
    import django.db
    from django.contrib.auth import get_user_model

    import audit.services
    from agents.models import Workspace, WorkspaceAgent
    from agents.services import tokens, workspaces
    from policies.models import PermissionMode
    from policies.scopes import MODE_DEFAULT, MODE_NO_USER_DATA

    django.db.connections.close_all()  # never share the parent's socket
    lock_wait = lock_held = 0.0
    acquired = None
    if audited:
        take_lock = audit.services.chain_lock

        def timed_chain_lock() -> None:
            nonlocal lock_wait, acquired
            started = time.perf_counter()
            take_lock()
            acquired = time.perf_counter()
            lock_wait += acquired - started

        audit.services.chain_lock = timed_chain_lock
    else:

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
        if acquired is not None:
            # The lock is held until the service's transaction has committed, WAL flush included.
            lock_held += time.perf_counter() - acquired
            acquired = None
        writes += 1
    queue.put((writes, time.perf_counter() - started, lock_wait, lock_held))
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
    for process in processes:
        process.start()
    results = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    return Cell(
        writes=sum(result[0] for result in results),
        seconds=max(result[1] for result in results),
        lock_wait_seconds=sum(result[2] for result in results),
        lock_held_seconds=sum(result[3] for result in results),
    )


def markdown(results: dict[tuple[str, bool, int], list[Cell]], args: argparse.Namespace, machine: str):
    lines = [
        f"One process and connection per client, {args.duration:g} s a cell, {args.rounds} alternating round(s), "
        "medians shown. Lock wait: the share of the clients' time spent waiting in `pg_advisory_xact_lock` "
        "for the chain, and the mean wait per write. Lock held: from taking the lock to the service's return "
        "(after its commit) per write, and the share of the cell's time the lock was held by someone.",
        "",
        "| operation | clients | audited writes/s | unaudited writes/s | audited / unaudited "
        "| lock wait (share of time) | lock wait per write ms | lock held per write ms | lock held (share of time) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    met = True
    for operation in OPERATIONS:
        for clients in args.clients:
            audited = results[(operation, True, clients)]
            unaudited = results[(operation, False, clients)]
            ratio = statistics.median(a.rate / u.rate for a, u in zip(audited, unaudited, strict=True))
            share = statistics.median(cell.lock_wait_seconds / (cell.seconds * clients) for cell in audited)
            per_write = statistics.median(cell.lock_wait_seconds / max(cell.writes, 1) * 1000 for cell in audited)
            held = statistics.median(cell.lock_held_seconds / max(cell.writes, 1) * 1000 for cell in audited)
            held_share = statistics.median(cell.lock_held_seconds / cell.seconds for cell in audited)
            if clients == 8:
                met &= ratio >= WRITE_TARGET
            lines.append(
                f"| {operation} | {clients} | {statistics.median(cell.rate for cell in audited):,.0f} "
                f"| {statistics.median(cell.rate for cell in unaudited):,.0f} | {ratio:.0%} | {share:.0%} "
                f"| {per_write:.2f} | {held:.2f} | {held_share:.0%} |"
            )
    lines += [
        "",
        f"Target: with 8 clients, audited at least {WRITE_TARGET:.0%} of unaudited. "
        f"Result: {'met' if met else 'MISSED'}.",
        "",
        f"Machine: {machine}. Shared with other work while measured, so read the ratios, not the absolutes.",
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
                                f", lock wait {cell.lock_wait_seconds / cell.writes * 1000:.2f} ms/write, "
                                f"held {cell.lock_held_seconds / cell.writes * 1000:.2f} ms/write"
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
