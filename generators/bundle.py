"""Bundle-level files: PLAN.md, secrets.env.example and MANIFEST.sha256."""

from __future__ import annotations

from typing import Any

from . import model as m
from .base import Artifact, Context
from .render import render
from .semantics import effective_resources
from .shell import Safe
from .slurm import slurm_minutes, submission_order
from .validate import Loaded

DESCRIPTIONS = {
    "sync/": "a data transfer; `status` says done, partial or absent",
    ".points.tsv": "one row per point: its NGC job name and launch arguments",
    "launch_all.sh": "launches every point with ngc batch run; records ledger.tsv",
    "monitor.sh": "records final states and relaunches failed points up the ladder",
    "status.sh": "every point's state and attempt",
    "exec.sh": "a shell in the running interactive job",
    "/configs/": "the config file of one point",
    "rehost.sh": "pulls the image and pushes it under each tag ($DOCKER: docker or podman)",
    ".sbatch": "Slurm batch script",
    ".params.tsv": "sweep points, one shell-quoted row per array task",
    "ctl.sh": "status, logs, cancel, resubmit and a retrying monitor, from ledger.tsv",
    "submit_all.sh": "submits the cluster's jobs in dependency order; records ledger.tsv",
}


def _money(value: float) -> str:
    """A cost with at most two decimals.

    >>> [_money(v) for v in (120.0, 0.5, 1 / 3)]
    ['120', '0.5', '0.33']
    """
    return f"{value:.2f}".rstrip("0").rstrip(".")


def job_rows(loaded: Loaded) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One row per job for PLAN.md, and the estimated total per cost unit."""
    rows: list[dict[str, Any]] = []
    totals: dict[str, float] = {}
    for cname, cluster in loaded.project.clusters.items():
        names = [n for n, j in loaded.project.jobs.items() if j.cluster == cname]
        if isinstance(cluster, m.NgcCluster):
            rows += [_ngc_row(loaded, cname, cluster, n) for n in names]
            continue
        for name in submission_order(loaded, names):
            job = loaded.project.jobs[name]
            res = effective_resources(loaded, job)
            nodes = res.nodes or 1
            gpus = res.gpus if res.gpus is not None else (res.gpus_per_node or 0) * nodes
            minutes = slurm_minutes(res.time)
            points = loaded.points[name].size
            cost = "–"
            if cluster.rates and minutes is not None:
                hours = minutes / 60 * points
                value = hours * (nodes * cluster.rates.node_hour + gpus * cluster.rates.gpu_hour)
                totals[cluster.rates.unit] = totals.get(cluster.rates.unit, 0.0) + value
                cost = f"{_money(value)} {cluster.rates.unit}"
            elif cluster.rates:
                cost = "unbounded (no time limit)"
            rows.append({"name": name, "cluster": cname, "nodes": nodes, "gpus": gpus or "–",
                         "time": res.time or "default", "points": points,
                         "throttle": job.sweep.throttle if job.sweep else None,
                         "after": ", ".join(job.after) or "–", "cost": cost,
                         "launcher": job.launcher, "description": job.description or ""})
    return rows, totals


def _ngc_row(loaded: Loaded, cname: str, cluster: m.NgcCluster, name: str) -> dict[str, Any]:
    from .ngc import instances

    job = loaded.project.jobs[name]
    ladder = instances(loaded, job)
    gpus = ladder[0].split(".")[2] if ladder[0].count(".") >= 3 else "–"
    return {"name": name, "cluster": cname, "nodes": 1, "gpus": gpus,
            "launcher": "ngc " + " → ".join(ladder) + (" (interactive)" if job.interactive
                                                       else ""),
            "time": job.total_runtime or cluster.total_runtime or "ACE default",
            "points": loaded.points[name].size, "throttle": None, "after": "–", "cost": "–",
            "description": job.description or ""}


def describe(path: str) -> str:
    if path.endswith("/runtime.sh"):
        return "functions the scripts of its folder source (not run by itself)"
    if path.startswith("ngc/") and path.endswith("/ctl.sh"):
        return "status, logs, cancel and resubmit by job name or id suffix, from ledger.tsv"
    if path.startswith("ngc/") and "/configs/" in path:
        return DESCRIPTIONS["/configs/"]
    for key, text in DESCRIPTIONS.items():
        if path.endswith(key) or path.startswith(key):
            return text
    return {"PLAN.md": "this plan", "MANIFEST.sha256": "sha256 of every file in the bundle",
            "secrets.env.example": "names of the secrets the scripts read at run time"}.get(
                path.rsplit("/", 1)[-1], "")


def used_by(proj: m.Project, sync: str) -> list[str]:
    """How jobs run a sync: 'stage-in of JOB' or 'stage-out of JOB (every I)'."""
    out = []
    for name, job in proj.jobs.items():
        out += [f"stage-in of {name}" for i in job.stage_in if i.sync == sync]
        for o in job.stage_out:
            if o.sync == sync:
                every = o.every or proj.syncs[sync].every
                out.append(f"stage-out of {name}" + (f" (every {every})" if every else ""))
    return out


def plan(loaded: Loaded, ctx: Context, files: list[str]) -> Artifact:
    rows, totals = job_rows(loaded)
    listing = sorted({*files, "PLAN.md", "MANIFEST.sha256", "secrets.env.example"})
    from .sync import shown, tool

    proj = loaded.project
    static = {"project": proj.project, **({"user": proj.user} if proj.user else {})}
    syncs = [{"name": n, "mode": s.mode, "every": s.every, "tool": tool(s, proj.storage),
              "from": shown(s, proj.storage, static)[0], "to": shown(s, proj.storage, static)[1],
              "used_by": used_by(proj, n)}
             for n, s in proj.syncs.items()]
    context = {"header": ctx.header(), "project": loaded.project, "rows": rows, "syncs": syncs,
               "totals": [f"{_money(v)} {u}" for u, v in sorted(totals.items())],
               "files": [(f, Safe(describe(f))) for f in listing],  # our own texts
               "clusters": sorted((n, c.kind) for n, c in loaded.project.clusters.items())}
    return Artifact("PLAN.md", render(ctx.env, "bundle/PLAN.md.j2", context))


def secrets_example(loaded: Loaded, ctx: Context) -> Artifact:
    context = {"header": ctx.header(), "secrets": loaded.project.secrets}
    return Artifact("secrets.env.example",
                    render(ctx.env, "bundle/secrets.env.example.j2", context))


def manifest(header: list[str], digests: dict[str, str]) -> str:
    """``sha256sum``-format lines for every file, sorted; ``sha256sum -c`` checks them.

    >>> print(manifest(["h"], {"b": "2" * 64, "a": "1" * 64}), end="")
    # h
    1111111111111111111111111111111111111111111111111111111111111111  a
    2222222222222222222222222222222222222222222222222222222222222222  b
    """
    lines = ["# " + " ".join(header)]
    lines += [f"{digests[p]}  {p}" for p in sorted(digests) if p != "MANIFEST.sha256"]
    return "\n".join(lines) + "\n"
