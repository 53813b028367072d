"""gunicorn's configuration for coderauth, given on its command line:

    gunicorn -c python:coderauth.gunicorn coderauth.wsgi --workers 4 ...

It sets up the metrics of several workers (docs/operations.md#metrics): every worker counts in files of its own
in one directory (prometheus_client's multiprocess mode), and a scrape, whichever worker answers it, sums them
all. The directory is emptied at each start, so the counters start from zero as a single process's would, and
it reaches the workers as PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads when a worker first imports it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

# prometheus_client's own file names: the only files removed from a directory the operator named.
_METRICS_FILE = re.compile(r"^(counter|gauge_[a-z]+|histogram|summary)_\d+\.db$")
_run_directory: Path | None = None


def on_starting(server) -> None:
    """In the master, before any worker exists: prepare this run's directory and hand it to the workers."""
    global _run_directory
    if "prometheus_client" in sys.modules:
        # Loaded before the directory was set (--preload): the workers would each count alone and /metrics would
        # show one of them. Refuse to start rather than serve wrong figures.
        raise RuntimeError("coderauth's metrics need the app loaded by each worker: start gunicorn without --preload.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coderauth.settings")
    from django.conf import settings

    if settings.CODERAUTH_METRICS_DIR:
        directory = Path(settings.CODERAUTH_METRICS_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        for entry in directory.iterdir():
            if _METRICS_FILE.match(entry.name):
                entry.unlink()
    else:
        directory = _run_directory = Path(tempfile.mkdtemp(prefix="coderauth-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def child_exit(server, worker) -> None:
    """In the master, after a worker exited: its live gauges go. Its counters stay, so totals never go back."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_exit(server) -> None:
    if _run_directory is not None:
        shutil.rmtree(_run_directory, ignore_errors=True)
