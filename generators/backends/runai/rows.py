"""PLAN.md's rows of Run:ai jobs, and its table of their workloads."""

from __future__ import annotations

from ...project import model as m
from ...project.checker import Loaded
from ..base import Row
from . import rules
from .plan import image_ref, workload_names


def shown(names: list[str]) -> list[str]:
    """A job's workload names as PLAN.md lists them: all of a small sweep, else the first
    ones and the last."""
    return names if len(names) <= 8 else [*names[:3], f"... ({len(names) - 4} more)",
                                          names[-1]]


def _gpu(loaded: Loaded, cluster: str, name: str) -> str:
    job = loaded.project.jobs[name]
    cl = rules.runai_cluster(loaded, cluster)
    gpu = rules.options(job).gpu if rules.options(job).gpu is not None else cl.gpu
    if gpu is None or (isinstance(gpu, int) and gpu == 0):
        return "–"
    if isinstance(gpu, str):
        return f"{gpu} GPU memory"
    if isinstance(gpu, float):
        return f"{m._scalar_text(gpu)} of a GPU"
    return str(gpu)


def workload_row(loaded: Loaded, cluster: str, name: str, workload: str) -> list[str]:
    job = loaded.project.jobs[name]
    cl = rules.runai_cluster(loaded, cluster)
    sources = [f"nfs {n.server}:{n.path} at {n.mount}" + (" (read-only)" if n.read_only else "")
               for n in cl.nfs] + [f"pvc {p.claim} at {p.mount}" for p in cl.pvc]
    kind = rules.options(job).workload + (" (Jupyter)" if rules.options(job).jupyter else "")
    return [workload, kind, cl.project, _gpu(loaded, cluster, name), image_ref(loaded, job),
            ", ".join(sources) or "–"]


def row(loaded: Loaded, cluster: str, name: str) -> Row:
    job = loaded.project.jobs[name]
    opts = rules.options(job)
    launcher = f"runai {opts.workload}" + (" (Jupyter)" if opts.jupyter else "")
    if opts.workload == "training" and job.retries:
        launcher += f", {job.retries} resubmission{'s' if job.retries != 1 else ''}"
    return {"name": name, "cluster": cluster, "nodes": 1, "gpus": _gpu(loaded, cluster, name),
            "launcher": launcher, "time": "–", "points": loaded.points[name].size,
            "throttle": None, "after": "–", "cost": "–",
            "description": job.description or "", "estimate": None}



def workloads(loaded: Loaded, cluster: str, jobs: list[str]) -> list[list[str]]:
    """PLAN.md's rows of the workloads of ``jobs`` on ``cluster``."""
    return [workload_row(loaded, cluster, n, w) for n in jobs
            for w in shown(workload_names(loaded, n))]
