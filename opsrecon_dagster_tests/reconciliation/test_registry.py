"""Adapters resolve from the catalog; unsupported types explicitly get generic handling."""

from __future__ import annotations

from opsrecon_dagster.operations.catalog import OperationCatalog
from opsrecon_dagster.reconciliation.registry import (
    AdapterRegistry,
    GenericStaleAdapter,
    ProofAdapter,
)


def test_every_catalog_type_resolves_explicitly() -> None:
    catalog = OperationCatalog()
    registry = AdapterRegistry(catalog)
    resolved = {e.type.value: registry.resolve(e.type.value) for e in catalog.entries()}
    proof = {t: a.family.asset_key for t, a in resolved.items() if isinstance(a, ProofAdapter)}
    assert proof == {
        "inventory.sync": "inventory_items",
        "baseline.capture": "baseline_snapshots",
        "backup.schedule.execute": "backup_sets",
        "environment.review.compose": "environment_reviews",
    }
    generic = sorted(t for t, a in resolved.items() if isinstance(a, GenericStaleAdapter))
    assert generic == ["backup_set.update", "policy.sync", "report.generate", "restore.execute"]
    assert isinstance(registry.resolve("legacy.unknown"), GenericStaleAdapter)
