"""Guards the seeds ask to keep green, on both databases:

- reconciliation (the sensor on a real instance, and ``opsrecon reconcile`` in a process of
  its own) leaves every artifact table unchanged, row by row, while it decides a realistic
  mix of stale runs of every family;
- the reconciler, the reconciliation sensor, the overview and the command line's read paths
  make zero provider calls, while a job step with the very same provider configuration does
  make them (so the call log is proven to record).

The provider is the fixture provider with a ``call_log`` file, configured for every process
through ``OPSRECON_FIXTURE_PATH`` (and, in this process, as the packaged default too): a status
or render surface that got itself a provider the way product code does (the provider
resource, the deployed configuration, the fixture defaults) would leave its calls in that log.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import Table, select, update

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.common import load_scope
from opsrecon_dagster.artifacts.families import RETENTION
from opsrecon_dagster.assets.artifacts import ARTIFACT_ASSETS
from opsrecon_dagster.assets.overview import operations_overview
from opsrecon_dagster.db.models import (
    ACTIVE_RUN,
    BackupSchedule,
    Base,
    InventoryCoverage,
    OperationRun,
)
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.enums import Actor
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.operations.overview import build_overview
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers import fixture as fixture_module
from opsrecon_dagster.providers.fixture import (
    FixtureConfig,
    FixtureTenantProvider,
    ProviderCall,
    read_call_log,
)
from opsrecon_dagster.resources import (
    FIXTURE_PATH_VAR,
    AppDatabaseResource,
    ClockResource,
    ProviderResource,
)
from opsrecon_dagster.sensors.reconciliation import reconciliation_sensor
from opsrecon_dagster_tests.conftest import opsrecon
from opsrecon_dagster_tests.reconciliation.conftest import FIXTURE, World
from opsrecon_dagster_tests.reconciliation.test_truth_table import died_after_work

INV = OperationType.INVENTORY_SYNC
BASE = OperationType.BASELINE_CAPTURE
BACK = OperationType.BACKUP_SCHEDULE_EXECUTE
REV = OperationType.ENVIRONMENT_REVIEW_COMPOSE

# Every table of the schema is an artifact (domain) table and must come out of
# reconciliation unchanged, except these: the runs themselves, their audit trail, and the
# reconciler's and alerting's own bookkeeping. A table added to the models is covered
# without touching this test.
NOT_ARTIFACTS = frozenset({"operation_runs", "audit_log", "decision_outbox", "alert_deliveries"})
ARTIFACT_TABLES: list[Table] = [
    t for t in Base.metadata.sorted_tables if t.name not in NOT_ARTIFACTS
]
# Tables the mix below must fill, so "unchanged" is never "empty before and after".
MUST_HAVE_ROWS = (
    "inventory_items",
    "inventory_coverage",
    "baseline_snapshots",
    "baseline_snapshot_items",
    "baseline_gaps",
    "backup_schedules",
    "backup_sets",
    "backup_items",
    "environment_reviews",
)

CLI_TIMEOUT = 180.0
Decided = tuple[str | None, str | None]


# ------------------------------------------------------------------------------ the mix


@dataclass(frozen=True)
class Mix:
    """Stale runs of every family, by name, with the decision each must get."""

    expected: dict[str, tuple[int, Decided]]

    def ids(self, *names: str) -> list[int]:
        return [self.expected[n][0] for n in names]

    def of_type(self, world: World, op_type: OperationType) -> list[str]:
        return [n for n, (i, _) in self.expected.items() if world.app.runs.get(i).type == op_type]


def _wrong_scope(world: World) -> tuple[int, int]:
    """A run whose only 'proof' is another workspace's coverage relabelled with its id, and
    that other workspace's run, left with its items but without its coverage."""
    mine = world.scope("contoso", "acme")
    theirs = world.scope("contoso", "globex")
    run_id = world.start(INV, mine)
    world.running(run_id)
    other = world.start(INV, theirs)
    world.work_then_die("inventory_items", other)
    with world.app.sessions.begin() as s:
        for row in s.scalars(select(InventoryCoverage)):
            if row.operation_run_id == other:
                row.operation_run_id = run_id
    return run_id, other


def _retention(world: World) -> int:
    """A retention run whose worker pruned the oldest of two complete sets, then died."""
    scope = world.scope("retention")
    schedule_id = world.schedule(scope)
    for day in (1, 2):
        backup = world.start(
            BACK,
            scope,
            backup_schedule_id=schedule_id,
            scheduled_for=datetime(2026, 1, day, tzinfo=UTC),
        )
        world.work_then_die("backup_sets", backup)
        world.reconcile(later=timedelta(0), run_ids=[backup], force_stale=True)
    with world.app.sessions.begin() as s:
        s.execute(
            update(BackupSchedule).where(BackupSchedule.id == schedule_id).values(retention_count=1)
        )
    run_id = world.app.runs.start(
        OperationType.BACKUP_RETENTION_PRUNE,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(backup_schedule_id=schedule_id, trigger="backup"),
        actor=Actor.JOB,
    ).run.id
    world.running(run_id)
    with world.app.sessions() as s:
        run = s.get(OperationRun, run_id)
        assert run is not None
        run_scope = load_scope(s, run)
    RETENTION.execute(world.app.sessions, run_scope, world.provider, lambda _p: None)
    return run_id


def build_mix(world: World) -> Mix:
    """Runs with full proof, partial proof, blocking proof, failing proof, wrong-scope
    artifacts, no proof, never started, an unsupported type and a retention run; each
    worker gone. Their rows are then dated back a day, so any clock finds them stale."""
    gaps = [{"policy_type": "compliancePolicies"}, {"policy_type": "x", "display_name": "y"}]
    proven_despite_failure = world.start(INV, world.scope("dagsterfailed"))
    world.running(proven_despite_failure, "FAILURE")
    world.work_then_die("inventory_items", proven_despite_failure)
    silent = world.start(INV, world.scope("silent"))
    world.running(silent)
    restore = world.start(OperationType.RESTORE_EXECUTE, world.scope("restore"))
    world.running(restore)
    wrong_scope, robbed = _wrong_scope(world)
    expected: dict[str, tuple[int, Decided]] = {
        "inventory_full": (
            died_after_work(world, INV, "full", "inventory_items"),
            ("succeeded", "inventory_all_types_covered"),
        ),
        "inventory_partial": (
            died_after_work(world, INV, "partial", "inventory_items"),
            ("partially_succeeded", "inventory_partial_coverage"),
        ),
        "inventory_blocked": (
            died_after_work(world, INV, "noconsent", "inventory_items"),
            ("blocked", "inventory_access_missing"),
        ),
        "inventory_failed": (
            died_after_work(world, INV, "allthrottled", "inventory_items"),
            ("failed", "inventory_no_type_covered"),
        ),
        "inventory_dagster_failed_with_proof": (
            proven_despite_failure,
            ("succeeded", "inventory_all_types_covered"),
        ),
        "inventory_wrong_scope": (wrong_scope, ("failed", "stale_without_proof")),
        "inventory_proof_taken": (robbed, ("failed", "queued_never_started")),
        "inventory_no_proof": (silent, ("failed", "stale_without_proof")),
        "inventory_never_started": (
            world.start(INV, world.scope("neverstarted")),
            ("failed", "queued_never_started"),
        ),
        "baseline_full": (
            died_after_work(world, BASE, "base", "baseline_snapshots"),
            ("succeeded", "baseline_snapshot_complete"),
        ),
        "baseline_gaps": (
            died_after_work(world, BASE, "gaps", "baseline_snapshots", subjects=gaps),
            ("partially_succeeded", "baseline_snapshot_with_gaps"),
        ),
        "backup_full": (
            died_after_work(world, BACK, "back", "backup_sets"),
            ("succeeded", "backup_all_items_captured"),
        ),
        "backup_partial": (
            died_after_work(world, BACK, "partial", "backup_sets"),
            ("partially_succeeded", "backup_some_items_failed"),
        ),
        "review": (
            died_after_work(world, REV, "rev", "environment_reviews"),
            ("succeeded", "review_composed"),
        ),
        "retention": (_retention(world), ("succeeded", "retention_enforced")),
        "unsupported": (restore, ("failed", "unsupported_type_stale")),
    }
    long_ago = datetime.now(UTC) - timedelta(days=2)
    with world.app.engine.begin() as conn:  # the workers stopped reporting two days ago
        conn.execute(
            update(OperationRun)
            .where(ACTIVE_RUN)
            .values(last_progress_at=long_ago, stale_at=long_ago)
        )
    mix = Mix(expected)
    assert {world.app.runs.get(i).status for i, _ in expected.values()} <= {"queued", "running"}
    return mix


def assert_decided(world: World, mix: Mix, names: list[str]) -> None:
    """Each named run got its expected decision (so a guard never passes on idle code)."""
    got = {n: world.decided(mix.expected[n][0]) for n in names}
    assert got == {n: mix.expected[n][1] for n in names}


# ------------------------------------------------------------------- the guarded world


@dataclass
class Guarded:
    world: World
    mix: Mix
    call_log: Path
    env: dict[str, str]  # for the command line: this database, instance and provider

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = opsrecon(*args, env=self.env, timeout=CLI_TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def calls(self) -> list[ProviderCall]:
        return read_call_log(self.call_log)


@pytest.fixture
def guarded(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Guarded:
    """The mix, built through a fixture provider that logs every call to a file; that
    provider configured for this process and for every command the test runs."""
    call_log = tmp_path / "provider-calls.log"
    fixture_file = tmp_path / "tenants.json"
    fixture_file.write_text(json.dumps({**FIXTURE, "call_log": str(call_log)}))
    world.provider = FixtureTenantProvider(
        FixtureConfig.model_validate_json(fixture_file.read_text())
    )
    monkeypatch.setenv(FIXTURE_PATH_VAR, str(fixture_file))
    monkeypatch.setattr(fixture_module, "DEFAULT_FIXTURE_FILE", fixture_file)
    monkeypatch.delenv("OPSRECON_PROVIDER", raising=False)
    mix = build_mix(world)
    assert read_call_log(call_log), "building the mix went through the logging provider"
    call_log.unlink(missing_ok=True)  # from here on, each line is a call by the code under test
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRECON_")}
    env |= {
        "OPSRECON_DATABASE_URL": world.app.url.render_as_string(hide_password=False),
        FIXTURE_PATH_VAR: str(fixture_file),
        # The command line shares the test's Dagster instance (its runs and event log).
        "DAGSTER_HOME": str(world.instance.root_directory),
    }
    return Guarded(world, mix, call_log, env)


def tick(world: World) -> dg.SensorResult:
    """One evaluation of the reconciliation sensor on the test's real instance."""
    result = reconciliation_sensor(
        dg.build_sensor_context(
            instance=world.instance,
            cursor=None,  # a first tick
            definitions=defs,  # as in the code location: never-launched runs get stand-ins
            resources={
                "app_db": AppDatabaseResource(
                    database_url=world.app.url.render_as_string(hide_password=False)
                ),
                "clock": ClockResource.at(datetime.now(UTC)),
            },
        )
    )
    assert isinstance(result, dg.SensorResult)
    return result


# ------------------------------------------------------------ artifact tables unchanged


def row_hashes(app: AppContext) -> dict[str, dict[str, str]]:
    """Table → primary key → SHA-256 of the whole row, for every artifact table."""
    hashes: dict[str, dict[str, str]] = {}
    with app.engine.connect() as conn:
        for table in ARTIFACT_TABLES:
            key_columns = list(table.primary_key.columns) or list(table.columns)
            rows: dict[str, str] = {}
            for row in conn.execute(select(table).order_by(*key_columns)).mappings():
                key = json.dumps([row[c.name] for c in key_columns], default=str)
                canonical = json.dumps(dict(row), sort_keys=True, default=str)
                rows[key] = hashlib.sha256(canonical.encode()).hexdigest()
            hashes[table.name] = rows
    return hashes


def assert_unchanged(before: dict[str, dict[str, str]], app: AppContext, step: str) -> None:
    after = row_hashes(app)
    changed = {
        table: {
            "added": sorted(after[table].keys() - rows.keys()),
            "removed": sorted(rows.keys() - after[table].keys()),
            "changed": sorted(
                k for k in rows.keys() & after[table].keys() if rows[k] != after[table][k]
            ),
        }
        for table, rows in before.items()
        if after[table] != rows
    }
    assert changed == {}, f"{step} changed artifact rows"


def test_the_exclusions_are_real_tables_and_the_families_are_covered() -> None:
    names = set(Base.metadata.tables)
    assert names >= NOT_ARTIFACTS  # a renamed bookkeeping table must not slip out unnoticed
    assert {t.name for t in ARTIFACT_TABLES} == names - NOT_ARTIFACTS
    assert set(MUST_HAVE_ROWS) <= {t.name for t in ARTIFACT_TABLES}


def test_reconciliation_leaves_every_artifact_table_unchanged(guarded: Guarded) -> None:
    world, mix = guarded.world, guarded.mix
    before = row_hashes(world.app)
    empty = [t for t in MUST_HAVE_ROWS if not before[t]]
    assert empty == [], "the mix must fill every family's tables"
    # ``opsrecon reconcile`` in a process of its own decides the inventory runs ...
    inventory = mix.of_type(world, INV)
    done = guarded.cli("reconcile", "--type", INV.value, "--json")
    assert {r["id"] for r in json.loads(done.stdout)["runs"]} == set(mix.ids(*inventory))
    assert_decided(world, mix, inventory)
    assert_unchanged(before, world.app, "opsrecon reconcile")
    # ... and the sensor, evaluated on the real instance, every other family.
    rest = [n for n in mix.expected if n not in inventory]
    assert {world.app.runs.get(i).status for i in mix.ids(*rest)} <= {"queued", "running"}
    result = tick(world)
    assert json.loads(result.cursor or "")["decided"] == len(rest)
    assert_decided(world, mix, list(mix.expected))
    assert_unchanged(before, world.app, "the reconciliation sensor")
    assert guarded.calls() == []


# ---------------------------------------------------------------- zero provider calls


def test_status_and_render_paths_make_no_provider_calls(guarded: Guarded) -> None:
    world, mix = guarded.world, guarded.mix
    instance = world.instance

    def no_calls(step: str) -> None:
        assert guarded.calls() == [], f"{step} called the provider"

    some = mix.ids("inventory_full", "baseline_gaps", "inventory_wrong_scope")
    guarded.cli("runs", "list")
    guarded.cli("runs", "show", str(some[0]))
    guarded.cli("runs", "explain", str(some[0]))
    no_calls("runs list/show/explain of open runs")
    dry = json.loads(guarded.cli("reconcile", "--dry-run", "--json").stdout)["runs"]
    assert {r["id"] for r in dry} == set(mix.ids(*mix.expected))
    assert {r["written"] for r in dry} == {None}
    no_calls("opsrecon reconcile --dry-run")
    # The reconciler itself, as the sensor and the command line call it.
    assert {r.verdict.outcome for r in world.reconcile(dry_run=True)} != {None}
    world.reconcile(run_ids=some)
    assert_decided(world, mix, ["inventory_full", "baseline_gaps", "inventory_wrong_scope"])
    no_calls("the reconciler")
    guarded.cli("reconcile", "--type", BACK.value)
    assert_decided(world, mix, ["backup_full", "backup_partial"])
    no_calls("opsrecon reconcile")
    tick(world)
    assert_decided(world, mix, list(mix.expected))
    no_calls("the reconciliation sensor")
    # Decided runs: evidence, audit trail and links are rendered, still without the provider.
    for run_id in mix.ids("inventory_partial", "retention", "review"):
        guarded.cli("runs", "show", str(run_id), "--json")
        guarded.cli("runs", "explain", str(run_id))
    guarded.cli("runs", "list", "--json")
    no_calls("runs list/show/explain of decided runs")
    with world.app.sessions() as session:
        view = build_overview(session, datetime.now(UTC))
    assert view.decided_24h >= len(mix.expected)
    overview = dg.materialize(
        [operations_overview],
        instance=instance,
        resources={
            "app_db": AppDatabaseResource(
                database_url=world.app.url.render_as_string(hide_password=False)
            ),
            "clock": ClockResource(),
        },
    )
    assert overview.success
    no_calls("the operations overview")

    # Positive controls with the same configuration: a job step calls the provider, in this
    # process and in a command of its own, and each call lands in the log.
    scope = world.scope("control")
    if not instance.has_dynamic_partition(ENVIRONMENTS.name or "", scope.partition_key):
        instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
    synced = dg.materialize(
        [ARTIFACT_ASSETS[0]],
        partition_key=scope.partition_key,
        instance=instance,
        resources={
            "app_db": AppDatabaseResource(
                database_url=world.app.url.render_as_string(hide_password=False)
            ),
            "provider": ProviderResource(),  # from OPSRECON_FIXTURE_PATH, as deployed
        },
    )
    assert synced.success
    in_process = guarded.calls()
    assert in_process.count(ProviderCall("list_policies", scope.partition_key)) == 3
    other = world.scope("control2")
    guarded.cli("operations", "start", INV.value, "--environment", other.partition_key,
                "--in-process", "--json")  # fmt: skip
    from_cli = guarded.calls()[len(in_process) :]
    assert from_cli.count(ProviderCall("list_policies", other.partition_key)) == 3
