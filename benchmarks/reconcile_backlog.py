"""Benchmark: how long reconciliation ticks take over a large stale backlog.

    .venv/bin/python benchmarks/reconcile_backlog.py [--runs 5000] [--batch 200] [--url URL]

Seeds a backlog of stale runs (a third with proof written by the real job step), then drains
it batch by batch through the reconciler (the sensor's code path, minus the daemon's event
writes) and prints per-tick figures. Defaults to a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from opsrecon_dagster.artifacts.common import load_scope
from opsrecon_dagster.artifacts.families import FAMILIES
from opsrecon_dagster.db import migrate
from opsrecon_dagster.db.models import OperationRun
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.providers.fixture import FixtureTenantProvider
from opsrecon_dagster.reconciliation.dagster_view import NoDagster
from opsrecon_dagster.reconciliation.reconciler import Reconciler
from opsrecon_dagster.settings import AppContext, Settings
from opsrecon_dagster.tenancy import get_or_create_environment, get_or_create_workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--url", default=None, help="database URL (default: temp SQLite)")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    app = AppContext(Settings(database_url=url))
    migrate.upgrade(app.engine)
    with app.sessions.begin() as s:
        ws = get_or_create_workspace(s, "bench")
        envs = [get_or_create_environment(s, ws, f"env-{i}") for i in range(20)]
        scopes = [(ws.id, e.id) for e in envs]
    provider = FixtureTenantProvider()
    started = time.perf_counter()
    ids = []
    for i in range(args.runs):
        ws_id, env_id = scopes[i % len(scopes)]
        tick = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)
        run = app.runs.start(
            OperationType.INVENTORY_SYNC,
            workspace_id=ws_id,
            environment_id=env_id,
            inputs=RunInputs(scheduled_for=tick),
        ).run
        app.runs.mark_running(run.id, None)
        ids.append(run.id)
        if i % 3 == 0:
            with app.sessions() as s:
                scope = load_scope(s, run)
            FAMILIES["inventory_items"].execute(app.sessions, scope, provider, lambda _p: None)
    with app.engine.begin() as conn:
        conn.execute(
            update(OperationRun).values(last_progress_at=datetime.now(UTC) - timedelta(days=1))
        )
    print(
        f"seeded {args.runs} stale runs in {time.perf_counter() - started:.1f}s on "
        f"{app.url.get_backend_name()}"
    )
    reconciler = Reconciler(app.sessions, app.runs, NoDagster())
    ticks = []
    while True:
        t0 = time.perf_counter()
        results = reconciler.reconcile(limit=args.batch)
        if not results:
            break
        ticks.append((time.perf_counter() - t0, len(results)))
    durations = [d for d, _ in ticks]
    print(f"drained in {len(ticks)} ticks of up to {args.batch} runs")
    print(f"tick seconds: median {statistics.median(durations):.3f}, max {max(durations):.3f}")
    print(f"per run: {1000 * sum(durations) / sum(n for _, n in ticks):.2f} ms")
    app.dispose()


if __name__ == "__main__":
    main()
