"""Mirroring what a statement wrote on an already-loaded ORM object, without marking it
changed (so no second ``UPDATE`` is flushed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm.attributes import instance_state


def set_loaded(obj: object, values: Mapping[str, Any]) -> None:
    """Make ``values`` the object's loaded (committed) column values, as
    ``sqlalchemy.orm.attributes.set_committed_value`` does for one: one state update for all
    of them. For column (scalar) attributes only, which is all this project mirrors."""
    state = instance_state(obj)
    state.dict.update(values)
    state._commit(state.dict, list(values))
