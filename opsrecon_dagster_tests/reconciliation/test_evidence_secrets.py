"""A secret in a provider error never reaches any stored field, metadata or log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from sqlalchemy import select

from opsrecon_dagster.assets.artifacts import inventory_items
from opsrecon_dagster.db.models import Base, OperationRun
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.providers.http import HttpTenantProvider
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster_tests.reconciliation.conftest import World

SECRET = "sk-live-9f8e7d6c5b4a-SECRET"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.TOKEN-VALUE.sig"


class _Leaky(BaseHTTPRequestHandler):
    """Every answer is an error whose body echoes a secret and the caller's token."""

    def do_GET(self) -> None:
        status = 403 if "compliancePolicies" in self.path else 401
        body = json.dumps({"error": {"message": f"denied {SECRET} for {TOKEN}"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def leaky_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Leaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def everything_stored(world: World) -> str:
    """Every column of every application table, as text."""
    parts = []
    with world.app.sessions() as s:
        for table in Base.metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in s.execute(select(table))]
    return "\n".join(parts)


def test_secret_in_provider_error_is_never_stored(world: World, leaky_url: str) -> None:
    scope = world.scope("full")
    world.instance.add_dynamic_partitions("managed_environments", [scope.partition_key])
    # 1. The job path: a real materialization against the leaky provider.
    result = dg.materialize(
        [inventory_items],
        partition_key=scope.partition_key,
        instance=world.instance,
        resources={
            "app_db": AppDatabaseResource(database_url=world.app.url.render_as_string(False)),
            "provider": ProviderResource(kind="http", base_url=leaky_url, token=TOKEN),
        },
        raise_on_error=False,
    )
    # Every type refused for lack of permission: a blocked run, which fails its step.
    assert not result.success
    with world.app.sessions() as s:
        [job_run] = s.scalars(select(OperationRun)).all()  # the row the job created for itself
    assert (job_run.dagster_run_id, job_run.outcome) == (result.run_id, "blocked")
    # 2. The reconciler path: a worker that wrote its coverage and died (in another
    # environment: the job's 401 made this one consent_missing, which blocks before any call).
    world.provider = HttpTenantProvider(base_url=leaky_url, token=TOKEN, max_retries=0)  # type: ignore[assignment]
    other = world.scope("other")
    died = world.start(OperationType.INVENTORY_SYNC, other, policy_types=["compliancePolicies"])
    world.running(died)
    world.work_then_die("inventory_items", died)
    world.reconcile(run_ids=[died])
    assert world.decided(died) == ("blocked", "inventory_access_missing")

    stored = everything_stored(world)
    assert "provider_permission_missing" in stored  # the reason is kept ...
    assert SECRET not in stored  # ... the text is not
    assert TOKEN not in stored
    events = json.dumps(
        [str(e.dagster_event) + str(e.user_message) for e in world.instance.all_logs(result.run_id)]
    )
    assert SECRET not in events
    assert TOKEN not in events
