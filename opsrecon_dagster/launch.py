"""Hand an operation run's Dagster job to Dagster, tagged with the operation run id.

The CLI submits it to the instance in ``$DAGSTER_HOME`` (default ``data/dagster_home``),
whose run coordinator and launcher run it like any scheduled run; ``--in-process`` and the
demo execute it in their own process against that instance. Either way the UI shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.execution.build_resources import wrap_resources_for_execution

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import ManagedEnvironment
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.jobs import JOB_BY_TYPE
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import run_tags
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster.resources.configured import configured_resources
from opsrecon_dagster.settings import DEFAULT_DAGSTER_HOME, dagster_ui_url

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
DEFINITIONS_MODULE = "opsrecon_dagster.definitions"
WORKSPACE_VAR = "OPSRECON_DAGSTER_WORKSPACE"
# The daemon beats about every 30 s; a heartbeat older than this means none is running.
DAEMON_SILENT_SECONDS = 120


def ensure_dagster_home() -> Path:
    """Use ``$DAGSTER_HOME``, else ``data/dagster_home`` seeded with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and PROJECT_DAGSTER_YAML.exists():
        shutil.copy(PROJECT_DAGSTER_YAML, target)
    os.environ["DAGSTER_HOME"] = str(home)
    initialize_instance(home)
    return home


def initialize_instance(home: Path) -> None:
    """Create the instance's storage in ``home`` now, before several processes (daemon,
    webserver, ``dagster job launch``) open it at once: Dagster's SQLite storage stamps its
    schema version on first open, two first opens at the same time can both stamp it, and
    every later open then fails ("more than one head"). Opening an initialized one is cheap."""
    with dg.DagsterInstance.from_config(str(home)):
        pass


class NotLaunchable(ValueError):
    """The run's type has no job (unsupported types are reconciled, never executed here)."""


class SubmitFailed(RuntimeError):
    """Dagster did not take the run; the message names the launcher's exit status only."""


@dataclass(frozen=True)
class Prepared:
    """A run about to be handed to Dagster: its job, partition, and Dagster run id."""

    job_name: str
    partition: str
    dagster_run_id: str
    tags: dict[str, str]


def prepare_launch(
    app: AppContext, run_id: int, instance: dg.DagsterInstance, acted_by: str | None = None
) -> Prepared:
    """Check that the run can be launched, register its partition, and give the row its
    Dagster run id before the Dagster run exists (so the reconciler can always ask Dagster
    whether it is queued, running or ended). ``acted_by``: the operator whose command
    launches it (audited with the link)."""
    run = app.runs.get(run_id)
    job = JOB_BY_TYPE.get(run.type)
    if job is None:
        raise NotLaunchable(f"operation type {run.type} has no job to launch")
    if run.dagster_run_id is not None:
        earlier = instance.get_run_by_id(run.dagster_run_id)
        if earlier is not None and not earlier.is_finished:
            raise NotLaunchable(
                f"operation run {run_id} was already submitted as Dagster run "
                f"{run.dagster_run_id} ({earlier.status.value})"
            )
    with app.sessions() as session:
        env = session.get(ManagedEnvironment, run.managed_environment_id)
        if env is None:
            raise NotLaunchable(f"operation run {run_id} has no managed environment")
        partition = env.partition_key
    partitions_name = ENVIRONMENTS.name or "managed_environments"
    if not instance.has_dynamic_partition(partitions_name, partition):
        instance.add_dynamic_partitions(partitions_name, [partition])
    dagster_run_id = str(uuid.uuid4())  # Dagster's own run id format
    app.runs.link_dagster_run(run_id, dagster_run_id, acted_by=acted_by)
    return Prepared(job.name, partition, dagster_run_id, run_tags(run_id, partition))


def submit_operation_run(
    app: AppContext, run_id: int, instance: dg.DagsterInstance, acted_by: str | None = None
) -> dg.DagsterRun:
    """Submit the run's job to the instance in ``$DAGSTER_HOME``, as ``dagster job launch``
    does: its run coordinator queues it (or launches it) and its run launcher starts the
    worker, exactly as for a schedule's or a sensor's run. Returns the Dagster run as
    submitted (usually ``QUEUED``: the ``dagster-daemon`` launches it).

    The code location is ``$OPSRECON_DAGSTER_WORKSPACE`` (a workspace file) when set, else
    the module ``opsrecon_dagster.definitions``, the location ``tasks.py dev`` serves. The
    run's workers read their settings from their own environment (the daemon's), which must
    name the same application database; nothing secret goes into the run's config.
    """
    prepared = prepare_launch(app, run_id, instance, acted_by)
    workspace = os.environ.get(WORKSPACE_VAR)
    target = ["-w", workspace] if workspace else ["-m", DEFINITIONS_MODULE]
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "job",
        "launch",
        *target,
        "-j",
        prepared.job_name,
        "--run-id",
        prepared.dagster_run_id,
        "--tags",
        json.dumps({**prepared.tags, "dagster/partition": prepared.partition}),
    ]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(instance.root_directory),
        "OPSRECON_DATABASE_URL": app.url.render_as_string(hide_password=False),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    submitted = instance.get_run_by_id(prepared.dagster_run_id)
    if done.returncode != 0 or submitted is None:
        # Its output may hold configuration detail: only the exit status is shown here.
        raise SubmitFailed(
            f"dagster job launch exited with status {done.returncode}; run it yourself to see "
            f"why: dagster job launch {' '.join(target)} -j {prepared.job_name}"
        )
    return submitted


def in_process_resources(
    app: AppContext, provider: ProviderResource | None = None
) -> dict[str, object]:
    """The resources of a job this process runs itself (``--in-process``, the demo): the
    application's whole settings (database, language, thresholds) and ``provider``
    (default: as this process's environment configures it)."""
    return {
        # Bound as an object, not as config: Dagster stores a resource's config in the job
        # snapshot, and a database URL may hold a password.
        "app_db": dg.ResourceDefinition.hardcoded_resource(AppDatabaseResource.of(app.settings)),
        "provider": provider or configured_resources(os.environ)["provider"],
    }


def in_process_job(app: AppContext, job_name: str) -> dg.JobDefinition:
    """The project's job ``job_name`` bound to ``in_process_resources``, for a run this
    process creates now and executes later (the demo's queued run). The binding is what
    ``execute_in_process(resources=...)`` does (Dagster internals, pinned version)."""
    resources = wrap_resources_for_execution(in_process_resources(app))
    return defs.resolve_job_def(job_name).as_ephemeral_job(resources, input_values={})


def launch_operation_run(
    app: AppContext,
    run_id: int,
    instance: dg.DagsterInstance,
    provider: ProviderResource | None = None,
    log_level: str = "INFO",
    acted_by: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute the run's job in this process (``--in-process``, the demo) for its
    environment partition, tagged with the run id, on ``in_process_resources``
    (``acted_by``: as ``prepare_launch``)."""
    prepared = prepare_launch(app, run_id, instance, acted_by)
    return defs.resolve_job_def(prepared.job_name).execute_in_process(
        instance=instance,
        partition_key=prepared.partition,
        run_id=prepared.dagster_run_id,
        tags=prepared.tags,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        resources=in_process_resources(app, provider),
    )


def ui_link(dagster_run_id: str) -> str:
    """The run's page in the Dagster UI (``settings.dagster_ui_url``)."""
    return f"{dagster_ui_url()}/runs/{dagster_run_id}"


def daemon_running(instance: dg.DagsterInstance) -> bool:
    """Whether a ``dagster-daemon`` dequeues this instance's runs (a recent heartbeat of
    its run queue)."""
    beat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    return beat is not None and time.time() - beat.timestamp < DAEMON_SILENT_SECONDS
