"""A Dagster run that waits in the run queue, and its later start, for the demo.

The queued run coordinator records a submitted run as ``QUEUED`` and the daemon later
launches it. The demo has no daemon, so it plays that part itself, deterministically:
``enqueue`` creates the tagged Dagster run in ``QUEUED`` (linked to its operation run at
submission, as every launch path does) and ``dequeue`` starts it in this process once the
demo has shown that the reconciler leaves a waiting run alone.

This uses Dagster's run-record and execution internals (pinned Dagster version): the public
API only launches runs through a code server.
"""

from __future__ import annotations

import uuid

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.reconciliation.dagster_view import run_tags

IN_PROCESS: dict[str, object] = {
    "execution": {"config": {"in_process": {}}},
    "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
}


def enqueue(
    app: AppContext,
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    run_id: int,
    partition: str,
) -> str:
    """Create the operation run's Dagster run in ``QUEUED`` and link it; returns its id."""
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=InProcessCodeLocationOrigin(
                LoadableTargetOrigin(module_name="opsrecon_dagster.definitions", attribute="defs")
            ),
            repository_name="__repository__",
        ),
        job_name=job.name,
    )
    dagster_run_id = str(uuid.uuid4())
    app.runs.link_dagster_run(run_id, dagster_run_id)
    # The whole job, no asset subset: a subset rebuilds the job and refuses resources the
    # caller bound to it (``launch.in_process_job``).
    instance.create_run_for_job(
        job,
        run_id=dagster_run_id,
        run_config=IN_PROCESS,
        status=dg.DagsterRunStatus.QUEUED,
        tags={**run_tags(run_id, partition), "dagster/partition": partition},
        remote_job_origin=origin,
    )
    return dagster_run_id


def dequeue(instance: dg.DagsterInstance, job: dg.JobDefinition, dagster_run_id: str) -> str:
    """Start a queued run as the run launcher would, in this process; returns its status."""
    run = instance.get_run_by_id(dagster_run_id)
    assert run is not None
    instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.RUN_STARTING.value, job_name=run.job_name),
        run_id=dagster_run_id,
    )
    started = instance.get_run_by_id(dagster_run_id)
    assert started is not None
    execute_run(InMemoryJob(job), started, instance)
    ended = instance.get_run_by_id(dagster_run_id)
    return ended.status.value if ended else "UNKNOWN"
