"""``opsrecon operations start --wait`` submits through the instance: a real
``dagster-daemon`` dequeues and launches the run, its worker syncs from the HTTP provider its
own environment configures, and ``dagster-webserver`` shows the run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
from sqlalchemy import select, text

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.launch import PROJECT_DAGSTER_YAML, initialize_instance
from opsrecon_dagster_tests.conftest import make_scope, opsrecon
from opsrecon_dagster_tests.graph_server import TOKEN, GraphServer
from opsrecon_dagster_tests.ports import free_port

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_SECONDS = 300


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    initialize_instance(home)  # as the CLI and `tasks.py dev` do before anything starts
    return home


def _serve(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it stops its code server
    )


@dataclass(frozen=True)
class Service:
    process: subprocess.Popen[bytes]
    url: str  # the webserver's (the daemon serves nothing)


@pytest.fixture
def services(
    home: Path, sqlite_app: AppContext, graph: GraphServer, tmp_path: Path
) -> Iterator[Callable[[str], Service]]:
    """Start ``dagster-daemon`` or ``dagster-webserver`` on the instance, as deployed: the
    provider is configured in their environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRECON_")}
    env |= {
        "DAGSTER_HOME": str(home),
        "OPSRECON_DATABASE_URL": sqlite_app.url.render_as_string(False),
        "OPSRECON_PROVIDER": "http",
        "OPSRECON_PROVIDER_URL": graph.url,
        "OPSRECON_PROVIDER_TOKEN": TOKEN,
    }
    started: list[subprocess.Popen[bytes]] = []

    def start(what: str) -> Service:
        command = [str(BIN / what)]
        port = free_port()
        if what == "dagster-daemon":
            command += ["run"]
        command += ["-w", "workspace.yaml"]
        if what == "dagster-webserver":
            command += ["-h", "127.0.0.1", "-p", str(port)]
        process = _serve(command, env, tmp_path / f"{what}.log")
        started.append(process)
        return Service(process, f"http://127.0.0.1:{port}")

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)


def _graphql(base: str, query: str, variables: dict[str, str]) -> dict[str, object]:
    response = requests.post(
        f"{base}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    response.raise_for_status()
    data = response.json()["data"]
    assert isinstance(data, dict)
    return data


def _webserver_url(webserver: Service) -> str:
    """The webserver's address once it answers (it is up when /server_info answers)."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        assert webserver.process.poll() is None, "dagster-webserver exited"
        try:
            if requests.get(f"{webserver.url}/server_info", timeout=5).ok:
                return webserver.url
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "dagster-webserver never answered"
        time.sleep(0.5)


RUN_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status jobName tags { key value } }
  }
}
"""


def test_a_submitted_sync_runs_through_the_daemon_and_shows_in_the_webserver(
    sqlite_app: AppContext,
    graph: GraphServer,
    home: Path,
    services: Callable[[str], Service],
) -> None:
    scope = make_scope(sqlite_app, "acme", "contoso")
    services("dagster-daemon")
    # The CLI has no provider settings: the worker the daemon launches uses its own.
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRECON_")}
    cli_env |= {
        "DAGSTER_HOME": str(home),
        "OPSRECON_DATABASE_URL": sqlite_app.url.render_as_string(False),
    }
    done = opsrecon(
        "operations",
        "start",
        "inventory.sync",
        "--environment",
        scope.partition_key,
        "--policy-type",
        "deviceConfigurations",
        "--wait",
        "--timeout",
        str(TIMEOUT_SECONDS),
        "--json",
        env=cli_env,
        timeout=TIMEOUT_SECONDS + 60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["launched"]["in_process"] is False
    assert result["launched"]["dagster_status"] in ("QUEUED", "STARTING", "STARTED")
    assert (result["run"]["outcome"], result["run"]["reason_code"]) == (
        "succeeded",
        "inventory_all_types_covered",
    )
    dagster_run_id = result["launched"]["dagster_run_id"]
    assert result["run"]["dagster_run_id"] == dagster_run_id
    assert result["launched"]["ui_url"] == f"http://127.0.0.1:3000/runs/{dagster_run_id}"

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(dagster_run_id)
        assert run is not None
        # Launched by the daemon from the code location, not executed by the CLI.
        assert run.remote_job_origin is not None
        assert run.tags["opsrecon/operation_run_id"] == str(result["run"]["id"])
        assert run.tags["dagster/partition"] == scope.partition_key
        dagster_text = repr(run) + "".join(repr(e) for e in instance.all_logs(dagster_run_id))
    assert graph.auth and set(graph.auth) == {f"Bearer {TOKEN}"}
    assert TOKEN not in dagster_text
    with sqlite_app.engine.connect() as conn:
        for table in ("operation_runs", "audit_log", "inventory_items", "inventory_coverage"):
            assert TOKEN not in repr(conn.execute(text(f"SELECT * FROM {table}")).all())

    base = _webserver_url(services("dagster-webserver"))
    shown: Any = _graphql(base, RUN_QUERY, {"runId": dagster_run_id})["runOrError"]
    assert (shown["__typename"], shown["status"], shown["jobName"]) == (
        "Run",
        "SUCCESS",
        "inventory_sync",
    )
    tags = {t["key"]: t["value"] for t in shown["tags"]}
    assert tags["opsrecon/operation_run_id"] == str(result["run"]["id"])


def test_without_a_daemon_the_cli_says_the_run_stays_queued(
    sqlite_app: AppContext, home: Path
) -> None:
    scope = make_scope(sqlite_app, "acme", "contoso")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRECON_")}
    env |= {"DAGSTER_HOME": str(home), "OPSRECON_DATABASE_URL": sqlite_app.url.render_as_string()}
    done = opsrecon(
        "operations",
        "start",
        "inventory.sync",
        "--environment",
        scope.partition_key,
        env=env,
        timeout=TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "submitted as Dagster run" in done.stdout and "(QUEUED)" in done.stdout
    assert "no dagster-daemon is running" in done.stderr
    assert "Traceback" not in done.stderr
    with sqlite_app.sessions() as session:
        [row] = session.scalars(select(OperationRun)).all()
    assert row.status == "queued" and row.dagster_run_id is not None
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(row.dagster_run_id)
    assert run is not None and run.status is dg.DagsterRunStatus.QUEUED
