"""The resources as deployed: settings from ``OPSRECON_*`` variables, wired as EnvVars when
definitions load; a real sync through the HTTP provider against a local Graph-style server,
with its token never stored."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from sqlalchemy import text

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.engine import default_database_url
from opsrecon_dagster.definitions import defs
from opsrecon_dagster.launch import in_process_job
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunInputs
from opsrecon_dagster.partitions import ENVIRONMENTS
from opsrecon_dagster.providers.fixture import FixtureTenantProvider
from opsrecon_dagster.providers.http import HttpTenantProvider
from opsrecon_dagster.reconciliation.dagster_view import run_tags
from opsrecon_dagster.resources import AppDatabaseResource, ProviderResource
from opsrecon_dagster.resources.configured import configured_resources
from opsrecon_dagster.settings import Settings
from opsrecon_dagster_tests.conftest import make_scope
from opsrecon_dagster_tests.graph_server import TOKEN, GraphServer


def test_unset_variables_leave_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPSRECON_DATABASE_URL", "OPSRECON_FIXTURE_PATH"):
        monkeypatch.delenv(name, raising=False)
    resources = configured_resources({"OPSRECON_STALE_THRESHOLDS": ""})
    assert resources["app_db"].settings().database_url == default_database_url()
    assert isinstance(resources["provider"].get_provider(), FixtureTenantProvider)


def test_a_variable_set_after_load_is_not_read_at_run_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Configuration is read once, when the definitions are built: a resource built with a
    variable unset keeps its default even if the variable is set later in the process."""
    for name in ("OPSRECON_DATABASE_URL", "OPSRECON_FIXTURE_PATH", "OPSRECON_LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    resources = configured_resources(os.environ)
    monkeypatch.setenv("OPSRECON_DATABASE_URL", f"sqlite:///{tmp_path / 'later.sqlite3'}")
    monkeypatch.setenv("OPSRECON_LANGUAGE", "de")
    monkeypatch.setenv("OPSRECON_FIXTURE_PATH", str(tmp_path / "missing.json"))
    settings = resources["app_db"].settings()
    assert (settings.database_url, settings.language) == (default_database_url(), "en")
    provider = resources["provider"].get_provider()  # the missing file is never opened
    assert provider.config == FixtureTenantProvider.default().config


def test_a_resource_of_settings_carries_them_whole() -> None:
    settings = Settings("sqlite:///x.sqlite3", stale_thresholds_json='{"x": 1}', language="de")
    assert AppDatabaseResource.of(settings).settings() == settings


def test_set_variables_are_wired_as_env_vars_not_values() -> None:
    environ = {"OPSRECON_PROVIDER": "http", "OPSRECON_PROVIDER_TOKEN": TOKEN}
    provider = configured_resources(environ)["provider"]
    # The resource holds the variable's name; Dagster reads its value where it runs.
    assert provider.token == dg.EnvVar("OPSRECON_PROVIDER_TOKEN")
    assert TOKEN not in repr(provider)
    hook = "https://hooks.example/services/T0/B0/secret"
    alerts = configured_resources({"OPSRECON_ALERT_WEBHOOK_URL": hook})["alerts"]
    assert alerts.url == dg.EnvVar("OPSRECON_ALERT_WEBHOOK_URL")
    assert hook not in repr(alerts)
    assert configured_resources({})["alerts"].webhook() is None  # alerts off by default


def test_an_in_process_job_keeps_the_database_password_out_of_dagster(
    instance: dg.DagsterInstance,
) -> None:
    """A process that runs a job itself binds its database settings as an object: nothing
    of the URL's password reaches the run's stored job snapshot or run config."""
    app = AppContext(Settings("postgresql://opsrecon:S3cretPw@127.0.0.1:1/opsrecon"))
    run = instance.create_run_for_job(in_process_job(app, "inventory_sync"))
    snapshot = instance.get_job_snapshot(run.job_snapshot_id or "")
    stored = serialize_value(snapshot) + serialize_value(run)
    assert "S3cretPw" not in stored
    assert "inventory_items" in stored  # the snapshot is the job's


def test_the_loaded_definitions_wire_the_environment_of_their_process() -> None:
    """``definitions.py`` as a code server loads it: the variables set in its environment
    are its resources' EnvVars, the rest the defaults."""
    probe = (
        "from opsrecon_dagster.definitions import defs; r = defs.resources; "
        "name = lambda v: getattr(v, 'env_var_name', repr(v)); "
        "print(*(name(v) for v in (r['provider'].kind, r['provider'].token, "
        "r['app_db'].database_url, r['provider'].fixture_path)))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRECON_")}
    env |= {"OPSRECON_PROVIDER": "http", "OPSRECON_PROVIDER_TOKEN": TOKEN}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [
        "OPSRECON_PROVIDER",  # an EnvVar is the variable's name, read where it runs
        "OPSRECON_PROVIDER_TOKEN",
        "None",
        "None",
    ]


def test_bad_provider_settings_fail_with_the_setting_never_its_value() -> None:
    with pytest.raises(dg.Failure, match="unknown provider kind 'ftp'"):
        ProviderResource(kind="ftp").get_provider()
    with pytest.raises(dg.Failure, match="needs OPSRECON_PROVIDER_URL"):
        ProviderResource(kind="http", token=TOKEN).get_provider()
    with pytest.raises(dg.Failure) as failure:
        ProviderResource(kind="http", base_url="ftp://x", token=TOKEN).get_provider()
    assert TOKEN not in str(failure.value)
    http = ProviderResource(
        kind="http", base_url="http://127.0.0.1:1", token=TOKEN, timeout_seconds=2
    )
    assert isinstance(http.get_provider(), HttpTenantProvider)


def test_a_sync_runs_on_the_http_provider_the_environment_configures(
    sqlite_app: AppContext,
    graph: GraphServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    for name, value in {
        "OPSRECON_DATABASE_URL": sqlite_app.url.render_as_string(False),
        "OPSRECON_PROVIDER": "http",
        "OPSRECON_PROVIDER_URL": graph.url,
        "OPSRECON_PROVIDER_TOKEN": TOKEN,
        "OPSRECON_PROVIDER_TIMEOUT_SECONDS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    resources = configured_resources(os.environ)  # what definitions.py wires on load
    scope = make_scope(sqlite_app, "acme", "contoso")
    run_id = sqlite_app.runs.start(
        OperationType.INVENTORY_SYNC,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=RunInputs(policy_types=["deviceConfigurations", "compliancePolicies"]),
    ).run.id
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ENVIRONMENTS.name or "", [scope.partition_key])
        result = defs.resolve_job_def("inventory_sync").execute_in_process(
            instance=instance,
            resources=resources,
            partition_key=scope.partition_key,
            tags=run_tags(run_id, scope.partition_key),
            raise_on_error=False,
        )
        assert result.success
        stored = instance.get_run_by_id(result.run_id)
        logs = instance.all_logs(result.run_id)
        dagster_text = repr(stored) + "".join(repr(entry) for entry in logs)
    run = sqlite_app.runs.get(run_id)
    assert (run.outcome, run.reason_code) == ("succeeded", "inventory_all_types_covered")
    assert graph.auth and set(graph.auth) == {f"Bearer {TOKEN}"}
    # The token reached the server and nothing else: not Dagster's run or event log, not
    # the application database.
    assert TOKEN not in dagster_text
    with sqlite_app.engine.connect() as conn:
        for table in ("operation_runs", "audit_log", "inventory_items", "inventory_coverage"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            assert TOKEN not in repr(rows)
