"""The images backend: ``images/<name>/rehost.sh`` pulls an image and pushes it under each of
its tags."""

from __future__ import annotations

from ...plan import Group
from ...project.checker import Loaded
from ..base import Backend
from .plan import plan


class Images(Backend):
    name = "images"

    def plan(self, loaded: Loaded) -> list[Group]:
        return plan(loaded)

    def describe(self, path: str) -> str | None:
        if path.startswith("images/") and path.endswith("/rehost.sh"):
            return "pulls the image and pushes it under each tag ($DOCKER: docker or podman)"
        return None


BACKEND = Images()
