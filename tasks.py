#!/usr/bin/env python3
"""Project tasks with nothing but python3: each one prepares its own environment first.

    python3 tasks.py demo    # the main job: the end-to-end demo on embedded SQLite
    python3 tasks.py test    # format check, lint, types, then the whole test suite
    python3 tasks.py test --fast   # the same checks, then the tests without real processes
    python3 tasks.py dev     # the Dagster UI (dagster dev) on the demo's instance and data

The virtual environment lives in .venv and is (re)installed from requirements.lock whenever
that file or pyproject.toml changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".opsrecon-installed"
# `dagster dev` shuts its processes down on SIGINT, waiting for each in turn (about 30 s);
# after this grace the rest of its group is killed.
STOP_GRACE_SECONDS = 3
DEFAULT_PORT = 3000


def _say(msg: str) -> None:
    print(f"[tasks] {msg}", flush=True)


def _run(*cmd: object, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def _serve(*cmd: object, env: dict[str, str], cwd: Path = ROOT) -> int:
    """Run a long-lived command (``dagster dev``) in a process group of its own, and stop the
    whole group when this process is stopped (Ctrl-C or SIGTERM): SIGINT first, which
    ``dagster dev`` answers by shutting down its webserver, daemon and code servers; then,
    after a short grace, SIGKILL for anything in the group still running. It holds no work
    of ours that a hard stop could lose: the data are in the databases, committed."""
    process = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, start_new_session=True)

    def stopped(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stopped)
    try:
        return process.wait()
    except KeyboardInterrupt:
        _say("stopping dagster dev and its processes")
        _signal_group(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_SECONDS)
        return 130
    finally:
        _signal_group(process.pid, signal.SIGKILL)  # whatever is left of the group
        process.wait()
        _say("stopped")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def ensure_env() -> None:
    """Create .venv and install the locked dependencies plus this package, when out of date."""
    digest = hashlib.sha256(
        (ROOT / "requirements.lock").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        _say("creating .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
    first = not STAMP.exists()
    _say(
        "installing locked dependencies (about 100 packages; the first run takes a few "
        "minutes and lists each package as pip collects it)"
        if first
        else "updating locked dependencies"
    )
    pip: list[object] = [
        BIN / "python",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        # Quiet on updates; on the first install pip's "Collecting ..." lines are the progress.
        *([] if first else ["-q"]),
    ]
    if _run(*pip, "-r", "requirements.lock") != 0 or _run(*pip, "--no-deps", "-e", ".") != 0:
        sys.exit("[tasks] dependency installation failed")
    STAMP.write_text(digest)


def _workers() -> str:
    """pytest-xdist workers: one per core, at most four (each starts its own PostgreSQL)."""
    return str(max(1, min(os.cpu_count() or 1, 4)))


def task_test(args: list[str]) -> int:
    fast = "--fast" in args
    args = [a for a in args if a != "--fast"]
    if fast:
        args = ["-m", "not slow", *args]
    if not any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args):
        args = ["-n", _workers(), *args]
    checks: list[tuple[str, list[object]]] = [
        ("format", [BIN / "ruff", "format", "--check", "."]),
        ("lint", [BIN / "ruff", "check", "."]),
        (
            "types",
            [BIN / "mypy", "opsrecon_dagster", "opsrecon_dagster_tests", "benchmarks", "tasks.py"],
        ),
    ]
    for name, cmd in checks:
        _say(f"{name}: {' '.join(str(c) for c in cmd[1:])}")
        if _run(*cmd) != 0:
            _say(f"{name} check failed")
            return 1
    _say(f"tests: pytest {' '.join(args)}")
    return _run(BIN / "pytest", *args)


def task_demo(args: list[str]) -> int:
    return _run(BIN / "opsrecon", "demo", *args)


def _port_of(args: list[str]) -> int:
    """The port ``dagster dev`` will serve on (its own ``-p``/``--port``), or the default."""
    for i, arg in enumerate(args):
        if arg in ("-p", "--port") and i + 1 < len(args) and args[i + 1].isdigit():
            return int(args[i + 1])
        if arg.startswith("--port=") and arg[7:].isdigit():
            return int(arg[7:])
    return DEFAULT_PORT


def task_dev(args: list[str]) -> int:
    # By default the UI opens the one local data location the demo and the CLI use too.
    home = Path(os.environ.get("DAGSTER_HOME") or ROOT / "data" / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    database = ROOT / "data" / "opsrecon.sqlite3"
    url = f"http://127.0.0.1:{_port_of(args)}"
    env = {
        "OPSRECON_DATABASE_URL": f"sqlite:///{database}",
        **os.environ,
        "DAGSTER_HOME": str(home),
        # `dagster dev` is what the locked Dagster provides; its successor `dg dev` comes
        # with dagster-dg-cli, which is not part of the lock: its notice is only noise.
        "PYTHONWARNINGS": "ignore:Function `dev_command` is superseded",
    }
    # Its storage is created once here: `dagster dev` starts the webserver and the daemon at
    # the same time, and two first opens of a fresh SQLite instance can race.
    init = (
        "from pathlib import Path; from opsrecon_dagster.launch import initialize_instance as i; "
    )
    code = _run(BIN / "python", "-c", f"{init}i(Path({str(home)!r}))", env=env)
    if code != 0:
        return code
    # The CLI's run links point where this UI serves (`opsrecon_dagster.settings`).
    (home / "ui_url").write_text(url + "\n")
    _say(f"Dagster UI on {url} (DAGSTER_HOME={home}); Ctrl-C stops it")
    # Run from the instance's folder: a dagster.yaml in the working folder that is not
    # DAGSTER_HOME's would draw a warning (the project's own, at the root, is a template).
    return _serve(BIN / "dagster", "dev", "-w", ROOT / "workspace.yaml", *args, env=env, cwd=home)


TASKS = {"test": task_test, "demo": task_demo, "dev": task_dev}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        return 2
    ensure_env()
    return TASKS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
