"""Benchmark: draining a stale backlog amid a large history, against the database's floor,
and the reconciliation tick on Dagster's storage at scale.

    .venv/bin/python benchmarks/reconcile_backlog.py [--history 100000 [1000000 ...]]
        [--backlog 10000] [--environments 1000] [--ticks 10] [--batch BATCH_SIZE]
        [--linked 500] [--repeat 3] [--url URL] [--dagster-pg-url URL]

For each ``--history`` size (growing), seeds that many completed runs in total and fresh
stale backlogs with bulk SQL (a third of each inventory backlog with real inventory
coverage as proof), spread over ``--environments`` environments. Then, in the same run:

1. the minimal floor: the first backlog finalized with hand-written SQL in batches (select
   with ``SKIP LOCKED`` on PostgreSQL, one ``UPDATE`` and one multi-row audit ``INSERT``
   each): what no implementation can beat;
2. decide-and-write: the reconciler drains the second backlog (no Dagster reads), and the
   floor: the very statements it sent (texts, parameters, commits, as its driver received
   them) replayed through the bare driver on a copy of the database taken just before, every
   result fetched. The ratio of the two is the client's cost (ORM, pydantic, JSON, the
   decisions themselves); the ratio to the minimal floor is printed beside it.

Then for Dagster's SQLite storage, and for PostgreSQL storage with ``--dagster-pg-url``,
the reconciliation tick exactly as the sensor runs it (``drain`` within the tick's budget,
the code location's jobs, so never-launched runs get their stand-in runs):

3. ticks: ``--ticks`` times a backlog of one stale run per environment (every decision
   needs its own Dagster writes: none is superseded), tick after tick until every event is
   delivered: each tick's time, how many ticks the events took, and the process's resident
   memory after each round (its growth over the rounds);
4. throughput: ``--backlog`` runs across the environments, ticks until delivered: runs/s,
   and Dagster's storage growth per 1,000 decisions;
5. dead workers: ``--linked`` runs whose Dagster runs are still ``STARTED``: each decision
   also tags its Dagster run, evaluates its check on it and fails it.

Every stage runs once on small backlogs first (a warm-up, not reported), and PostgreSQL
(both databases) is vacuumed and analyzed after each seeding, so what is measured is the
steady state of a long-lived process and database. Figures, not asserts; the peak resident
memory is printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import resource
import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from seeding import Row, bench_app, bench_scopes, bulk_insert, settle
from sqlalchemy import (
    BigInteger,
    Engine,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.bulk import insert_rows
from opsrecon_dagster.db.engine import make_engine
from opsrecon_dagster.db.models import AuditLog, DecisionOutbox, InventoryCoverage, OperationRun
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.instance.decisions import InstancePort, jobs_of
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.reconciliation.dagster_view import RUN_TAG
from opsrecon_dagster.reconciliation.gc_pacing import paced_collection
from opsrecon_dagster.reconciliation.reconciler import Reconciler
from opsrecon_dagster.reconciliation.service import BATCH_SIZE, drain
from opsrecon_dagster.sensors.reconciliation import TICK_BUDGET_SECONDS, pool_connections
from opsrecon_dagster_tests.doubles import NoDagster  # found through seeding's sys.path

TYPES = ("deviceConfigurations", "compliancePolicies", "appProtectionPolicies")


def _run_row(i: int, scope: tuple[int, int], op_type: str, now: datetime, *, open_: bool) -> Row:
    ws_id, env_id = scope
    at = now - timedelta(days=1 if open_ else 2 + i % 360)
    row: Row = {
        "workspace_id": ws_id,
        "managed_environment_id": env_id,
        "type": op_type,
        "status": "running" if open_ else "completed",
        # Hex digests, as the lifecycle service stores them (the reconciler checks the form).
        "input_hash": hashlib.sha256(f"{op_type} {i}".encode()).hexdigest(),
        "identity_key": hashlib.sha256(f"{op_type} {i} key".encode()).hexdigest(),
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


class StatementLog:
    """Every statement an engine sends, as its driver receives it (text, parameters,
    ``executemany``), and every commit: what the reconciler asked of the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.steps: list[tuple[str, Any, bool] | None] = []  # None: a commit

    def _statement(self, _c: Any, _cur: Any, stmt: str, params: Any, _ctx: Any, many: bool) -> None:
        self.steps.append((stmt, params, many))

    def _commit(self, _conn: Any) -> None:
        self.steps.append(None)

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)


@contextlib.contextmanager
def snapshot(app: AppContext) -> Iterator[Engine]:
    """An engine on a copy of the application database as it is now (SQLite's backup API;
    PostgreSQL's ``CREATE DATABASE ... TEMPLATE``), dropped afterwards."""
    url = app.url
    if url.get_backend_name() == "sqlite":
        copy = Path(str(url.database) + ".replay")
        copy.unlink(missing_ok=True)
        with (
            contextlib.closing(sqlite3.connect(str(url.database))) as src,
            contextlib.closing(sqlite3.connect(str(copy))) as dst,
        ):
            src.backup(dst)
        engine = make_engine(url.set(database=str(copy)))
        try:
            yield engine
        finally:
            engine.dispose()
            copy.unlink(missing_ok=True)
        return
    name = f"{url.database}_replay"
    app.engine.dispose()  # the template must have no other session
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
        engine = make_engine(url.set(database=name))
        try:
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


def replay(engine: Engine, steps: list[tuple[str, Any, bool] | None]) -> float:
    """Seconds to send ``steps`` through the driver alone: the same statements, the same
    parameters, the same commits, every result fetched, no ORM, no Python between them."""
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.connect() as conn:  # warm the copy's pages, as the original's are
        for table in tables:
            conn.execute(text(f'SELECT count(*) FROM "{table}"'))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        for step in steps:
            if step is None:
                raw.commit()
                continue
            statement, params, many = step
            if many:
                cursor.executemany(statement, params)
            else:
                cursor.execute(statement, params)
            if cursor.description is not None:
                cursor.fetchall()
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


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


def rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def storage_bytes(instance: dg.DagsterInstance, pg_url: str | None) -> int:
    """Dagster's storage on disk: its SQLite files, or its PostgreSQL database."""
    if pg_url:
        engine = create_engine(pg_url)
        try:
            with engine.connect() as conn:
                return int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
        finally:
            engine.dispose()
    root = Path(instance.root_directory)
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


@dataclass
class Ticks:
    """Ticks until the backlog is decided and every decision shown in Dagster."""

    seconds: list[float] = field(default_factory=list)
    decided: int = 0
    delivered: int = 0


def tick_until_done(app: AppContext, port: InstancePort, batch: int) -> Ticks:
    """Reconciliation ticks as the sensor runs them, until nothing is left."""
    ticks = Ticks()
    while True:
        t0 = time.perf_counter()
        drained = drain(
            app, port, now=datetime.now(UTC), budget_seconds=TICK_BUDGET_SECONDS, limit=batch
        )
        if not drained.results and not drained.delivered:
            return ticks
        ticks.seconds.append(time.perf_counter() - t0)
        ticks.decided += len(drained.results)
        ticks.delivered += drained.delivered


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


def measure_once(
    app: AppContext, scopes: list[tuple[int, int]], args: argparse.Namespace, base: int
) -> tuple[float, float]:
    """Stages 1-2 on fresh backlogs; returns the floor's and decide-and-write's runs/s."""
    seed_backlog(app, scopes, "report.generate", args.backlog, base)
    seed_backlog(app, scopes, "inventory.sync", args.backlog, base + 10**9)
    settle(app, args.dagster_pg_url)
    n, seconds = floor(app, "report.generate", args.batch)
    minimal_rate = n / seconds
    with snapshot(app) as copy, StatementLog(app.engine) as log:
        n, seconds, ticks = decide_and_write(app, args.batch)
        floor_rate = n / replay(copy, log.steps)
    decide_rate = n / seconds
    print(
        f"minimal floor (select, update, audit insert by hand): {minimal_rate:8,.0f} runs/s\n"
        f"floor (the reconciler's own statements replayed):     {floor_rate:8,.0f} runs/s  "
        f"({len([s for s in log.steps if s]):,} statements)\n"
        f"decide-and-write (reconciler):                        {decide_rate:8,.0f} runs/s  = "
        f"1/{floor_rate / decide_rate:.1f} of the floor, 1/{minimal_rate / decide_rate:.1f} of "
        f"the minimal floor; batch of {args.batch}: median {statistics.median(ticks):.2f}s, "
        f"max {max(ticks):.2f}s"
    )
    with app.engine.begin() as conn:  # stage 2 is not delivered: the sensor stages start clean
        conn.execute(delete(DecisionOutbox))
        # The seeded rows must be ones the reconciler can read, or this measures the
        # unreadable-row path instead of the decisions.
        unreadable = conn.scalar(
            select(func.count())
            .select_from(OperationRun)
            .where(OperationRun.reason_code.in_(["run_field_invalid", "run_unreadable"]))
        )
    if unreadable:
        raise SystemExit(f"benchmark error: {unreadable} seeded rows were unreadable")
    return floor_rate, decide_rate


def measure(
    app: AppContext, scopes: list[tuple[int, int]], args: argparse.Namespace, round_: int
) -> float:
    """Stages 1-2 ``--repeat`` times; returns the median decide-and-write runs/s."""
    base = (round_ + 1) * 10**10
    rates = [measure_once(app, scopes, args, base + r * 10**8) for r in range(args.repeat)]
    floor_rate, decide_rate = (statistics.median(r) for r in zip(*rates, strict=True))
    if args.repeat > 1:
        print(
            f"median of {args.repeat}: floor {floor_rate:,.0f}, decide-and-write "
            f"{decide_rate:,.0f} runs/s (1/{floor_rate / decide_rate:.1f} of the floor)"
        )
    return float(decide_rate)


def sensor_stages(
    app: AppContext,
    instance: dg.DagsterInstance,
    scopes: list[tuple[int, int]],
    args: argparse.Namespace,
    pg_url: str | None,
    base: int,
) -> None:
    """Stages 3-5 on one Dagster storage."""
    port = InstancePort(instance, jobs_of(defs.get_repository_def()))
    envs = len(scopes)
    rss, worst, longest = [], 0.0, 0
    print(f"ticks: {args.ticks} rounds of {envs:,} stale runs, one per environment")
    for round_ in range(args.ticks):
        seed_backlog(app, scopes, "inventory.sync", envs, base + round_ * 10**7)
        settle(app, pg_url)
        ticks = tick_until_done(app, port, args.batch)
        rss.append(rss_mib())
        worst, longest = max(worst, *ticks.seconds), max(longest, len(ticks.seconds))
        print(
            f"  round {round_ + 1}: {ticks.decided:,} decided, {ticks.delivered:,} shown in "
            f"Dagster in {len(ticks.seconds)} tick(s) of "
            f"{', '.join(f'{t:.1f}' for t in ticks.seconds)} s; RSS {rss[-1]:.0f} MiB"
        )
    print(
        f"  slowest tick {worst:.1f} s (budget {TICK_BUDGET_SECONDS:.0f} s); every event "
        f"delivered within {longest} tick(s); RSS growth over {args.ticks} rounds "
        f"{rss[-1] - rss[0]:+.0f} MiB ({rss[0]:.0f} -> {rss[-1]:.0f})"
    )
    seed_backlog(app, scopes, "inventory.sync", args.backlog, base + 10**9)
    settle(app, pg_url)
    before, t0 = storage_bytes(instance, pg_url), time.perf_counter()
    ticks = tick_until_done(app, port, args.batch)
    seconds = time.perf_counter() - t0
    grown = storage_bytes(instance, pg_url) - before
    print(
        f"throughput: {ticks.decided / seconds:8,.0f} runs/s ({ticks.decided:,} decided and "
        f"{ticks.delivered:,} shown in Dagster in {seconds:.1f} s, {len(ticks.seconds)} "
        f"tick(s)); storage growth {grown / 1e6 / ticks.decided * 1000:.1f} MB per 1,000 "
        f"decisions"
    )
    if args.linked:
        seed_backlog(app, scopes, "inventory.sync", args.linked, base + 2 * 10**9)
        link_to_started_runs(app, instance, args.linked)
        settle(app, pg_url)
        t0 = time.perf_counter()
        ticks = tick_until_done(app, port, args.batch)
        seconds = time.perf_counter() - t0
        print(
            f"dead workers (each decision also ends its STARTED Dagster run): "
            f"{ticks.decided / seconds:8,.0f} runs/s ({ticks.decided:,} in {seconds:.1f} s)"
        )


def on_storage(
    app: AppContext, scopes: list[tuple[int, int]], args: argparse.Namespace, pg_url: str | None
) -> None:
    """Stages 3-5 on a fresh instance of one storage, after an unreported warm-up."""
    config = {"storage": {"postgres": {"postgres_url": pg_url}}} if pg_url else None
    name = "PostgreSQL" if pg_url else "SQLite"
    with dg.instance_for_test(overrides=config) as instance:
        pool_connections(instance)  # as the sensor's tick does
        instance.add_dynamic_partitions(
            ENVIRONMENTS.name or "", [f"bench.env-{env_id}" for _ws, env_id in scopes]
        )
        small = argparse.Namespace(**{**vars(args), "backlog": 500, "linked": 20, "ticks": 1})
        with contextlib.redirect_stdout(io.StringIO()):
            sensor_stages(app, instance, scopes[:100], small, pg_url, base=7 * 10**11)
        print(f"\nDagster storage: {name}")
        sensor_stages(app, instance, scopes, args, pg_url, base=8 * 10**11)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--history", type=int, nargs="+", default=[100_000], help="one or more sizes, growing"
    )
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--environments", type=int, default=1_000)
    parser.add_argument("--ticks", type=int, default=10, help="rounds of stage 3")
    parser.add_argument("--batch", type=int, default=BATCH_SIZE)
    parser.add_argument("--linked", type=int, default=500, help="backlog of stage 5 (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="stages 1-2 per size (median)")
    parser.add_argument("--url", default=None, help="database URL (default: temp SQLite)")
    parser.add_argument("--dagster-pg-url", default=None, help="also Dagster storage on PostgreSQL")
    args = parser.parse_args()
    app = bench_app(args.url, "bench.sqlite3")
    scopes = bench_scopes(app, args.environments)
    rates: list[tuple[int, float]] = []
    seeded = 0
    small = argparse.Namespace(**{**vars(args), "backlog": 1_000, "repeat": 1})
    with contextlib.redirect_stdout(io.StringIO()):  # warm-up, not reported
        measure(app, scopes, small, round_=99)
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
            f"(seeded in {time.perf_counter() - t0:.0f}s), backlogs of {args.backlog:,} across "
            f"{len(scopes):,} environments"
        )
        rates.append((size, measure(app, scopes, args, round_)))
    if len(rates) > 1:
        (small_size, decide_0), (large, decide_1) = rates[0], rates[-1]
        print(
            f"\nper-run cost at {large:,} vs {small_size:,} runs of history: decide-and-write "
            f"{decide_0 / decide_1:.2f}x"
        )
    for pg_url in (None, args.dagster_pg_url) if args.dagster_pg_url else (None,):
        on_storage(app, scopes, args, pg_url)
    print(f"\npeak RSS {peak_rss_mib():.0f} MiB")
    app.dispose()


if __name__ == "__main__":
    main()
