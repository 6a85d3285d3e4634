"""Launch an operation run's Dagster job, tagged with the operation run id.

Used by the CLI (and the demo): the job runs in this process against the persistent
instance in ``$DAGSTER_HOME`` (default ``data/dagster_home``), so the UI shows it afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import dagster as dg

from opsrecon_dagster.jobs import JOB_BY_TYPE
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import run_tags
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster.resources.configured import configured_resources
from opsrecon_dagster.settings import AppContext

DEFAULT_DAGSTER_HOME = Path("data") / "dagster_home"
PROJECT_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Use ``$DAGSTER_HOME``, else ``data/dagster_home`` seeded with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and PROJECT_DAGSTER_YAML.exists():
        shutil.copy(PROJECT_DAGSTER_YAML, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class NotLaunchable(ValueError):
    """The run's type has no job (unsupported types are reconciled, never executed here)."""


def launch_operation_run(
    app: AppContext,
    run_id: int,
    instance: dg.DagsterInstance,
    provider: ProviderResource | None = None,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """Execute the run's job for its environment partition, tagged with the run id, on the
    application's database and ``provider`` (default: as this process's environment
    configures it)."""
    from opsrecon_dagster.definitions import defs

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
        from opsrecon_dagster.db.models import ManagedEnvironment

        env = session.get(ManagedEnvironment, run.managed_environment_id)
        if env is None:
            raise NotLaunchable(f"operation run {run_id} has no managed environment")
        partition = env.partition_key
    partitions_name = ENVIRONMENTS.name or "managed_environments"
    if not instance.has_dynamic_partition(partitions_name, partition):
        instance.add_dynamic_partitions(partitions_name, [partition])
    # The row learns its Dagster run id at submission, before the run exists, so the
    # reconciler can always ask Dagster whether it is queued, running or ended.
    dagster_run_id = str(uuid.uuid4())  # Dagster's own run id format
    app.runs.link_dagster_run(run_id, dagster_run_id)
    return defs.resolve_job_def(job.name).execute_in_process(
        instance=instance,
        partition_key=partition,
        run_id=dagster_run_id,
        tags=run_tags(run_id, partition),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        resources={
            "app_db": AppDatabaseResource(database_url=app.url.render_as_string(False)),
            # As deployed: the provider this process's environment configures.
            "provider": provider or configured_resources(os.environ)["provider"],
        },
    )
