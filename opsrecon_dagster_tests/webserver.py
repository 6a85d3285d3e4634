"""A real ``dagster-webserver`` (the one installed beside this Python) on a free loopback
port, for tests that ask it over HTTP: it is ready when ``/server_info`` answers, and it is
terminated afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from opsrecon_dagster_tests.ports import free_port

WEBSERVER = Path(sys.executable).with_name("dagster-webserver")


@contextmanager
def serving(
    location: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    ready_within: float,
    read_only: bool = False,
) -> Iterator[str]:
    """``dagster-webserver`` on 127.0.0.1 serving the code location ``location`` (its
    arguments: ``-f <file>`` or ``-m <module>``), run in ``cwd`` with exactly ``env``;
    ``read_only`` adds ``--read-only``. Yields the base URL once ``/server_info`` answers
    200; fails with the last connection error if the process exits first or it has not
    answered within ``ready_within`` seconds (a bound on the wait, not a pace)."""
    port = free_port()
    command = [str(WEBSERVER), "-h", "127.0.0.1", "-p", str(port), *location]
    if read_only:
        command.append("--read-only")
    server = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
