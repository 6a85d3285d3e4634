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
    proof = {t: a.family.adapter for t, a in resolved.items() if isinstance(a, ProofAdapter)}
    assert proof == {
        "inventory.sync": "inventory_sync",
        "baseline.capture": "baseline_capture",
        "backup.schedule.execute": "backup_schedule_execute",
        "environment.review.compose": "environment_review_compose",
        # No asset of its own, decided by its proof rule all the same.
        "backup.retention.prune": "backup_retention_prune",
    }
    generic = sorted(t for t, a in resolved.items() if isinstance(a, GenericStaleAdapter))
    assert generic == ["backup_set.update", "policy.sync", "report.generate", "restore.execute"]
    assert isinstance(registry.resolve("legacy.unknown"), GenericStaleAdapter)
