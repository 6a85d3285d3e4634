"""``python3 tasks.py dev`` stopped with SIGTERM leaves no process behind: the webserver,
the daemon and the code servers that ``dagster dev`` started all end with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from opsrecon_dagster_tests.ports import free_port

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_SECONDS = 300


def _group_of_child(parent: int) -> int | None:
    """The process group of ``parent``'s child (``dagster dev`` runs in a group of its own)."""
    for line in subprocess.run(
        ["ps", "-eo", "pid=,ppid=,pgid="], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        pid, ppid, pgid = (int(x) for x in line.split())
        if ppid == parent and pgid == pid:
            return pgid
    return None


def _members(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True)
    return [
        int(pid)
        for pid, group, stat in (line.split() for line in out.stdout.splitlines())
        if int(group) == pgid and not stat.startswith("Z")
    ]


def test_stopping_tasks_dev_stops_every_process_it_started(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRECON_")}
    env |= {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "OPSRECON_DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
    }
    tasks = subprocess.Popen(
        [sys.executable, "tasks.py", "dev", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "dev.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    group: int | None = None
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:  # up when the webserver answers (and its group is known)
            assert tasks.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev never answered"
            group = group or _group_of_child(tasks.pid)
            try:
                if group and requests.get(f"http://127.0.0.1:{port}/server_info", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert len(_members(group)) >= 3  # dagster dev, its webserver, its daemon (at least)

        tasks.send_signal(signal.SIGTERM)
        assert tasks.wait(timeout=120) == 130
        # SIGKILLed members are gone once the kernel has torn them down: under load that can
        # trail the parent's exit by a moment, so wait for it (bounded), never for a time.
        gone_by = time.monotonic() + 30
        while _members(group) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert _members(group) == []
        log = (tmp_path / "dev.log").read_text()
        assert log.rstrip().endswith("[tasks] stopped"), log[-2000:]
        # A console a user can act on: no notice about a successor CLI we do not ship, no
        # warning about a dagster.yaml that is not the instance's.
        assert "SupersessionWarning" not in log and "will not be used" not in log, log[:3000]
        # The CLI's run links follow the port.
        ui_url = tmp_path / "dagster_home" / "ui_url"
        assert ui_url.read_text().strip() == f"http://127.0.0.1:{port}"
    finally:
        if tasks.poll() is None:
            tasks.kill()
        if group is not None and _members(group):
            os.killpg(group, signal.SIGKILL)
