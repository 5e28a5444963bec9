"""What a backend provides: the files it plans, and what PLAN.md says of them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ..plan import Group
from ..project.checker import Loaded
from ..project.kind import Kind

# One job in PLAN.md: name, cluster, launcher, nodes, gpus, time, points, throttle, after,
# cost, description, and estimate ([unit, value] of its cost, or None).
Row = dict[str, Any]


def money(value: float) -> str:
    """A cost with at most two decimals.

    >>> [money(v) for v in (120.0, 0.5, 1 / 3)]
    ['120', '0.5', '0.33']
    """
    return f"{value:.2f}".rstrip("0").rstrip(".")


class Backend(ABC):
    """An artifact family (syncs, images, the bundle files) or a cluster kind."""

    name = ""
    # Cluster kinds whose commands this backend's scripts run (its folder may name them).
    builds_on: tuple[str, ...] = ()

    def used(self, loaded: Loaded) -> bool:
        """Whether ``loaded`` uses this backend. A build asks only the backends a project
        uses for files and PLAN.md entries, so that the others are never imported beyond
        their package's ``__init__`` (which therefore imports its own modules only in the
        methods that need them)."""
        return True

    @abstractmethod
    def plan(self, loaded: Loaded) -> list[Group]:
        """The groups of files this backend writes for ``loaded``."""

    def describe(self, path: str) -> str | None:
        """What a file this backend writes is, for PLAN.md (None: not one of its files)."""
        return None

    def summary(self, loaded: Loaded, backends: Sequence[Backend]) -> dict[str, Any]:
        """Values this backend adds to PLAN.md's context (e.g. its own table), given every
        backend of the build."""
        return {}

    def tables(self, loaded: Loaded, backends: Sequence[Backend]) -> list[dict[str, Any]]:
        """Tables this backend adds to PLAN.md, each {"title", "head": [cells], "rows":
        [[cells]]} of plain text (PLAN.md escapes every cell)."""
        return []

    def flows(self, loaded: Loaded) -> list[tuple[str, str, str]]:
        """Syncs that feed this backend's jobs or take their output, for PLAN.md's flow
        chart: (sync, job, how), where how is "in" (before the job) or "out" (from it),
        with an optional " every N" after it."""
        return []

    def sync_uses(self, loaded: Loaded, sync: str) -> list[str]:
        """How this backend's files run a sync (e.g. 'stage-in of train'), for PLAN.md."""
        return []


class ClusterBackend(Kind, Backend):
    """A cluster kind: its models and checks (``Kind``), its files, its PLAN.md rows."""

    @abstractmethod
    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        """PLAN.md rows of the jobs of ``cluster``, in the order they run."""

    @abstractmethod
    def how_to_run(self, cluster: str) -> str:
        """Markdown telling how to run the bundle's files for ``cluster``."""

    def used(self, loaded: Loaded) -> bool:
        return any(c.kind == self.name for c in loaded.project.clusters.values())

    def jobs(self, loaded: Loaded, cluster: str) -> list[str]:
        """Names of the jobs on ``cluster``, in project.yaml order."""
        return [n for n, j in loaded.project.jobs.items() if j.cluster == cluster]

    def clusters(self, loaded: Loaded) -> list[str]:
        """Names of the clusters of this kind."""
        return [n for n, c in loaded.project.clusters.items() if c.kind == self.name]
