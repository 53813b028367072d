"""Where the benchmarks put their figures: one section of docs/benchmarks.md each, between markers.

Each benchmark prints its results as Markdown; with --write it also replaces its own section,

    <!-- bench:NAME -->
    ...generated...
    <!-- /bench:NAME -->

leaving the prose around it alone. `make bench` runs them all with --write. The machine block names
what the figures were measured on, since they mean little without it.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine_description(database_url: str | None = None) -> str:
    """Cores, memory, CPU model, Python and (with a database URL) the PostgreSQL server's version."""
    memory_kib = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    model = ""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    parts = [
        f"{os.cpu_count()} cores ({model or platform.processor() or 'unknown CPU'})",
        f"{memory_kib / 1024 / 1024:.1f} GiB memory",
        f"Python {platform.python_version()}",
    ]
    if database_url:
        version = subprocess.run(  # noqa: S603 - fixed command, the operator's own database URL
            ["psql", database_url, "-XAtc", "SHOW server_version"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if version:
            parts.append(f"PostgreSQL {version}")
    return ", ".join(parts)


def write_section(name: str, markdown: str, *, path: Path = BENCHMARKS_MD) -> None:
    """Replace the generated part of section `name` (appended at the end when the markers are missing)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _match: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
