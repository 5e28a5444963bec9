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


def flow(loaded: Loaded, rows: list[Row], backends: Sequence[Backend]) -> dict[str, Any]:
    """PLAN.md's flow chart: a node per job (its size and time limit) and per sync that
    feeds a job or takes its output, an edge per ``after`` and per such sync."""
    ids = {row["name"]: f"j{i}" for i, row in enumerate(rows)}
    jobs = [{"id": ids[r["name"]], "name": r["name"], "size": _size(r), "time": r["time"],
             "points": r["points"]} for r in rows]
    edges: list[dict[str, Any]] = [{"from": ids[a], "to": ids[name], "label": ""}
             for name, job in loaded.project.jobs.items() if name in ids
             for a in job.after if a in ids]
    links = [f for b in backends for f in b.flows(loaded) if f[1] in ids]
    syncs = {s: f"s{i}" for i, s in enumerate(dict.fromkeys(f[0] for f in links))}
    for sync, job, how in links:
        label = "stage-in" if how == "in" else "stage-out" + how[len("out"):]
        pair = (syncs[sync], ids[job]) if how == "in" else (ids[job], syncs[sync])
        edges.append({"from": pair[0], "to": pair[1], "label": label, "data": True})
    return {"jobs": jobs, "syncs": [{"id": i, "name": s} for s, i in syncs.items()],
            "edges": [{"data": False, **e} for e in edges]}


def _size(row: Row) -> str:
    """Nodes and GPUs of a row, in words: '2 nodes, 8 GPUs', '1 node, 0.5 of a GPU'.

    >>> _size({"nodes": 1, "gpus": "1"}), _size({"nodes": 2, "gpus": "–"})
    ('1 node, 1 GPU', '2 nodes')
    """
    nodes = f"{row['nodes']} node{'' if str(row['nodes']) == '1' else 's'}"
    gpus = str(row["gpus"])
    if gpus in ("–", "", "None", "0"):
        return nodes
    if gpus.isdigit():
        gpus = f"{gpus} GPU{'' if gpus == '1' else 's'}"
    return f"{nodes}, {gpus}"


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
        "flow": flow(loaded, rows, backends),
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
