"""A throwaway PostgreSQL cluster from the machine's server binaries, for tests and benchmarks.

The server refuses to run as root, so when the suite runs as root the cluster is created and
started as the unprivileged ``nobody`` user. Everything lives in one temporary folder that is
removed on stop.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from opsrecon_dagster_tests.ports import free_port


def find_pg_bin() -> Path | None:
    """Folder holding initdb/pg_ctl: Debian's /usr/lib/postgresql/N/bin, else PATH."""
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


class ThrowawayCluster:
    """initdb + pg_ctl start on a free loopback port; ``url`` is a superuser psycopg2 URL."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="opsrecon-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
            **self._as,
        )

    def start(self) -> ThrowawayCluster:
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--no-locale", "--no-sync",
            )  # fmt: skip
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            self._run(
                "pg_ctl", "-D", str(self.data), "-o", options,
                "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = self.root / "server.log"
            detail = log.read_text()[-2000:] if log.exists() else exc.stderr.decode()[-2000:]
            self.stop()
            raise RuntimeError(f"throwaway PostgreSQL failed to start: {detail}") from None
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.root,
                **self._as,
            )
        shutil.rmtree(self.root, ignore_errors=True)
