"""Materializations that name operation runs, read with Dagster's own query and only the
rows that can name a wanted run deserialized (``instance/claims.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest
from dagster._serdes import deserialize_value

from opsrecon_dagster.instance import claims

ASSET = "inventory_items"
WANTED = [1, 2, 3]


def _public_path(
    instance: dg.DagsterInstance, partitions: Sequence[str], since: datetime
) -> dict[int, list[str]]:
    """The same question through Dagster's public API: every record deserialized."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(ASSET),
            asset_partitions=list(partitions),
            after_timestamp=since.timestamp(),
        ),
        limit=claims.MAX_MATERIALIZATIONS,
    )
    found: dict[int, list[str]] = {}
    for record in result.records:
        mat = record.asset_materialization
        assert mat is not None
        value = getattr(mat.metadata.get("operation_run_id"), "value", None)
        if isinstance(value, int) and value in WANTED:
            outcome = getattr(mat.metadata.get("outcome"), "value", None)
            found.setdefault(value, []).append(outcome if isinstance(outcome, str) else "")
    return found


def _materialize(instance: dg.DagsterInstance, partition: str, **metadata: Any) -> None:
    description = metadata.pop("description", None)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=ASSET, partition=partition, description=description, metadata=metadata
        )
    )


def test_claims_read_as_dagsters_public_path_deserializing_only_possible_ones(
    storage_configs: Callable[[], dict[str, Any] | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    deserialized: list[str] = []

    def counting(text: str) -> Any:
        deserialized.append(text)
        return deserialize_value(text)

    monkeypatch.setattr(claims, "deserialize_value", counting)
    since = datetime.now(UTC) - timedelta(minutes=1)
    with dg.instance_for_test(overrides=storage_configs()) as instance:
        _materialize(instance, "p1", operation_run_id=1, outcome="succeeded")
        _materialize(instance, "p1", operation_run_id=1, outcome="failed")  # two claims
        _materialize(instance, "p2", operation_run_id=2)  # names the run, no outcome
        _materialize(instance, "p2", operation_run_id=99, outcome="succeeded")  # another run
        _materialize(instance, "p3", other=1)  # names no run
        # The label with a text value: not a claim either way, but read to be sure.
        _materialize(instance, "p3", operation_run_id=dg.MetadataValue.text("3"))
        # A description that spells a wanted entry out (escaped inside its string).
        _materialize(
            instance,
            "p3",
            operation_run_id=98,
            description='"entry_data": {"__class__": "IntMetadataEntryData", "value": 3}, '
            '"label": "operation_run_id"',
        )
        _materialize(instance, "p9", operation_run_id=3, outcome="succeeded")  # not asked
        partitions = ["p1", "p2", "p3"]
        ours = claims.naming_runs(instance, ASSET, partitions, WANTED, since)
        expected = _public_path(instance, partitions, since)
    assert ours == expected
    assert ours == {1: ["failed", "succeeded"], 2: [""]}
    # Deserialized: the two claims of run 1, run 2's, and the text-valued label (not
    # recognised as an integer entry: read to be sure); never run 99's, run 98's or the
    # row without the label.
    assert len(deserialized) == 4
    assert not any('"value": 99}' in t or '"value": 98}' in t for t in deserialized)


def test_a_wiped_asset_hides_older_claims_as_in_dagster(
    storage_configs: Callable[[], dict[str, Any] | None],
) -> None:
    """Dagster's wipe boundary applies (its own filter builds the query): the storage's wipe
    marks the time, and events from before it are no longer read (the instance's
    ``wipe_assets`` deletes them as well)."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    with dg.instance_for_test(overrides=storage_configs()) as instance:
        _materialize(instance, "p1", operation_run_id=1, outcome="succeeded")
        instance.event_log_storage.wipe_asset(dg.AssetKey(ASSET))
        _materialize(instance, "p1", operation_run_id=2, outcome="failed")
        ours: Mapping[int, Sequence[str]] = claims.naming_runs(
            instance, ASSET, ["p1"], WANTED, since
        )
        assert ours == _public_path(instance, ["p1"], since) == {2: ["failed"]}
