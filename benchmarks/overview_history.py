"""Benchmark: the operations overview's cost as history grows (100k, then 1M runs).

    .venv/bin/python benchmarks/overview_history.py [--sizes 100000 1000000] [--url URL]

Seeds completed runs spread over the last year, with the same last-day volume and the same
open backlog at every size, and times ``build_overview`` (median of several calls) after
each size is reached. Flat figures mean the overview reads the last day and the backlog,
not the history. Defaults to a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from seeding import Row, bench_app, bench_scopes, bulk_insert

from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.operations.overview import build_overview
from opsrecon_dagster.operations.staleness import StalenessRule

LAST_DAY = 2_000  # runs decided in the last 24 h, at every size
OPEN = 500  # open runs, at every size
OUTCOMES = ["succeeded", "succeeded", "succeeded", "partially_succeeded", "blocked", "failed"]
TYPES = ["inventory.sync", "baseline.capture", "backup.schedule.execute"]
RULE = StalenessRule(OperationCatalog())  # open rows' due times, as the lifecycle stores them


def _rows(
    start: int, count: int, scopes: list[tuple[int, int]], now: datetime, *, recent: bool
) -> Iterator[Row]:
    for i in range(start, start + count):
        ws_id, env_id = scopes[i % len(scopes)]
        age = timedelta(minutes=i % 1440) if recent else timedelta(days=2 + i % 360)
        done = now - age
        yield {
            "workspace_id": ws_id,
            "managed_environment_id": env_id,
            "type": TYPES[i % len(TYPES)],
            "status": "completed",
            "outcome": OUTCOMES[i % len(OUTCOMES)],
            "reason_code": "stale_without_proof",
            "input_hash": f"{i:064x}",
            "identity_key": f"{i:064x}",
            "context": {},
            "created_at": done - timedelta(minutes=5),
            "last_progress_at": done,
            "completed_at": done,
        }


def _open_rows(count: int, scopes: list[tuple[int, int]], now: datetime) -> Iterator[Row]:
    for i in range(count):
        ws_id, env_id = scopes[i % len(scopes)]
        yield {
            "workspace_id": ws_id,
            "managed_environment_id": env_id,
            "type": TYPES[i % len(TYPES)],
            "status": "running" if i % 2 else "queued",
            "input_hash": f"open{i:060x}",
            "identity_key": f"open{i:060x}",
            "context": {},
            "created_at": now - timedelta(minutes=i),
            "last_progress_at": now - timedelta(minutes=i),
            "stale_at": RULE.due_at(
                TYPES[i % len(TYPES)], "running" if i % 2 else "queued", now - timedelta(minutes=i)
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--calls", type=int, default=21)
    parser.add_argument("--url", default=None, help="database URL (default: temp SQLite)")
    args = parser.parse_args()
    app = bench_app(args.url, "overview.sqlite3")
    scopes = bench_scopes(app, 50)
    now = datetime.now(UTC)
    bulk_insert(app, OperationRun, _rows(0, LAST_DAY, scopes, now, recent=True))
    bulk_insert(app, OperationRun, _open_rows(OPEN, scopes, now))
    print(f"{app.url.get_backend_name()}: {LAST_DAY} runs in the last 24 h, {OPEN} open")
    seeded = LAST_DAY + OPEN
    for size in sorted(args.sizes):
        t0 = time.perf_counter()
        bulk_insert(app, OperationRun, _rows(seeded, size - seeded, scopes, now, recent=False))
        seeded = size
        if app.url.get_backend_name() == "postgresql":
            with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE operation_runs")
        seconds = []
        for _ in range(args.calls):
            c0 = time.perf_counter()
            with app.sessions() as session:
                view = build_overview(session, datetime.now(UTC))
            seconds.append(time.perf_counter() - c0)
        print(
            f"history {size:>9,} runs (seeded in {time.perf_counter() - t0:.0f}s): overview "
            f"median {1000 * statistics.median(seconds):.1f} ms, max "
            f"{1000 * max(seconds):.1f} ms ({view.decided_24h} decided in 24 h, "
            f"{view.open} open, {len(view.attention)} environments needing attention)"
        )
    app.dispose()


if __name__ == "__main__":
    main()
