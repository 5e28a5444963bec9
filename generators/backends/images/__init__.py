"""The images backend: ``images/<name>/rehost.sh`` pulls an image and pushes it under each of
its tags; an image with a ``dockerfile`` gets its Dockerfile, ``build.sh`` and ``push.sh``
(and the ``run.sh`` helper it carries, when asked)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ...plan import Group
from ...project.checker import Loaded
from ..base import Backend
from .plan import plan, sent

FILES = {
    "rehost.sh": "pulls the image and pushes it under each tag ($DOCKER: docker or podman)",
    "Dockerfile": "how the image is built (hadolint-clean)",
    "Dockerfile.dockerignore": "what of the project folder the build sends: only what the "
                               "image copies",
    "build.sh": "builds the image from the project folder and prints its image ID ($DOCKER: "
                "docker or podman)",
    "push.sh": "pushes the built image to each tag and prints its digests",
    "run.sh": "the helper copied into the image as /run.sh: runs its arguments as commands "
              "in order, stops at the first failure",
}


def _packages(count: int, what: str, unpinned: int) -> str:
    """How many packages an image installs, and how many at no fixed version.

    >>> _packages(3, "apt", 1), _packages(2, "pip", 0), _packages(0, "pip", 0)
    ('3 apt (1 unpinned)', '2 pip', '')
    """
    if not count:
        return ""
    return f"{count} {what}" + (f" ({unpinned} unpinned)" if unpinned else "")


class Images(Backend):
    name = "images"

    def plan(self, loaded: Loaded) -> list[Group]:
        return plan(loaded)

    def describe(self, path: str) -> str | None:
        folder, _, file = path.rpartition("/")
        if folder.startswith("images/") and folder.count("/") == 1:
            return FILES.get(file)
        return None

    def summary(self, loaded: Loaded, backends: Sequence[Backend]) -> dict[str, Any]:
        """PLAN.md's table of images: how each is made and where it goes."""
        rows = []
        for name, image in loaded.project.images.items():
            spec = image.dockerfile
            if spec is not None:
                made = f"built FROM {spec.from_}"
                extra = [_packages(len(spec.apt), "apt", sum("=" not in p for p in spec.apt))]
                extra += [_packages(len(spec.pip), "pip", sum(not re.search(r"[=<>!~]", p)
                                                             for p in spec.pip))]
                extra = [e for e in extra if e]
                extra += ["requirements"] if spec.requirements else []
                extra += [f"copies {', '.join(sent(spec))}"] if spec.copy_ else []
                extra += [f"user {spec.user}"] if spec.user is not None else []
                extra += [f"for {spec.platform}"] if spec.platform is not None else []
                extra += [f"ports {', '.join(map(str, spec.ports))}"] if spec.ports else []
                extra += ["/run.sh helper"] if spec.run_helper else []
                how = f"{made} ({'; '.join(extra)})" if extra else made
            elif image.source is not None:
                how = f"rehosted from {image.source}"
            else:
                how = "tags only"
            rows.append({"name": name, "how": how, "tags": image.tags,
                         "built": spec is not None})
        return {"images": rows}


BACKEND = Images()
