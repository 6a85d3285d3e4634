"""Time to truth with a real ``dagster-daemon``: how long after a Dagster run ends, or its
worker dies, its operation run's row is final.

A daemon runs the project's sensors against a temporary Dagster home with the project's
``dagster.yaml`` (queued run coordinator, run monitoring, threaded sensors) and the default
thresholds. Inventory runs are submitted through the
instance as a user would (``dagster job launch``), each in its own fixture environment:

- success: the job proves and completes its row itself;
- job error: the job's step process is SIGKILLed (the run worker survives and fails the run);
- failure before start: the Dagster run fails before any worker starts (as a launcher that
  cannot start it reports it);
- killed worker: the run worker (its step in the same process) is SIGKILLed together with
  the code server that launched it, as when their machine dies: nothing reports anything,
  and only the missing heartbeat tells (a run worker killed alone is reported failed by its
  code server within seconds).

Each figure is the row's ``completed_at`` minus the Dagster run's end (or the kill): a
negative value means the row was final before the Dagster run ended. Events synchronize the
script (file gates, database state), never sleeps racing thresholds.

    .venv/bin/python benchmarks/time_to_truth.py [--url APP_DB] [--dagster-pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from seeding import bench_app, bench_scopes

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import CallPoint, FileGate
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG, run_tags
from opsrecon_dagster.resources import FIXTURE_PATH_VAR

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCENARIOS = ("success", "job-error", "failure-before-start", "killed-worker")
TIMEOUT_SECONDS = 600
# The fixture's fault point: just before the last of the three default types is listed.
LAST_LISTING = {"call": "list_policies", "number": 3}
IN_PROCESS: dict[str, object] = {"execution": {"config": {"in_process": {}}}}


def _dagster_yaml(storage_url: str | None) -> str:
    """The project's instance configuration (run monitoring, threaded sensors, the default
    queued run coordinator), on PostgreSQL storage when given."""
    storage = f"storage:\n  postgres:\n    postgres_url: {storage_url}\n" if storage_url else ""
    return storage + (ROOT / "dagster.yaml").read_text()


def _wait(what: str, condition: Callable[[], object], daemon: subprocess.Popen[bytes]) -> object:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (value := condition()):
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited ({daemon.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def _parent(pid: int) -> int:
    """The parent of a process (the code server of a run worker), checked by its command."""
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    command = Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if "grpc" not in command:
        raise SystemExit(f"the run worker's parent is not a code server: {command}")
    return parent


class Bench:
    def __init__(self, app: AppContext, instance: dg.DagsterInstance, env: dict[str, str]):
        self.app, self.instance, self.env = app, instance, env
        self.scopes = dict(zip(SCENARIOS, bench_scopes(app, len(SCENARIOS)), strict=True))
        self.partitions = {name: f"bench.env-{i}" for i, name in enumerate(SCENARIOS)}
        instance.add_dynamic_partitions(ENVIRONMENTS.name or "", list(self.partitions.values()))

    def start(self, scenario: str) -> int:
        ws_id, env_id = self.scopes[scenario]
        return self.app.runs.start(
            "inventory.sync", workspace_id=ws_id, environment_id=env_id
        ).run.id

    def launch(self, scenario: str, run_id: int, config: dict[str, object] | None = None) -> str:
        """Submit the row's job through the instance's run coordinator, linked first."""
        dagster_run_id = str(uuid.uuid4())
        self.app.runs.link_dagster_run(run_id, dagster_run_id)
        partition = self.partitions[scenario]
        tags = {**run_tags(run_id, partition), "dagster/partition": partition}
        launch = [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j"]
        options = ["--run-id", dagster_run_id, "--tags", json.dumps(tags)]
        subprocess.run(
            [*launch, "inventory_sync", *options, "--config-json", json.dumps(config or {})],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        return dagster_run_id

    def final(self, run_id: int) -> datetime | None:
        run = self.app.runs.get(run_id)
        return run.completed_at if run.status == "completed" else None

    def ended(self, dagster_run_id: str) -> datetime | None:
        record = self.instance.get_run_record_by_id(dagster_run_id)
        if record is None or record.end_time is None:
            return None
        return datetime.fromtimestamp(record.end_time, UTC)

    def outcome(self, run_id: int) -> str:
        run = self.app.runs.get(run_id)
        return f"{run.outcome} / {run.reason_code}"


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="time-to-truth-"))
    home, gates = work / "dagster_home", work / "gates"
    home.mkdir()
    (home / "dagster.yaml").write_text(_dagster_yaml(args.dagster_pg_url))
    app = bench_app(args.url, "truth.sqlite3")
    fixture = work / "tenants.json"
    fixture.write_text(
        json.dumps(
            {
                "gate_dir": str(gates),
                "environments": {
                    "bench.env-1": {"faults": {"crash_at": LAST_LISTING}},
                    "bench.env-3": {"faults": {"pause_at": LAST_LISTING}},
                },
            }
        )
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "OPSRECON_DATABASE_URL": app.url.render_as_string(False),
        FIXTURE_PATH_VAR: str(fixture),
    }
    env.pop("OPSRECON_STALE_THRESHOLDS", None)  # the defaults
    os.environ["DAGSTER_HOME"] = str(home)
    log = work / "daemon.log"
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    figures: list[tuple[str, float, str]] = []
    try:
        with dg.DagsterInstance.get() as instance:
            bench = Bench(app, instance, env)

            def measure(scenario: str, run_id: int, since: Callable[[], datetime | None]) -> None:
                done = _wait(f"{scenario}: a final row", lambda: bench.final(run_id), daemon)
                start = _wait(f"{scenario}: the reference time", since, daemon)
                assert isinstance(done, datetime) and isinstance(start, datetime)
                seconds = (done - start).total_seconds()
                figures.append((scenario, seconds, bench.outcome(run_id)))
                print(f"  {scenario:22} {seconds:7.1f} s   {bench.outcome(run_id)}", flush=True)

            print(f"daemon log: {log}", flush=True)
            run_id = bench.start("success")
            dagster_run_id = bench.launch("success", run_id)
            measure("success", run_id, lambda: bench.ended(dagster_run_id))

            run_id = bench.start("job-error")
            error_run_id = bench.launch("job-error", run_id)  # multiprocess: a step process
            measure("job-error", run_id, lambda: bench.ended(error_run_id))

            run_id = bench.start("failure-before-start")
            never_id = str(uuid.uuid4())
            app.runs.link_dagster_run(run_id, never_id)
            never = instance.create_run_for_job(
                defs.resolve_job_def("inventory_sync"),
                run_id=never_id,
                tags={
                    RUN_TAG: str(run_id),
                    "dagster/partition": bench.partitions["failure-before-start"],
                },
            )
            instance.report_run_failed(never)  # what a launcher that cannot start it reports
            measure("failure-before-start", run_id, lambda: bench.ended(never_id))

            run_id = bench.start("killed-worker")
            bench.launch("killed-worker", run_id, IN_PROCESS)  # the step runs in the worker
            gate = FileGate(gates, "bench.env-3", CallPoint.model_validate(LAST_LISTING))
            _wait("killed-worker: the worker at its gate", gate.reached_file.exists, daemon)
            worker = int(gate.reached_file.read_text())
            server = _parent(worker)
            os.kill(server, signal.SIGKILL)  # first, so it cannot see its worker die
            os.kill(worker, signal.SIGKILL)
            killed = datetime.now(UTC)
            measure("killed-worker", run_id, lambda: killed)
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=60)
        app.dispose()
    print("\ntime to truth (row final minus the Dagster run's end, or the kill):")
    for scenario, seconds, outcome in figures:
        print(f"  {scenario:22} {seconds:7.1f} s   {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="application database (default: a temporary SQLite file)")
    parser.add_argument("--dagster-pg-url", help="Dagster storage (default: SQLite in the home)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
