"""PLAN.md's rows of NGC jobs."""

from __future__ import annotations

from ...project.checker import Loaded
from ..base import Row
from . import rules
from .plan import instances, ngc_cluster


def row(loaded: Loaded, cluster: str, name: str) -> Row:
    job = loaded.project.jobs[name]
    opts = rules.options(job)
    ladder = instances(loaded, job)
    gpus = ladder[0].split(".")[2] if ladder[0].count(".") >= 3 else "–"
    return {"name": name, "cluster": cluster, "nodes": 1, "gpus": gpus,
            "launcher": "ngc " + " → ".join(ladder) + (" (interactive)" if opts.interactive
                                                       else ""),
            "time": (opts.total_runtime or ngc_cluster(loaded, cluster).total_runtime
                     or "ACE default"),
            "points": loaded.points[name].size, "throttle": None, "after": "–", "cost": "–",
            "description": job.description or "", "estimate": None}

