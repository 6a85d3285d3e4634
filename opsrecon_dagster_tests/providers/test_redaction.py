"""The provider boundary's one redaction step (``providers/redaction.py``): a provider's own
credentials, and anything shaped like a bearer token or a JWT, never get past a provider,
even when its remote side echoes them into the data it returns.

The end-to-end test runs the real jobs on both databases against a local Graph-style server
that puts the caller's ``Authorization`` header into names, descriptions, nested settings
and paging links; afterwards no row of any table, no Dagster event and no log line holds
the token, and each run's evidence counts what was redacted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.db.models import Base, InventoryItem
from opsrecon_dagster.launch import launch_operation_run
from opsrecon_dagster.operations.catalog import OperationType
from opsrecon_dagster.operations.context import RunContext, RunInputs
from opsrecon_dagster.providers.base import EnvironmentRef, TenantProvider, content_hash
from opsrecon_dagster.providers.fixture import FixtureTenantProvider, _payload
from opsrecon_dagster.providers.http import HttpTenantProvider
from opsrecon_dagster.providers.redaction import REDACTED, Redactor
from opsrecon_dagster_tests.conftest import Scope, add_profile, add_schedule
from opsrecon_dagster_tests.graph_server import GraphServer

TOKEN = "tok-ECHOED-secret-5a4b3c2d1e"
CLIENT_SECRET = "cs-Client~Secret.77"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
TYPES = ["deviceConfigurations", "compliancePolicies"]
PER_PAGE = 2
PAGES = 2
# Every object carries the caller's header in four strings: its displayName, description,
# a nested setting and an item of a nested list.
FIELDS_PER_OBJECT = 4
# One listing: every object of both pages, plus page one's nextLink.
FIELDS_PER_LISTING = PAGES * PER_PAGE * FIELDS_PER_OBJECT + (PAGES - 1)


# -- the redactor ----------------------------------------------------------------------------


def test_the_provider_secrets_are_replaced_in_every_form_a_string_may_carry_them() -> None:
    redactor = Redactor([TOKEN, CLIENT_SECRET, ""])
    for text, expected in [
        (f"invalid token Bearer {TOKEN}", f"invalid token {REDACTED}"),
        (f"token={TOKEN}&x=1", f"token={REDACTED}&x=1"),
        (f"?auth={quote(f'Bearer {TOKEN}', safe='')}", f"?auth={REDACTED}"),
        (f"secret {CLIENT_SECRET.upper()}!", f"secret {REDACTED}!"),
        (f"s={quote(CLIENT_SECRET, safe='')}", f"s={REDACTED}"),
        ("nothing to see", "nothing to see"),
    ]:
        assert redactor.redact_text(text) == expected


def test_anything_shaped_like_a_bearer_token_or_a_jwt_is_replaced_without_secrets() -> None:
    redactor = Redactor()
    assert redactor.redact_text("Authorization: Bearer abc.DEF-ghi_123=") == (
        f"Authorization: {REDACTED}"
    )
    assert redactor.redact_text("link?a=bearer%20abcdefgh12") == f"link?a={REDACTED}"
    assert redactor.redact_text(f"session {JWT} expired") == f"session {REDACTED} expired"
    assert redactor.redact_text(f"id_token={JWT}") == f"id_token={REDACTED}"
    # Prose keeps its words: "bearer" needs a token-length word after it.
    assert redactor.redact_text("the bearer of this card") == "the bearer of this card"
    assert redactor.redact_text("Device Configurations 01") == "Device Configurations 01"


def test_a_value_is_redacted_everywhere_and_the_fields_that_lost_content_are_counted() -> None:
    redactor = Redactor([TOKEN])
    answer = {
        "id": "p-1",
        "displayName": f"invalid token Bearer {TOKEN}",
        TOKEN: "a key is a field too",
        "settings": {"nested": {"note": TOKEN, "list": [TOKEN, "keep", 3, None]}, "on": True},
        "version": 7,
    }
    cleaned, fields = redactor.redact(answer)
    assert fields == 4
    assert TOKEN not in json.dumps(cleaned)
    assert cleaned["settings"] == {
        "nested": {"note": REDACTED, "list": [REDACTED, "keep", 3, None]},
        "on": True,
    }
    assert cleaned[REDACTED] == "a key is a field too"
    assert redactor.redacted_fields == 0  # redact() only looks; clean() counts
    assert redactor.clean(answer) == cleaned
    assert redactor.clean(["plain", 1]) == ["plain", 1]
    assert redactor.redacted_fields == 4
    assert TOKEN not in repr(redactor)


# -- both providers pass their values through it --------------------------------------------


def test_the_fixture_provider_redacts_its_payloads_before_hashing_them() -> None:
    env = EnvironmentRef("acme", "contoso", "acme.contoso")
    plain = FixtureTenantProvider()
    guarded = FixtureTenantProvider(secrets=["Configurations"])  # a configured secret
    assert isinstance(guarded, TenantProvider)
    listed = list(guarded.list_policies(env, "deviceConfigurations"))
    assert [o.display_name for o in listed][:2] == [
        f"Device {REDACTED} 01",
        f"Device {REDACTED} 02",
    ]
    raw = _payload(7, "acme.contoso", "deviceConfigurations", 0, name_index=0)
    redacted = {**raw, "displayName": f"Device {REDACTED} 01"}
    assert listed[0].content_hash == content_hash(redacted) != content_hash(raw)
    assert guarded.redacted_fields == len(listed)  # one field (the name) per object served
    fetched = guarded.fetch_policy(env, "deviceConfigurations", listed[0].external_id)
    assert fetched == listed[0]
    assert guarded.redacted_fields == len(listed) + 1
    # Without a secret nothing in the fixture tenants looks like a credential.
    names = [o.display_name for o in plain.list_policies(env, "deviceConfigurations")]
    assert names[:2] == ["Device Configurations 01", "Device Configurations 02"]
    assert plain.redacted_fields == 0


class EchoServer(GraphServer):
    """A Graph-style API on loopback that answers only for ``Bearer TOKEN`` and echoes the
    request's Authorization header into every object (displayName, description, a nested
    setting, a nested list) and into the paging link (URL-encoded, as a query carries it).

    Listings have ``PAGES`` pages of ``PER_PAGE`` objects per type; an object is fetched at
    ``<listing>/<id>``."""

    token = TOKEN

    def answer(self, raw_path: str, auth: str) -> Any:
        parts = urlsplit(raw_path)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        # tenants/<partition>/policies/<type>[/<id>]
        partition, policy_type = segments[1], segments[3]
        if len(segments) == 5:
            return self.policy(policy_type, int(segments[4].rsplit("-", 1)[1]), auth)
        page = int(parse_qs(parts.query).get("$skiptoken", ["1"])[0])
        first = (page - 1) * PER_PAGE + 1
        body: dict[str, Any] = {
            "value": [self.policy(policy_type, i, auth) for i in range(first, first + PER_PAGE)]
        }
        if page < PAGES:
            body["@odata.nextLink"] = (
                f"{self.url}/tenants/{partition}/policies/{policy_type}"
                f"?$skiptoken={page + 1}&caller={quote(auth, safe='')}"
            )
        return body

    @staticmethod
    def policy(policy_type: str, number: int, auth: str) -> dict[str, Any]:
        return {
            "id": f"{policy_type}-{number}",
            "displayName": f"Policy {number} (invalid token {auth})",
            "description": f"rejected caller: {auth}",
            "settings": {"nested": {"note": auth, "list": [auth, "kept"]}, "level": number},
        }


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


def test_the_http_provider_redacts_every_answer_before_reading_it(echo: EchoServer) -> None:
    env = EnvironmentRef("acme", "contoso", "acme.contoso")
    with HttpTenantProvider(echo.url, TOKEN, secrets=[CLIENT_SECRET]) as provider:
        assert isinstance(provider, TenantProvider)
        listed = list(provider.list_policies(env, TYPES[0]))
        assert [o.display_name for o in listed] == [
            f"Policy {n} (invalid token {REDACTED})" for n in range(1, PAGES * PER_PAGE + 1)
        ]
        assert provider.redacted_fields == FIELDS_PER_LISTING
        fetched = provider.fetch_policy(env, TYPES[0], listed[0].external_id)
        assert provider.redacted_fields == FIELDS_PER_LISTING + FIELDS_PER_OBJECT
    # Hashed as redacted: the same object hashes alike whoever asked for it.
    redacted = EchoServer.policy(TYPES[0], 1, REDACTED)
    assert fetched.content_hash == listed[0].content_hash == content_hash(redacted)
    # The paging link was followed with the token redacted out of it.
    assert len(echo.paths) == PAGES + 1
    assert TOKEN not in "".join(echo.paths)
    assert set(echo.auth) == {f"Bearer {TOKEN}"}  # it still went to the server, as a header


# -- end to end: a sync, a backup and a baseline capture on both databases -------------------


def _start(app: AppContext, scope: Scope, op_type: OperationType, inputs: RunInputs) -> int:
    return app.runs.start(
        op_type,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        inputs=inputs,
    ).run.id


def _evidence_counts(app: AppContext, run_id: int) -> dict[str, int]:
    decision = RunContext.load(app.runs.get(run_id).context).decision
    assert decision is not None
    return dict(decision.evidence.counts)


def test_an_echoed_token_reaches_no_table_event_or_log_line(
    app: AppContext,
    scope: Scope,
    echo: EchoServer,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The provider as deployed: from the environment, the token as an EnvVar.
    monkeypatch.setenv("OPSRECON_PROVIDER", "http")
    monkeypatch.setenv("OPSRECON_PROVIDER_URL", echo.url)
    monkeypatch.setenv("OPSRECON_PROVIDER_TOKEN", TOKEN)
    monkeypatch.setenv("OPSRECON_PROVIDER_TIMEOUT_SECONDS", "5")
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included

    sync = _start(app, scope, OperationType.INVENTORY_SYNC, RunInputs(policy_types=TYPES))
    schedule = add_schedule(app, scope, policy_types=TYPES)
    backup = _start(
        app,
        scope,
        OperationType.BACKUP_SCHEDULE_EXECUTE,
        RunInputs(backup_schedule_id=schedule, trigger="backup"),
    )
    # One subject matched by type (every object), one by its stored, redacted name.
    profile = add_profile(
        app,
        scope,
        [
            {"policy_type": TYPES[0]},
            {"policy_type": TYPES[1], "display_name": f"Policy 1 (invalid token {REDACTED})"},
        ],
    )
    baseline = _start(
        app, scope, OperationType.BASELINE_CAPTURE, RunInputs(baseline_profile_id=profile)
    )
    for run_id in (sync, backup, baseline):
        result = launch_operation_run(app, run_id, instance, log_level="DEBUG")
        assert result.success, run_id

    # The server did echo the header it was sent, every time.
    assert echo.auth and set(echo.auth) == {f"Bearer {TOKEN}"}

    # Every place the token could have landed, checked before anything else is asserted.
    leaks: list[str] = []
    # No row of any table (every model, so a table added later is covered too).
    with app.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if TOKEN in repr(conn.execute(select(table)).all()):
                leaks.append(f"table {table.name}")
    # No Dagster event, run record or job snapshot.
    dagster_runs = instance.get_runs()
    assert len(dagster_runs) == 3
    for dagster_run in dagster_runs:
        events = instance.all_logs(dagster_run.run_id)
        assert events
        stored = (
            serialize_value(dagster_run)
            + serialize_value(instance.get_job_snapshot(dagster_run.job_snapshot_id or ""))
            + "".join(serialize_value(event) for event in events)
            + repr(events)
        )
        if TOKEN in stored:
            leaks.append(f"Dagster run of {dagster_run.job_name}")
    # No log line: Python's records at DEBUG and whatever reached stdout and stderr.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "$skiptoken=2&caller=" in logged  # urllib3 logged the paging request it sent
    if TOKEN in logged:
        leaks.append("log records")
    out, err = capfd.readouterr()
    if TOKEN in out + err:
        leaks.append("stdout/stderr")
    assert leaks == []

    # The runs went as they would have without the echo, and each one's evidence counts the
    # fields its provider redacted.
    objects = PAGES * PER_PAGE
    with app.sessions() as session:
        stored_names = session.scalars(select(InventoryItem.display_name)).all()
    assert sorted(stored_names) == sorted(
        f"Policy {n} (invalid token {REDACTED})" for n in range(1, objects + 1) for _ in TYPES
    )
    expected = {
        sync: ("inventory_all_types_covered", len(TYPES) * FIELDS_PER_LISTING),
        backup: (
            "backup_all_items_captured",
            len(TYPES) * (FIELDS_PER_LISTING + objects * FIELDS_PER_OBJECT),
        ),
        baseline: ("baseline_snapshot_complete", (objects + 1) * FIELDS_PER_OBJECT),
    }
    for run_id, (reason, redacted) in expected.items():
        run = app.runs.get(run_id)
        assert (run.outcome, run.reason_code) == ("succeeded", reason)
        assert _evidence_counts(app, run_id)["redacted_fields"] == redacted
