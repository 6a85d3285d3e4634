"""Which adapter decides a run: resolved from the operation catalog, never guessed.

Supported types get their family's proof adapter; unsupported (or unknown) types resolve
explicitly to generic stale handling, which can only ever decide ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsrecon_dagster.artifacts.families import PROOF_FAMILIES, Family
from opsrecon_dagster.operations.catalog import OperationCatalog, UnknownOperationType

GENERIC_ADAPTER = "generic_stale"


@dataclass(frozen=True)
class ProofAdapter:
    """Decides from the artifacts of the run's family (read-only)."""

    family: Family

    @property
    def name(self) -> str:
        return self.family.adapter


@dataclass(frozen=True)
class GenericStaleAdapter:
    """For types without proof: finalize as failed once stale, never success."""

    name: str = GENERIC_ADAPTER


Adapter = ProofAdapter | GenericStaleAdapter


class AdapterRegistry:
    """Resolves operation types to adapters through the catalog."""

    def __init__(self, catalog: OperationCatalog) -> None:
        self._catalog = catalog
        # A batch resolves each run's type several times; the answer never changes.
        self._resolved: dict[str, Adapter] = {}

    def resolve(self, op_type: str) -> Adapter:
        """The adapter for ``op_type``; unknown and unsupported types get generic handling."""
        adapter = self._resolved.get(op_type)
        if adapter is None:
            adapter = self._resolved[op_type] = self._lookup(op_type)
        return adapter

    def _lookup(self, op_type: str) -> Adapter:
        try:
            entry = self._catalog.get(op_type)
        except UnknownOperationType:
            return GenericStaleAdapter()
        if entry.proven_by is None:
            return GenericStaleAdapter()
        family = PROOF_FAMILIES.get(entry.proven_by)
        if family is None:  # a catalog/family mismatch is a programming error, fail loudly
            raise LookupError(f"no proof family {entry.proven_by!r}")
        return ProofAdapter(family)
