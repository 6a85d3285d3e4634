"""Benchmark: draining a stale backlog amid a large history, against the database's floor.

    .venv/bin/python benchmarks/reconcile_backlog.py [--history 100000 [1000000 ...]]
        [--backlog 10000] [--batch BATCH_SIZE] [--linked 500] [--repeat 3] [--url URL]
        [--dagster-pg-url URL]

For each ``--history`` size (growing), seeds that many completed runs in total and fresh
stale backlogs with bulk SQL (a third of each inventory backlog with real inventory
coverage as proof). Then, in the same run:

1. the floor: the first backlog finalized with hand-written SQL in batches (select with
   ``SKIP LOCKED`` on PostgreSQL, one ``UPDATE`` and one multi-row audit ``INSERT`` each);
2. decide-and-write: the reconciler drains the second backlog (no Dagster reads);
3. the sensor path: the same again on a fresh backlog with a Dagster instance, decisions
   recorded and their events written (``drain``), on SQLite storage or ``--dagster-pg-url``;
4. the sensor path for ``--linked`` runs whose Dagster runs are still ``STARTED`` (their
   workers died): each decision also tags its Dagster run, evaluates its check on it and
   fails it, one Dagster write each (Dagster has no batch form for these). On PostgreSQL
   storage twice: as Dagster connects by default (a new connection per operation), and
   with pooled connections, as the reconciliation sensor's tick sets them up.

Every stage runs once on small backlogs first (a warm-up, not reported), and PostgreSQL
(both databases) is vacuumed and analyzed after each seeding, so what is measured is the
steady state of a long-lived process and database. It prints runs/s for each, the ratio to
the floor and the tick times, and with several sizes the per-run cost at the largest
against the smallest (medians of ``--repeat`` runs of stages 1-3). Figures, not asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
from seeding import Row, bench_app, bench_scopes, bulk_insert, settle
from sqlalchemy import BigInteger, any_, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.bulk import insert_rows
from opsrecon_dagster.db.models import AuditLog, DecisionOutbox, InventoryCoverage, OperationRun
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.instance.decisions import InstancePort
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.reconciliation.gc_pacing import paced_collection
from opsrecon_dagster.reconciliation.reconciler import Reconciler
from opsrecon_dagster.reconciliation.service import BATCH_SIZE, drain
from opsrecon_dagster.sensors.reconciliation import pool_connections
from opsrecon_dagster_tests.doubles import NoDagster

TYPES = ("deviceConfigurations", "compliancePolicies", "appProtectionPolicies")


def _run_row(i: int, scope: tuple[int, int], op_type: str, now: datetime, *, open_: bool) -> Row:
    ws_id, env_id = scope
    at = now - timedelta(days=1 if open_ else 2 + i % 360)
    row: Row = {
        "workspace_id": ws_id,
        "managed_environment_id": env_id,
        "type": op_type,
        "status": "running" if open_ else "completed",
        "input_hash": f"{op_type}{i:040x}",
        "identity_key": f"{op_type}{i:040x}",
        "context": {},
        "created_at": at - timedelta(minutes=5),
        "started_at": at - timedelta(minutes=5),
        "last_progress_at": at,
        # Due since long ago, as the lifecycle service stores it for a silent running row.
        "stale_at": at + timedelta(seconds=90) if open_ else None,
    }
    if not open_:
        row.update(outcome="succeeded", reason_code="inventory_all_types_covered", completed_at=at)
    return row


def seed_backlog(
    app: AppContext, scopes: list[tuple[int, int]], op_type: str, n: int, offset: int
) -> None:
    """``n`` stale running rows of ``op_type``; for inventory, a third with full coverage."""
    now = datetime.now(UTC)
    bulk_insert(
        app,
        OperationRun,
        (_run_row(offset + i, scopes[i % len(scopes)], op_type, now, open_=True) for i in range(n)),
    )
    if op_type != "inventory.sync":
        return
    with app.sessions() as s:
        ids = s.scalars(
            select(OperationRun.id)
            .where(OperationRun.type == op_type, OperationRun.status == "running")
            .order_by(OperationRun.id)
        ).all()
        rows = s.execute(
            select(
                OperationRun.id, OperationRun.workspace_id, OperationRun.managed_environment_id
            ).where(OperationRun.id.in_(ids[::3]))
        ).all()
    bulk_insert(
        app,
        InventoryCoverage,
        (
            {
                "operation_run_id": run_id,
                "workspace_id": ws_id,
                "managed_environment_id": env_id,
                "policy_type": t,
                "status": "succeeded",
                "item_count": 3,
                "recorded_at": now - timedelta(days=1),
            }
            for run_id, ws_id, env_id in rows
            for t in TYPES
        ),
    )


def floor(app: AppContext, op_type: str, batch: int) -> tuple[int, float]:
    """The same work by hand, in the fastest form each database has: select a batch, one
    ``UPDATE`` and one multi-row audit ``INSERT`` (on PostgreSQL ``= ANY(array)`` and
    ``INSERT ... SELECT FROM unnest``: one statement text whatever the batch)."""
    done, started = 0, time.perf_counter()
    postgres = app.url.get_backend_name() == "postgresql"
    while True:
        with app.sessions.begin() as session:
            now = datetime.now(UTC)
            stmt = (
                select(
                    OperationRun.id, OperationRun.workspace_id, OperationRun.managed_environment_id
                )
                .where(
                    OperationRun.type == op_type,
                    OperationRun.status == "running",
                    OperationRun.stale_at < now,
                )
                .order_by(OperationRun.stale_at, OperationRun.id)
                .limit(batch)
            )
            if postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = session.execute(stmt).all()
            if not rows:
                return done, time.perf_counter() - started
            ids = [r.id for r in rows]
            selected = (
                OperationRun.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
                if postgres
                else OperationRun.id.in_(ids)
            )
            session.execute(
                update(OperationRun)
                .where(selected, OperationRun.status == "running")
                .values(
                    status="completed",
                    outcome="failed",
                    reason_code="stale_without_proof",
                    completed_at=now,
                    stale_at=None,
                )
            )
            insert_rows(
                session,
                AuditLog,
                [
                    {
                        "operation_run_id": r.id,
                        "workspace_id": r.workspace_id,
                        "managed_environment_id": r.managed_environment_id,
                        "action": "run.reconciled",
                        "actor": "reconciler",
                        "from_status": "running",
                        "to_status": "completed",
                        "outcome": "failed",
                        "reason_code": "stale_without_proof",
                        "details": {},
                        "created_at": now,
                    }
                    for r in rows
                ],
            )
            done += len(rows)


def decide_and_write(app: AppContext, batch: int) -> tuple[int, float, list[float]]:
    reconciler = Reconciler(app.sessions, app.runs, NoDagster())
    done, started = 0, time.perf_counter()
    ticks: list[float] = []
    while True:
        t0 = time.perf_counter()
        with paced_collection():  # as the product's batches run
            results = reconciler.reconcile(limit=batch)
        if not results:
            return done, time.perf_counter() - started, ticks
        ticks.append(time.perf_counter() - t0)
        done += len(results)


def sensor_path(
    app: AppContext, instance: dg.DagsterInstance, batch: int
) -> tuple[int, float, int]:
    started, total, ticks = time.perf_counter(), 0, 0
    dagster = InstancePort(instance)
    while True:
        results = drain(app, dagster, now=datetime.now(UTC), budget_seconds=20.0, limit=batch)
        if not results:
            return total, time.perf_counter() - started, ticks
        ticks += 1
        total += len(results)


def link_to_started_runs(app: AppContext, instance: dg.DagsterInstance, n: int) -> None:
    """Give ``n`` open rows a Dagster run in ``STARTED``, as their workers left them."""
    job = defs.resolve_job_def("inventory_sync")
    with app.sessions() as s:
        rows = s.execute(
            select(OperationRun.id, OperationRun.managed_environment_id)
            .where(OperationRun.status == "running", OperationRun.dagster_run_id.is_(None))
            .order_by(OperationRun.id)
            .limit(n)
        ).all()
    links = []
    for run_id, env_id in rows:
        run = instance.create_run_for_job(
            job,
            status=dg.DagsterRunStatus.STARTED,
            tags={RUN_TAG: str(run_id), "dagster/partition": f"bench.env-{env_id}"},
        )
        links.append({"id": run_id, "dagster_run_id": run.run_id})
    with app.sessions.begin() as session:  # an UPDATE by primary key per row
        session.execute(update(OperationRun), links)


def _newest_event_id(instance: dg.DagsterInstance) -> int:
    key = dg.AssetKey("inventory_items")
    ids = [r.storage_id for r in instance.fetch_observations(key, limit=1).records]
    ids += [r.storage_id for r in instance.fetch_materializations(key, limit=1).records]
    return max(ids, default=0)


def _events_since(instance: dg.DagsterInstance, after: int, n: int) -> int:
    key = dg.AssetKey("inventory_items")
    limit = min(10_000, 2 * n)  # Dagster reads at most 10,000 records at a time
    records = [
        *instance.fetch_observations(key, limit=limit).records,
        *instance.fetch_materializations(key, limit=limit).records,
    ]
    return sum(r.storage_id > after for r in records)


def measure_once(
    app: AppContext,
    instance: dg.DagsterInstance,
    scopes: list[tuple[int, int]],
    args: argparse.Namespace,
    base: int,
) -> tuple[float, float, float]:
    """Stages 1-3 on fresh backlogs; returns the floor's, decide-and-write's and the sensor
    path's runs/s."""
    seed_backlog(app, scopes, "report.generate", args.backlog, base)
    seed_backlog(app, scopes, "inventory.sync", args.backlog, base + 10**9)
    settle(app, args.dagster_pg_url)
    n, seconds = floor(app, "report.generate", args.batch)
    floor_rate = n / seconds
    print(f"floor (hand-written SQL):       {floor_rate:8,.0f} runs/s  ({n:,} in {seconds:.1f}s)")
    n, seconds, ticks = decide_and_write(app, args.batch)
    decide_rate = n / seconds
    print(
        f"decide-and-write (reconciler):  {decide_rate:8,.0f} runs/s  = "
        f"1/{floor_rate / decide_rate:.1f} of the floor; batch of {args.batch}: "
        f"median {statistics.median(ticks):.2f}s, max {max(ticks):.2f}s"
    )
    with app.engine.begin() as conn:  # stage 2 reported nothing to Dagster: start clean
        conn.execute(delete(DecisionOutbox))
    seed_backlog(app, scopes, "inventory.sync", args.backlog, base + 2 * 10**9)
    settle(app, args.dagster_pg_url)
    before = _newest_event_id(instance)
    n, seconds, tick_count = sensor_path(app, instance, args.batch)
    sensor_rate = n / seconds
    storage = "PostgreSQL" if args.dagster_pg_url else "SQLite"
    print(
        f"sensor path with events ({storage} Dagster storage): {sensor_rate:8,.0f} runs/s "
        f"({n:,} decided and {_events_since(instance, before, n):,} events written in "
        f"{seconds:.1f}s, {tick_count} ticks of at most 20 s)"
    )
    return floor_rate, decide_rate, sensor_rate


def measure(
    app: AppContext,
    instance: dg.DagsterInstance,
    scopes: list[tuple[int, int]],
    args: argparse.Namespace,
    round_: int,
) -> tuple[float, float]:
    """Stages 1-3 ``--repeat`` times, then stage 4; returns the median decide-and-write and
    sensor-path runs/s (one 10,000-run backlog varies by a tenth or more from run to run on
    a 2-core machine; the median of several is what the per-run cost compares)."""
    base = (round_ + 1) * 10**10
    rates = [
        measure_once(app, instance, scopes, args, base + repeat * 10**8)
        for repeat in range(args.repeat)
    ]
    floor_rate, decide_rate, sensor_rate = (statistics.median(r) for r in zip(*rates, strict=True))
    if args.repeat > 1:
        print(
            f"median of {args.repeat}: floor {floor_rate:,.0f}, decide-and-write "
            f"{decide_rate:,.0f} (1/{floor_rate / decide_rate:.1f} of the floor), "
            f"sensor path {sensor_rate:,.0f} runs/s"
        )
    for pooled in (False, True) if args.dagster_pg_url else (False,):
        seed_backlog(app, scopes, "inventory.sync", args.linked, base + (3 + pooled) * 10**9)
        link_to_started_runs(app, instance, args.linked)
        settle(app, args.dagster_pg_url)
        with dg.DagsterInstance.from_ref(instance.get_ref()) as measured:
            if pooled:  # as the reconciliation sensor's tick does
                pool_connections(measured)
            n, seconds, _ticks = sensor_path(app, measured, args.batch)
        how = "pooled connections" if pooled else "a connection per operation"
        print(
            f"sensor path, each decision also ending its STARTED Dagster run ({how}): "
            f"{n / seconds:8,.0f} runs/s ({n:,} in {seconds:.1f}s)"
        )
    return decide_rate, sensor_rate


def warm_up(
    app: AppContext,
    instance: dg.DagsterInstance,
    scopes: list[tuple[int, int]],
    args: argparse.Namespace,
) -> None:
    """One small round of every stage first, not reported. Otherwise the first history size
    alone pays the process's first-use costs (statement compilation, connections, the
    server's caches): a sensor's code server is long-lived, and those costs would make the
    smallest history look slower than it is and the growth to the largest look smaller."""
    small = argparse.Namespace(**{**vars(args), "backlog": 1_000, "linked": 50, "repeat": 1})
    with contextlib.redirect_stdout(io.StringIO()):
        measure(app, instance, scopes, small, round_=99)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--history", type=int, nargs="+", default=[100_000], help="one or more sizes, growing"
    )
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=BATCH_SIZE)
    parser.add_argument("--linked", type=int, default=500, help="backlog of step 4")
    parser.add_argument("--repeat", type=int, default=3, help="stages 1-3 per size (median)")
    parser.add_argument("--url", default=None, help="database URL (default: temp SQLite)")
    parser.add_argument("--dagster-pg-url", default=None, help="Dagster storage on PostgreSQL")
    args = parser.parse_args()
    app = bench_app(args.url, "bench.sqlite3")
    scopes = bench_scopes(app, 20)
    config = (
        {"storage": {"postgres": {"postgres_url": args.dagster_pg_url}}}
        if args.dagster_pg_url
        else None
    )
    rates: list[tuple[int, float, float]] = []
    seeded = 0
    with dg.instance_for_test(overrides=config) as instance:
        pool_connections(instance)  # as the sensor's tick does
        warm_up(app, instance, scopes, args)
        for round_, size in enumerate(sorted(args.history)):
            t0, now = time.perf_counter(), datetime.now(UTC)
            bulk_insert(
                app,
                OperationRun,
                (
                    _run_row(i, scopes[i % len(scopes)], "inventory.sync", now, open_=False)
                    for i in range(seeded, size)
                ),
            )
            seeded = size
            print(
                f"\n{app.url.get_backend_name()}: {size:,} runs of history "
                f"(seeded in {time.perf_counter() - t0:.0f}s), backlogs of {args.backlog:,}"
            )
            rates.append((size, *measure(app, instance, scopes, args, round_)))
    if len(rates) > 1:
        (small, decide_0, sensor_0), (large, decide_1, sensor_1) = rates[0], rates[-1]
        print(
            f"\nper-run cost at {large:,} vs {small:,} runs of history: decide-and-write "
            f"{decide_0 / decide_1:.2f}x, sensor path {sensor_0 / sensor_1:.2f}x"
        )
    app.dispose()


if __name__ == "__main__":
    main()
