"""The sync backend: one script per transfer in sync/, with a verified done-marker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...plan import Group
from ...project.checker import Loaded
from ..base import Backend
from .plan import plan, rows


class Syncs(Backend):
    name = "sync"

    def plan(self, loaded: Loaded) -> list[Group]:
        return plan(loaded)

    def describe(self, path: str) -> str | None:
        if path.startswith("sync/"):
            return "a data transfer; `status` says done, partial or absent"
        return None

    def summary(self, loaded: Loaded, backends: Sequence[Backend]) -> dict[str, Any]:
        return {"syncs": [{**row, "used_by": [u for b in backends
                                              for u in b.sync_uses(loaded, row["name"])]}
                          for row in rows(loaded)]}


BACKEND = Syncs()
