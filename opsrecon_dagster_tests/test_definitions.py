"""A snapshot of the Dagster graph: an accidental change to assets, checks, jobs, schedules or
sensors fails here. Update ``definitions_snapshot.json`` deliberately when the graph changes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from opsrecon_dagster.definitions import defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def describe() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": getattr(node.partitions_def, "name", None),
            "deps": sorted(d.to_user_string() for d in node.parent_keys),
            "has_description": bool(node.description),
        }
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys)
    return {
        "assets": assets,
        "checks": checks,
        "jobs": {
            j.name: dict(sorted(j.tags.items()))
            for j in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name)
            if not j.name.startswith("__")
        },
        "schedules": sorted(
            f"{s.name} {getattr(s, 'cron_schedule', '')}" for s in defs.schedules or []
        ),
        "sensors": sorted(s.name for s in defs.sensors or []),
        "resources": sorted(defs.resources or {}),
    }


def test_definitions_match_snapshot() -> None:
    current = json.loads(json.dumps(describe()))
    if os.environ.get("OPSRECON_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert SNAPSHOT.exists(), "run with OPSRECON_UPDATE_SNAPSHOT=1 to create the snapshot"
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_asset_and_sensor_is_documented() -> None:
    assert all(a["has_description"] for a in describe()["assets"].values())
    assert all(s.description for s in [*(defs.sensors or []), *(defs.schedules or [])])
