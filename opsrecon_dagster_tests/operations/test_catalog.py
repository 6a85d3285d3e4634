"""The operation catalog is data: every type, its family, thresholds and overrides."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsrecon_dagster.operations.catalog import (
    CatalogConfigError,
    OperationCatalog,
    OperationType,
    UnknownOperationType,
)


def test_supported_types_and_their_families() -> None:
    catalog = OperationCatalog()
    families = {e.type.value: e.asset_family for e in catalog.entries()}
    assert families == {
        "inventory.sync": "inventory_items",
        "baseline.capture": "baseline_snapshots",
        "backup.schedule.execute": "backup_sets",
        "environment.review.compose": "environment_reviews",
        "backup.retention.prune": None,
        "policy.sync": None,
        "backup_set.update": None,
        "restore.execute": None,
        "report.generate": None,
    }
    assert not catalog.get("restore.execute").supported
    # Retention has no job or asset of its own, but a proof rule.
    assert not catalog.get("backup.retention.prune").supported
    assert catalog.get("backup.retention.prune").proven_by == "backup_retention"
    assert catalog.get("restore.execute").proven_by is None


def test_thresholds_are_overridable_from_json() -> None:
    catalog = OperationCatalog.from_json('{"inventory.sync": {"running_seconds": 90}}')
    entry = catalog.get(OperationType.INVENTORY_SYNC)
    assert entry.running_stale_after == timedelta(seconds=90)
    assert entry.queued_stale_after == OperationCatalog().get("inventory.sync").queued_stale_after


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"inventory.sync": {"running_seconds": -5}}', "greater than 0"),
        ('{"inventory.sync": {"runing_seconds": 5}}', "Extra inputs"),
        ('{"nope.type": {"running_seconds": 5}}', "unknown operation type"),
    ],
)
def test_bad_threshold_config_is_a_clear_error(raw: str, message: str) -> None:
    with pytest.raises(CatalogConfigError, match=message):
        OperationCatalog.from_json(raw)


def test_unknown_type_lists_valid_names() -> None:
    with pytest.raises(UnknownOperationType, match=r"valid: inventory\.sync"):
        OperationCatalog().get("inventory.synk")
