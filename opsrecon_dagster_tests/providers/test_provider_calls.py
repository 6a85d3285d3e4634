"""The fixture provider counts its calls: in memory, and in a call log file that processes
share (what the zero-provider-call guards in ``reconciliation/test_guards.py`` rely on)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsrecon_dagster.providers.base import EnvironmentRef, ProviderError
from opsrecon_dagster.providers.fixture import (
    FixtureConfig,
    FixtureTenantProvider,
    ProviderCall,
    load_fixture_config,
    read_call_log,
)

ENV = EnvironmentRef("acme", "contoso", "acme.contoso")
DEVICE = "deviceConfigurations"
REPO_ROOT = Path(__file__).resolve().parents[2]


def provider(log: Path | None, **config: object) -> FixtureTenantProvider:
    return FixtureTenantProvider(
        FixtureConfig.model_validate({**config, "call_log": str(log) if log else None})
    )


def test_every_call_is_one_line_in_the_log_and_one_count_in_memory(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "calls.log"  # its folder is created
    p = provider(log)
    assert read_call_log(log) == []  # no file yet: no calls
    [first, *_] = list(p.list_policies(ENV, DEVICE))
    p.fetch_policy(ENV, DEVICE, first.external_id)
    p.fetch_policy(ENV, DEVICE, first.external_id)
    assert read_call_log(log) == [
        ProviderCall("list_policies", "acme.contoso"),
        ProviderCall("fetch_policy", "acme.contoso"),
        ProviderCall("fetch_policy", "acme.contoso"),
    ]
    assert p.calls == {
        ("acme.contoso", "list_policies"): 1,
        ("acme.contoso", "fetch_policy"): 2,
    }


def test_a_failing_call_is_still_a_call(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    p = provider(log, environments={"acme.contoso": {"faults": {"consent_missing": True}}})
    with pytest.raises(ProviderError):
        p.fetch_policy(ENV, DEVICE, "nope")
    with pytest.raises(ProviderError):
        list(p.list_policies(ENV, DEVICE))
    assert [c.method for c in read_call_log(log)] == ["fetch_policy", "list_policies"]


def test_without_a_log_calls_are_counted_in_memory_only(tmp_path: Path) -> None:
    p = provider(None)
    list(p.list_policies(ENV, DEVICE))
    assert p.calls[("acme.contoso", "list_policies")] == 1
    assert list(tmp_path.iterdir()) == []


def test_a_log_that_cannot_be_written_fails_the_call(tmp_path: Path) -> None:
    """A lost line would make a call look like none: the call fails instead."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p = provider(blocker / "calls.log")
    with pytest.raises(FileExistsError):  # its folder is a file
        list(p.list_policies(ENV, DEVICE))


def test_processes_sharing_a_fixture_file_append_to_one_log(tmp_path: Path) -> None:
    """The call log is read from the fixture file (``OPSRECON_FIXTURE_PATH`` in deployed
    processes), so another process's calls land in the same file as this one's."""
    log = tmp_path / "calls.log"
    fixture = tmp_path / "tenants.json"
    fixture.write_text(json.dumps({"call_log": str(log)}))
    assert load_fixture_config(fixture).call_log == str(log)
    with pytest.raises(ProviderError):  # an unknown id: still a call
        FixtureTenantProvider.from_file(fixture).fetch_policy(ENV, DEVICE, "nope")
    script = textwrap.dedent(
        f"""
        from opsrecon_dagster.providers.base import EnvironmentRef
        from opsrecon_dagster.providers.fixture import FixtureTenantProvider
        p = FixtureTenantProvider.from_file({str(fixture)!r})
        list(p.list_policies(EnvironmentRef("acme", "other", "acme.other"), "compliancePolicies"))
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True, timeout=120)
    assert read_call_log(log) == [
        ProviderCall("fetch_policy", "acme.contoso"),
        ProviderCall("list_policies", "acme.other"),
    ]
