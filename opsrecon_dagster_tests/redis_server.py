"""A throwaway Redis server from Debian's ``redis-server``, on a free loopback port, with no
persistence; it runs as the unprivileged ``nobody`` user when the suite runs as root."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from opsrecon_dagster_tests.ports import free_port

START_TIMEOUT_SECONDS = 60


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class ThrowawayRedis:
    """``redis-server`` on 127.0.0.1; ``url`` is a ``redis://`` URL for Celery."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="opsrecon-redis-"))
        self.port = free_port()
        self._as: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    @staticmethod
    def find() -> Path | None:
        found = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        return Path(found) if found else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        log = (self.root / "redis.log").open("ab")
        self._process = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **self._as,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(self.port):  # up when it answers PING
            if self._process.poll() is not None or time.monotonic() > deadline:
                detail = (self.root / "redis.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"throwaway Redis failed to start: {detail}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
