"""The four artifact families as partitioned assets; each materialization is proof for a run.

The asset bodies are thin: resolve the operation run, hand over to ``artifacts.families``,
and report what the run's own proof says as typed metadata and an asset-check result.
"""

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.details import DETAIL_FRAMES
from opsrecon_dagster.artifacts.execution import JobReport, RunRefused, enforce_retention, run_job
from opsrecon_dagster.artifacts.families import FAMILIES, Family
from opsrecon_dagster.artifacts.review import current_fingerprint
from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations import outbox
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import Decision, RunContext, RunInputs
from opsrecon_dagster.operations.reasons import (
    Language,
    decision_text,
    next_step,
    word,
)
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster.tenancy import TenancyError, environment_by_partition

PROOF_CHECK = "proof"
GROUP = "artifacts"
OUTCOME_TAG = "opsrecon/outcome"
REASON_TAG = "opsrecon/reason"


def _operation_run_for(context: dg.AssetExecutionContext, app: AppContext, family: Family) -> int:
    """The tagged operation run, or a new one for a run launched without the tag (e.g. the UI)."""
    tagged = context.run.tags.get(RUN_TAG)
    if tagged is not None:
        if not tagged.isdigit():
            raise dg.Failure(f"run tag {RUN_TAG} must be an operation run id")
        return int(tagged)
    with app.sessions() as session:
        env = environment_by_partition(session, context.partition_key)
        inputs = RunInputs(trigger="dagster")
        if family.asset_key == "environment_reviews":
            fp = current_fingerprint(session, env.workspace_id, env.id)
            inputs = inputs.model_copy(update={"fingerprint": fp})
        ws_id, env_id = env.workspace_id, env.id
    started = app.runs.start(
        family.op_type, workspace_id=ws_id, environment_id=env_id, inputs=inputs, actor=Actor.JOB
    )
    run = started.run
    if not started.created and run.dagster_run_id not in (None, context.run.run_id):
        raise dg.Failure(
            f"operation run {run.id} is already active for this partition "
            f"(Dagster run {run.dagster_run_id}); not starting a second one"
        )
    return run.id


def _metadata(report: JobReport, family: Family) -> dict[str, dg.MetadataValue]:
    # The decision itself (outcome, reason, who decided) is added where it is reported,
    # as the row stands then (``_report_decision``).
    metadata: dict[str, dg.MetadataValue] = {
        "operation_type": dg.MetadataValue.text(family.op_type.value),
    }
    if report.artifact_id is not None:
        metadata["artifact_id"] = dg.MetadataValue.int(report.artifact_id)
    for key, value in sorted(report.counts.items()):
        metadata[key] = dg.MetadataValue.int(value)
    return metadata


def proof_verdict(outcome: RunOutcome) -> tuple[bool, dg.AssetCheckSeverity]:
    """The proof check for a decision, reported the same way by the job and the reconciler.

    The check asks "do the run's own artifacts prove its outcome?": succeeded and partially
    succeeded pass (the evaluation's description says which, and the partition is
    materialized either way: Dagster counts any failed check, even a warning, as failed, so
    a usable partial result must not fail it). Blocked fails as a warning (yellow: a
    precondition outside the run stopped the work), failed as an error (red)."""
    if outcome in (RunOutcome.SUCCEEDED, RunOutcome.PARTIALLY_SUCCEEDED):
        return True, dg.AssetCheckSeverity.ERROR  # the severity of a pass shows nowhere
    if outcome is RunOutcome.BLOCKED:
        return False, dg.AssetCheckSeverity.WARN
    return False, dg.AssetCheckSeverity.ERROR


def decision_tags(outcome: RunOutcome, reason_code: str) -> dict[str, str]:
    """Tags that put a run's decision on its Dagster run (filterable on the Runs page)."""
    return {OUTCOME_TAG: outcome.value, REASON_TAG: reason_code}


def decision_metadata(
    run_id: int,
    outcome: RunOutcome,
    reason: str,
    decided_by: str,
    dagster_run_id: str | None,
    language: Language = "en",
) -> dict[str, dg.MetadataValue]:
    """A decision as metadata, the same wherever it is shown (check, materialization,
    observation): the outcome and the reason in words with their codes, the next step, who
    decided, and a link to the Dagster run the decision is about."""
    metadata: dict[str, dg.MetadataValue] = {
        "decision": dg.MetadataValue.text(decision_text(outcome.value, reason, language)),
        "operation_run_id": dg.MetadataValue.int(run_id),
        "outcome": dg.MetadataValue.text(outcome.value),
        "reason_code": dg.MetadataValue.text(reason),
        "decided_by": dg.MetadataValue.text(decided_by),
    }
    step = next_step(reason, language)
    if step is not None:
        metadata["next_step"] = dg.MetadataValue.text(step)
    if dagster_run_id is not None:
        metadata["deciding_run"] = dg.MetadataValue.dagster_run(dagster_run_id)
    return metadata


def failure_message(
    run_ids: int | str,
    outcome: RunOutcome,
    reason: str,
    decided_by: str,
    language: Language,
    note: str | None = None,
) -> str:
    """A blocked or failed run's failure message: the decision in words, its operation
    run(s), who decided (and ``note``, e.g. why the run was ended for it), and the next
    step, in the configured language."""
    decided = decision_text(outcome.value, reason, language)
    by = f"{word('decided_by', language)} {decided_by}" + (f"; {note}" if note else "")
    text = f"{decided} ({word('operation_run', language)} {run_ids}, {by})"
    step = next_step(reason, language)
    return f"{text}. {word('next_step', language)}: {step}" if step else text


def proof_check_fields(
    run_id: int,
    outcome: RunOutcome,
    reason: str,
    decided_by: str,
    extra: Mapping[str, dg.MetadataValue] | None = None,
    language: Language = "en",
    dagster_run_id: str | None = None,
) -> dict[str, Any]:
    """Fields of a proof check evaluation for one decision, whoever reports it: the outcome
    and the message in the configured language, with the reason code beside it."""
    passed, severity = proof_verdict(outcome)
    return {
        "check_name": PROOF_CHECK,
        "passed": passed,
        "severity": severity,
        "description": decision_text(outcome.value, reason, language),
        "metadata": {
            **decision_metadata(run_id, outcome, reason, decided_by, dagster_run_id, language),
            **(extra or {}),
        },
    }


@contextmanager
def failures_name_only_the_error_type(what: str) -> Iterator[None]:
    """Exception text may carry SQL or provider detail: Dagster's event log gets only the
    error's type (our own Failures and tenancy messages name nothing secret and pass)."""
    try:
        yield
    except dg.Failure:
        raise
    except RunRefused as exc:  # the worker guard: nothing was done, the message says why
        raise dg.Failure(str(exc)) from None
    except TenancyError as exc:
        raise dg.Failure(f"{what}: {exc}") from None
    except Exception as exc:
        raise dg.Failure(f"{what} ({type(exc).__name__})") from None


def _retention(
    context: dg.AssetExecutionContext,
    app: AppContext,
    backup_run_id: int,
    provider: ProviderResource,
) -> dict[str, dg.MetadataValue]:
    """Enforce the schedule's retention after a successful backup (its own operation run).
    Its failure is its own run's decision: the backup's stands, so it never fails the step."""
    try:
        report = enforce_retention(app.sessions, app.runs, backup_run_id, provider.get_provider)
    except RunRefused as exc:  # e.g. a concurrent backup's retention run is at work
        context.log.warning(f"backup retention: {exc}")
        return {}
    except Exception as exc:  # the retention run is already completed as failed
        context.log.warning(f"backup retention: job_execution_error ({type(exc).__name__})")
        return {}
    context.log.info(
        f"operation run {report.operation_run_id}: backup.retention.prune "
        f"{report.outcome.value} ({report.reason_code})"
    )
    return {
        "retention_run_id": dg.MetadataValue.int(report.operation_run_id),
        "retention_outcome": dg.MetadataValue.text(report.outcome.value),
        "sets_pruned": dg.MetadataValue.int(report.counts.get("sets_pruned", 0)),
    }


def _job_metadata(
    context: dg.AssetExecutionContext,
    app: AppContext,
    family: Family,
    run_id: int,
    report: JobReport,
    provider: ProviderResource,
) -> dict[str, dg.MetadataValue]:
    """The step's metadata: the job's report, a successful backup's retention, and the
    family's detail table when it has one."""
    metadata = _metadata(report, family)
    if family.op_type is OperationType.BACKUP_SCHEDULE_EXECUTE and (
        report.outcome is RunOutcome.SUCCEEDED
    ):
        metadata |= _retention(context, app, run_id, provider)
    if family.asset_key in DETAIL_FRAMES:
        label, frame_of = DETAIL_FRAMES[family.asset_key]
        with app.sessions() as session:
            frame = frame_of(session, run_id)
        metadata[label] = dg.MetadataValue.md(
            frame.to_markdown(index=False) if not frame.empty else "_none_"
        )
    return metadata


def _standing_decision(report: JobReport, decision: Decision | None) -> tuple[RunOutcome, str, str]:
    """Outcome, reason code and who decided, as the row stands now (the job's report when
    the row has no decision recorded)."""
    # The Dagster run and the check carry the row's decision as it stands now: a late report
    # that lost to the reconciler leaves the reconciler's (or a correction's) decision.
    if decision is not None:
        return decision.outcome, decision.reason_code, decision.decided_by.value
    return report.outcome, report.reason_code, Actor.JOB.value


def _report_decision(
    context: dg.AssetExecutionContext,
    run_id: int,
    report: JobReport,
    decision: Decision | None,
    metadata: dict[str, dg.MetadataValue],
    language: Language,
    reported: Callable[[], None],
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:  # type: ignore[type-arg]
    """Put the row's standing decision on the Dagster run: its tags, the proof check, and
    the materialization, or the step's failure for a blocked or failed run. ``reported``
    runs once Dagster has stored them (a generator resumes only after its yield is
    handled): it acknowledges the decision's outbox entry."""
    outcome, reason, by = _standing_decision(report, decision)
    context.instance.add_run_tags(context.run.run_id, decision_tags(outcome, reason))
    counts = {k: dg.MetadataValue.int(v) for k, v in sorted(report.counts.items())}
    fields = proof_check_fields(
        run_id, outcome, reason, by, counts, language, dagster_run_id=context.run.run_id
    )
    metadata = {
        **decision_metadata(run_id, outcome, reason, by, context.run.run_id, language),
        **metadata,
    }
    if outcome in (RunOutcome.BLOCKED, RunOutcome.FAILED):
        yield dg.AssetCheckResult(**fields)
        reported()
        raise dg.Failure(
            description=failure_message(run_id, outcome, reason, by, language), metadata=metadata
        )
    yield dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(**fields)])
    reported()


def materialize_family(
    context: dg.AssetExecutionContext,
    family: Family,
    app_db: AppDatabaseResource,
    provider: ProviderResource,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:  # type: ignore[type-arg]
    """Shared body of the four assets.

    Succeeded and partially succeeded runs materialize the partition (with a passing or
    warning proof check). A blocked or failed run evaluates the check as an error and then
    fails the step: the partition's latest state is then a failed materialization, never a
    green one, and the failure's metadata says why.
    """
    with app_db.opened() as app:
        with failures_name_only_the_error_type("could not resolve the operation run"):
            run_id = _operation_run_for(context, app, family)
        context.log.info(f"operation run {run_id}: {family.op_type.value} {context.partition_key}")
        # On an execution error the row is already completed as failed (job_execution_error).
        with failures_name_only_the_error_type(f"operation run {run_id}: job_execution_error"):
            report = run_job(
                app.sessions,
                app.runs,
                family,
                run_id,
                provider.get_provider,
                context.run.run_id,
                partition_key=context.partition_key,
            )
            metadata = _job_metadata(context, app, family, run_id, report, provider)
            decision = RunContext.load_or_empty(app.runs.get(run_id).context).decision
        language = app.language
    context.log.info(
        f"operation run {run_id}: {report.outcome.value} ({report.reason_code}), {report.recorded}"
    )

    def reported() -> None:
        if report.outbox_entry is not None:
            with app_db.opened() as app, app.sessions.begin() as session:
                outbox.acknowledge_unclaimed(session, report.outbox_entry)

    yield from _report_decision(context, run_id, report, decision, metadata, language, reported)


# One meaning for every family's check (the evaluation's description says which outcome and
# why, in the configured language; this definition text is static, so it stays English).
PROOF_CHECK_DESCRIPTION = (
    "Do the run's own artifacts, in its own scope, prove its outcome? Passed: succeeded or "
    "partially succeeded (the evaluation says which, and what is missing). Warning: blocked "
    "(a precondition outside the run stopped the work). Error: failed."
)


def _proof_check(asset_key: str) -> list[dg.AssetCheckSpec]:
    # Partitioned like the asset: each environment's latest evaluation is its own decision.
    # (A preview feature in this pinned Dagster version; its warning would only be noise.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                PROOF_CHECK,
                asset=asset_key,
                description=PROOF_CHECK_DESCRIPTION,
                partitions_def=ENVIRONMENTS,
            )
        ]


@dg.asset(
    partitions_def=ENVIRONMENTS,
    group_name=GROUP,
    kinds={"python", "sqlalchemy"},
    check_specs=_proof_check("inventory_items"),
)
def inventory_items(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, provider: ProviderResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:  # type: ignore[type-arg]
    """Policy objects of one managed environment, synced from the provider per policy type.

    Each sync records per-type coverage for its run: succeeded, failed, or skipped when
    never attempted, with a reason.
    """
    yield from materialize_family(context, FAMILIES["inventory_items"], app_db, provider)


@dg.asset(
    partitions_def=ENVIRONMENTS,
    group_name=GROUP,
    kinds={"python", "sqlalchemy"},
    deps=[inventory_items],
    check_specs=_proof_check("baseline_snapshots"),
)
def baseline_snapshots(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, provider: ProviderResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:  # type: ignore[type-arg]
    """Baseline snapshots: a profile's subjects captured from inventory, gaps classified

    (missing in inventory, ambiguous match, capture failed).
    """
    yield from materialize_family(context, FAMILIES["baseline_snapshots"], app_db, provider)


@dg.asset(
    partitions_def=ENVIRONMENTS,
    group_name=GROUP,
    kinds={"python", "sqlalchemy"},
    check_specs=_proof_check("backup_sets"),
)
def backup_sets(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, provider: ProviderResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:  # type: ignore[type-arg]
    """Backup sets produced by the environment's backup schedule: one set per run."""
    yield from materialize_family(context, FAMILIES["backup_sets"], app_db, provider)


@dg.asset(
    partitions_def=ENVIRONMENTS,
    group_name=GROUP,
    kinds={"python", "sqlalchemy"},
    deps=[inventory_items, baseline_snapshots, backup_sets],
    check_specs=_proof_check("environment_reviews"),
)
def environment_reviews(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, provider: ProviderResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:  # type: ignore[type-arg]
    """Environment reviews composed from the latest evidence, identified by a fingerprint.

    A compose that meets a same-fingerprint review adopts it instead of creating a second.
    """
    yield from materialize_family(context, FAMILIES["environment_reviews"], app_db, provider)


ARTIFACT_ASSETS = [inventory_items, baseline_snapshots, backup_sets, environment_reviews]
