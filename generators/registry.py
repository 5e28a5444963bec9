"""The backends of this version, one line each: what a build loads a project with and plans.

A cluster kind is a folder under generators/backends/ and a line in BACKENDS; nothing else
names it. A backend that reads a top-level section of its own (a ``Section``) is given it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backends import bundle
from .backends.azureml import BACKEND as AZUREML
from .backends.base import Backend, ClusterBackend
from .backends.dev import BACKEND as DEV
from .backends.images import BACKEND as IMAGES
from .backends.ngc import BACKEND as NGC
from .backends.runai import BACKEND as RUNAI
from .backends.slurm import BACKEND as SLURM
from .backends.sync import BACKEND as SYNC
from .plan import Group
from .project import model as m
from .project.checker import Loaded
from .project.kind import Section
from .project.validate import Kinds, load_project

BACKENDS: tuple[Backend, ...] = (
    SLURM,
    NGC,
    RUNAI,
    AZUREML,
    SYNC,
    IMAGES,
    DEV,
)
# Cluster kinds known but not supported by this version, with their platform variables'
# prefixes (a project may already refer to those).
PLANNED: dict[str, tuple[str, ...]] = {}

KINDS = Kinds({b.name: b for b in BACKENDS if isinstance(b, ClusterBackend)}, PLANNED,
              {b.section: b for b in BACKENDS if isinstance(b, Section)})


def load(path: Path) -> Loaded:
    """Load and validate the project at ``path`` with every registered kind; raise
    ProjectError with every problem."""
    return load_project(path, KINDS)


def used(loaded: Loaded) -> list[Backend]:
    """The backends ``loaded`` uses, in registry order (the others plan nothing)."""
    return [b for b in BACKENDS if b.used(loaded)]


def plan(loaded: Loaded) -> list[Group]:
    """Every group of every backend the project uses, then the bundle group (PLAN.md,
    secrets.env.example), which lists the files of all the others."""
    backends = used(loaded)
    groups = [g for b in backends for g in b.plan(loaded)]
    files = sorted({f.path for g in groups for f in g.files})
    return [*groups, bundle.plan(loaded, files, backends)]


def text_kind(loc: tuple[str | int, ...]) -> str:
    """The kind of text the string at ``loc`` of a project file is, with every kind's own
    (see ``model.TEXT_KINDS``)."""
    return m.text_kind(loc, KINDS.checker(None, Path()).text_kinds)


def plan_rows(loaded: Loaded) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """PLAN.md's job rows (every backend's) and its estimated total per unit."""
    from .backends.bundle.plan import job_rows

    return job_rows(loaded, used(loaded))
