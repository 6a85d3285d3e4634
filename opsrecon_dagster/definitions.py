"""The Dagster entry point: ``opsrecon_dagster.definitions:defs``."""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions(assets=[])
