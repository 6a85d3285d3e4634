"""The viewers' webserver: a real ``dagster-webserver --read-only`` (what the Helm chart runs for
``dagsterWebserver.enableReadOnly``) over an instance with a run, an asset materialization and
an asset check evaluation, asked over HTTP GraphQL on a loopback port.

Launching, terminating and wiping are refused (``UnauthorizedError``); the run, asset and check
queries answer. The same mutations sent to a read-write webserver on the same instance are
accepted, so the refusal is the read-only mode's and not a malformed request's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from opsrecon_dagster_tests import webserver

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

LOCATION = "viewer_defs.py"  # a -f code location is named after its file
JOB = "inventory_job"
ASSET = "inventory"
CHECK = "inventory_not_empty"

# A code location of its own (an asset, its check and a job), so the test depends only on
# Dagster: the read-only switch is the webserver's, whatever the definitions.
DEFINITIONS = f'''
import dagster as dg


@dg.asset
def {ASSET}() -> int:
    return 3


@dg.asset_check(asset={ASSET})
def {CHECK}({ASSET}: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed={ASSET} > 0)


{JOB} = dg.define_asset_job("{JOB}", selection=[{ASSET}])
defs = dg.Definitions(assets=[{ASSET}], asset_checks=[{CHECK}], jobs=[{JOB}])
'''


@pytest.fixture(scope="module")
def instance_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    """A temporary DAGSTER_HOME holding one successful run of the job (a materialization of
    the asset and an evaluation of its check) and one run in progress."""
    workdir = tmp_path_factory.mktemp("viewer")
    home = workdir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    module = workdir / "viewer_defs.py"
    module.write_text(DEFINITIONS)
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        import dagster as dg
        spec = importlib.util.spec_from_file_location("viewer_defs", {str(module)!r})
        defs_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(defs_module)
        with dg.DagsterInstance.get() as instance:
            result = dg.materialize(
                [defs_module.{ASSET}, defs_module.{CHECK}], instance=instance
            )
            assert result.success
            # A run still in progress, so a refused termination is refused for permission
            # (a finished run would be refused for its status).
            started = dg.DagsterRun(job_name="{JOB}", status=dg.DagsterRunStatus.STARTED)
            instance.add_run(started)
            print(started.run_id, result.run_id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    started_id, run_id = done.stdout.strip().splitlines()[-1].split()
    return home, module, run_id, started_id


def _serve(home: Path, module: Path, *, read_only: bool) -> AbstractContextManager[str]:
    """A webserver for the definitions in ``module`` over the instance in ``home``."""
    return webserver.serving(
        ["-f", str(module)],
        cwd=module.parent,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        ready_within=120,
        read_only=read_only,
    )


@pytest.fixture(scope="module")
def read_only(instance_home: tuple[Path, Path, str, str]) -> Iterator[str]:
    home, module, _, _ = instance_home
    with _serve(home, module, read_only=True) as base:
        yield base


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    assert "errors" not in answer, answer
    data: dict[str, Any] = answer["data"]
    return data


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on UnauthorizedError { message }
    ... on LaunchRunSuccess { run { runId } }
  }
}
"""
LAUNCH_RUN = LAUNCH.replace("launchPipelineExecution", "launchRun")
TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on UnauthorizedError { message }
    ... on TerminateRunFailure { message }
  }
}
"""
TERMINATE_MANY = """
mutation TerminateMany($runIds: [String!]!) {
  terminateRuns(runIds: $runIds) {
    __typename
    ... on TerminateRunsResult {
      terminateRunResults {
        __typename
        ... on UnauthorizedError { message }
        ... on TerminateRunFailure { message }
      }
    }
  }
}
"""
WIPE = """
mutation Wipe($ranges: [PartitionsByAssetSelector!]!) {
  wipeAssets(assetPartitionRanges: $ranges) {
    __typename
    ... on UnauthorizedError { message }
    ... on AssetWipeSuccess { assetPartitionRanges { assetKey { path } } }
  }
}
"""
EXECUTION_PARAMS = {
    "selector": {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "jobName": JOB,
    },
    "mode": "default",
}
WIPE_RANGES = [{"assetKey": {"path": [ASSET]}}]


REFUSED = "You do not have permission to terminate this run"


@pytest.mark.parametrize(
    ("mutation", "field", "variables"),
    [
        (LAUNCH, "launchPipelineExecution", {"params": EXECUTION_PARAMS}),
        (LAUNCH_RUN, "launchRun", {"params": EXECUTION_PARAMS}),
        (WIPE, "wipeAssets", {"ranges": WIPE_RANGES}),
    ],
)
def test_the_read_only_webserver_refuses_launch_and_wipe(
    read_only: str, mutation: str, field: str, variables: dict[str, Any]
) -> None:
    result = graphql(read_only, mutation, variables)[field]
    assert result == {"__typename": "UnauthorizedError", "message": "Authorization failed"}


def test_the_read_only_webserver_refuses_to_terminate(
    read_only: str, instance_home: tuple[Path, Path, str, str]
) -> None:
    started_id = instance_home[3]
    one = graphql(read_only, TERMINATE, {"runId": started_id})["terminateRun"]
    assert one == {"__typename": "TerminateRunFailure", "message": REFUSED}
    many = graphql(read_only, TERMINATE_MANY, {"runIds": [started_id]})["terminateRuns"]
    assert many["terminateRunResults"] == [
        {"__typename": "TerminateRunFailure", "message": REFUSED}
    ]
    # Refused, so the run is still in progress.
    status = graphql(
        read_only,
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
        {"id": started_id},
    )
    assert status["runOrError"] == {"status": "STARTED"}


def test_the_read_only_webserver_answers_run_asset_and_check_queries(
    read_only: str, instance_home: tuple[Path, Path, str, str]
) -> None:
    run_id = instance_home[2]
    data = graphql(
        read_only,
        """
        query Viewer($runId: ID!, $asset: AssetKeyInput!, $check: String!) {
          runOrError(runId: $runId) { __typename ... on Run { runId status } }
          runsOrError(limit: 5) { __typename ... on Runs { results { runId status } } }
          assetOrError(assetKey: $asset) {
            __typename
            ... on Asset { assetMaterializations(limit: 1) { runId } }
          }
          assetCheckExecutions(assetKey: $asset, checkName: $check, limit: 5) {
            runId status
          }
          permissions { permission value }
        }
        """,
        {"runId": run_id, "asset": {"path": [ASSET]}, "check": CHECK},
    )
    assert data["runOrError"] == {"__typename": "Run", "runId": run_id, "status": "SUCCESS"}
    assert {"runId": run_id, "status": "SUCCESS"} in data["runsOrError"]["results"]
    assert data["assetOrError"]["assetMaterializations"] == [{"runId": run_id}]
    assert data["assetCheckExecutions"] == [{"runId": run_id, "status": "SUCCEEDED"}]
    granted = {p["permission"]: p["value"] for p in data["permissions"]}
    assert granted["launch_pipeline_execution"] is False
    assert granted["terminate_pipeline_execution"] is False
    assert granted["wipe_assets"] is False


def test_the_read_write_webserver_accepts_the_same_requests(
    read_only: str, instance_home: tuple[Path, Path, str, str]
) -> None:
    """Control: the requests the read-only webserver refused are well-formed, and a read-write
    webserver on the same instance carries them out. Runs last in this module (it wipes the
    asset the other tests read)."""
    home, module, _, started_id = instance_home
    with _serve(home, module, read_only=False) as base:
        launched = graphql(base, LAUNCH_RUN, {"params": EXECUTION_PARAMS})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        ended = graphql(base, TERMINATE, {"runId": started_id})["terminateRun"]
        assert ended.get("message") != REFUSED, ended
        wiped = graphql(base, WIPE, {"ranges": WIPE_RANGES})["wipeAssets"]
        assert wiped["__typename"] == "AssetWipeSuccess", wiped
