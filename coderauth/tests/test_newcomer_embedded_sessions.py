"""scripts/with-database.sh and the embedded PostgreSQL: commands that overlap share one server, and it
stops when the last of them ends, whichever started it (`make manage` next to `make run`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir():
    # Not pytest's tmp_path: as root, pgserver runs PostgreSQL as its own user, who must reach the directory.
    parent = Path(tempfile.mkdtemp(prefix="coderauth-sessions-"))
    parent.chmod(0o755)
    yield parent / "pgdata"
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "coderauth.embedded_db", "stop", "--data", str(parent / "pgdata")], check=False
    )
    shutil.rmtree(parent, ignore_errors=True)


def _environment(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return {**env, "CODERAUTH_PGDATA": str(data_dir)}


def _running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().splitlines()[0]), 0)
    except ProcessLookupError:
        return False
    return True


class Session:
    """One `scripts/with-database.sh` command that holds the server until it is released."""

    def __init__(self, data_dir: Path, name: str):
        self.ready, self.release = data_dir.parent / f"{name}.ready", data_dir.parent / f"{name}.release"
        wait = f'touch "{self.ready}"; while [ ! -e "{self.release}" ]; do sleep 0.1; done'
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            ["scripts/with-database.sh", "sh", "-c", wait], cwd=BASE_DIR, env=_environment(data_dir)
        )
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            assert self.process.poll() is None, "with-database.sh ended before running its command"
            assert time.monotonic() < deadline, "with-database.sh did not start its command"
            time.sleep(0.1)

    def end(self) -> None:
        self.release.touch()
        assert self.process.wait(timeout=60) == 0


def _db_command(data_dir: Path, command: str) -> None:
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "coderauth.embedded_db", command], cwd=BASE_DIR, env=_environment(data_dir), check=True
    )


def test_the_first_command_ending_leaves_the_server_to_the_other(data_dir):
    """`make run` started first, `make manage ARGS=shell` second, and `make run` stopped first."""
    first = Session(data_dir, "first")
    second = Session(data_dir, "second")
    first.end()
    assert _running(data_dir)
    second.end()
    assert not _running(data_dir)


def test_the_later_command_ending_first_leaves_it_running_too(data_dir):
    first = Session(data_dir, "first")
    second = Session(data_dir, "second")
    second.end()
    assert _running(data_dir)
    first.end()
    assert not _running(data_dir)


def test_a_server_started_by_hand_outlives_the_commands(data_dir):
    _db_command(data_dir, "start")
    Session(data_dir, "command").end()
    assert _running(data_dir)
    _db_command(data_dir, "stop")
    assert not _running(data_dir)


def test_a_killed_command_does_not_keep_the_server_forever(data_dir):
    """A session whose shell died without its exit trap (kill -9) no longer counts."""
    killed = Session(data_dir, "killed")
    survivor = Session(data_dir, "survivor")
    killed.process.kill()
    killed.process.wait(timeout=10)
    killed.release.touch()  # its orphaned command may end now
    survivor.end()
    assert not _running(data_dir)
