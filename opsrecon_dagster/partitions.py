"""One dynamic partition per managed environment, keyed ``<workspace>.<environment>``."""

from __future__ import annotations

import dagster as dg

ENVIRONMENTS = dg.DynamicPartitionsDefinition(name="managed_environments")
