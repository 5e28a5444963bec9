"""PLAN.md's rows of Slurm jobs, with their estimated costs."""

from __future__ import annotations

from ...project.checker import Loaded
from ..base import Row, money
from . import checks
from .model import Resources, Rung, SlurmJob
from .plan import slurm_cluster, slurm_minutes


def attempts(res: Resources, job: SlurmJob, retries: int) -> list[tuple[float | None, int]]:
    """(minutes, GPUs) of every submission a point may get: the first at the job's own
    resources, then one per retry at its escalation rung (the last rung once past the end).

    >>> res = Resources(nodes=2, gpus_per_node=1, time="1:00:00")
    >>> job = SlurmJob(escalate=[Rung(time="2:00:00"), Rung(gpus=8)])
    >>> attempts(res, job, 3)
    [(60.0, 2), (120.0, 2), (60.0, 8), (60.0, 8)]
    """
    nodes = res.nodes or 1
    out = []
    for i in range(retries + 1):
        rung = job.escalate[min(i, len(job.escalate)) - 1] if i and job.escalate else Rung()
        minutes = slurm_minutes(rung.time if rung.time is not None else res.time)
        if rung.gpus is not None:
            gpus = rung.gpus
        elif rung.gpus_per_node is not None:
            gpus = rung.gpus_per_node * nodes
        else:
            gpus = res.gpus if res.gpus is not None else (res.gpus_per_node or 0) * nodes
        out.append((minutes, gpus))
    return out


def row(loaded: Loaded, cluster: str, name: str) -> Row:
    """A job's PLAN.md row, with its estimated cost: every point at its full time limit,
    retried as often as ``retries`` allows, each retry at its escalation rung."""
    job = loaded.project.jobs[name]
    cl = slurm_cluster(loaded, cluster)
    opts = checks.options(job)
    res = checks.effective_resources(cl, opts)
    nodes = res.nodes or 1
    gpus = res.gpus if res.gpus is not None else (res.gpus_per_node or 0) * nodes
    tries = attempts(res, opts, job.retries)
    points = loaded.points[name].size
    cost, estimate = "–", None
    if cl.rates and all(minutes is not None for minutes, _ in tries):
        value = sum((minutes or 0) / 60 * points * (nodes * cl.rates.node_hour
                                                     + g * cl.rates.gpu_hour)
                    for minutes, g in tries)
        estimate = [cl.rates.unit, value]
        cost = f"{money(value)} {cl.rates.unit}"
        if job.retries:
            cost += f" ({len(tries)} attempts)"
    elif cl.rates:
        cost = "unbounded (no time limit)"
    return {"name": name, "cluster": cluster, "nodes": nodes, "gpus": gpus or "–",
            "time": res.time or "default", "points": points,
            "throttle": job.sweep.throttle if job.sweep else None,
            "after": ", ".join(job.after) or "–", "cost": cost,
            "launcher": opts.launcher,
            "description": job.description or "", "estimate": estimate}

