"""Bundle-level files: PLAN.md and secrets.env.example, from what every backend says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...plan import FileSpec, Group, file_header, plain_context
from ...project.checker import Loaded
from ...shell import Safe
from ..base import Backend, ClusterBackend, Row, money

OWN = {"PLAN.md": "this plan", "MANIFEST.sha256": "sha256 of every file in the bundle",
       "secrets.env.example": "names of the secrets the scripts read at run time"}
RUNTIME = "functions the scripts of its folder source (not run by itself)"


def describe(path: str, backends: Sequence[Backend]) -> str:
    """What a file of the bundle is, in the words of the backend that writes it."""
    if path.endswith("/runtime.sh"):
        return RUNTIME
    for backend in backends:
        if (text := backend.describe(path)) is not None:
            return text
    return OWN.get(path.rsplit("/", 1)[-1], "")


def _kinds(backends: Sequence[Backend]) -> dict[str, ClusterBackend]:
    return {b.name: b for b in backends if isinstance(b, ClusterBackend)}


def job_rows(loaded: Loaded, backends: Sequence[Backend]) -> tuple[list[Row], dict[str, float]]:
    """One row per job for PLAN.md, cluster by cluster, and the estimated total per unit."""
    kinds = _kinds(backends)
    rows = [row for name, cluster in loaded.project.clusters.items()
            for row in kinds[cluster.kind].rows(loaded, name)]
    totals: dict[str, float] = {}
    for row in rows:
        if row["estimate"] is not None:
            unit, value = row["estimate"]
            totals[unit] = totals.get(unit, 0.0) + value
    return rows, totals


def plan_context(loaded: Loaded, files: list[str],
                 backends: Sequence[Backend]) -> dict[str, Any]:
    """What PLAN.md.j2 reads."""
    rows, totals = job_rows(loaded, backends)
    listing = sorted({*files, *OWN})
    proj = loaded.project
    kinds = _kinds(backends)
    context: dict[str, Any] = {"syncs": [], "images": []}
    for backend in backends:
        context.update(backend.summary(loaded, backends))
    return plain_context({
        **context, "header": file_header(loaded.source.file), "rows": rows,
        "tables": [t for b in backends for t in b.tables(loaded, backends)],
        "project": {"project": proj.project, "description": proj.description,
                    "secrets": proj.secrets},
        "totals": [f"{money(v)} {u}" for u, v in sorted(totals.items())],
        "files": [(f, Safe(describe(f, backends))) for f in listing],  # our own texts
        "running": [Safe(kinds[c.kind].how_to_run(n))  # our own texts; names are NAMEs
                    for n, c in sorted(proj.clusters.items())]})


def plan(loaded: Loaded, files: list[str], backends: Sequence[Backend]) -> Group:
    """PLAN.md (listing ``files``, every other file of the bundle) and secrets.env.example."""
    secrets = {"header": file_header(loaded.source.file), "secrets": list(loaded.project.secrets)}
    return Group("bundle", (), (
        FileSpec("PLAN.md", "bundle/PLAN.md.j2", plan_context(loaded, files, backends)),
        FileSpec("secrets.env.example", "bundle/secrets.env.example.j2", secrets)))
