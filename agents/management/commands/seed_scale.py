"""Seed a database at scale for the benchmarks: workspaces, agents, tokens and a valid audit chain."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from agents.services.scale import scale_foreign_data_exists, scale_seed


class Command(BaseCommand):
    help = (
        "Seed users, workspaces, agents, agent tokens and audit events in batches (defaults: 10,000 workspaces, "
        "20,000 agents, 100,000 tokens, 1,000,000 events), keeping the audit chain valid. Refuses a database "
        "holding data a seed did not write unless --force. No token is printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workspaces", type=int, default=10_000)
        parser.add_argument("--agents", type=int, default=20_000)
        parser.add_argument("--tokens", type=int, default=100_000)
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument(
            "--big-workspace-agents", type=int, default=1000, help="agents in the first workspace (default 1000)"
        )
        parser.add_argument("--force", action="store_true", help="seed even beside data a seed did not write")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args, workspaces, agents, tokens, events, big_workspace_agents, force, no_progress, **options):
        for name, value in (("workspaces", workspaces), ("agents", agents), ("tokens", tokens), ("events", events)):
            if not 0 <= value <= 100_000_000:
                raise CommandError(f"--{name} must be between 0 and 100000000.")
        if workspaces < 1 and (agents or tokens):
            raise CommandError("Agents and tokens need at least one workspace.")
        if agents < 1 and tokens:
            raise CommandError("Tokens need at least one agent.")
        if not force and scale_foreign_data_exists():
            raise CommandError(
                "This database holds data seed_scale did not write (users or audit events); "
                "seed a dedicated database, or pass --force."
            )
        started = time.monotonic()
        progress = None if no_progress else _progress_bar(self.stderr)
        counts = scale_seed(
            workspaces=workspaces,
            agents=agents,
            agent_tokens=tokens,
            events=events,
            big_workspace_agents=big_workspace_agents,
            progress=progress,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {counts.users} users, {counts.workspaces} workspaces, {counts.agents} agents, "
                f"{counts.tokens} tokens and {counts.events} audit events in {time.monotonic() - started:.1f} s."
            )
        )


def _progress_bar(stream):
    def report(stage: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        stream.write(f"\r{stage:>13} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
        if done >= total:
            stream.write("")
        stream.flush()

    return report
