"""The Run:ai backend: one workload per sweep point, from tables per job, with submit_all.sh,
ctl.sh and delete_all.sh per cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...loader import Loc
from ...plan import Group
from ...project import model as m
from ...project.checker import Checker, Loaded
from ...project.kind import JobScope
from ..base import Backend, ClusterBackend, Row
from . import rules
from .model import RunaiCluster, RunaiJob
from .plan import image_ref, plan, workload_names

DESCRIPTIONS = {
    ".points.tsv": "one row per point: its workload name and -e arguments",
    "submit_all.sh": "submits every point as a Run:ai workload; records ledger.tsv",
    "ctl.sh": "status, logs, describe, delete and resubmit by name suffix; monitor resubmits "
              "failed training workloads",
    "delete_all.sh": "deletes every workload of a run (after a confirmation)",
}


class Runai(ClusterBackend):
    name = "runai"
    title = "Run:ai"
    cluster_model = RunaiCluster
    options_model = RunaiJob
    platform_prefixes = ("RUNAI",)
    refused_common = ("after",)
    sweep_refusal = "Run:ai submits one workload per point"

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        rules.cluster(ck, loc, cluster)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        rules.job(ck, loaded, scope)

    def plan(self, loaded: Loaded) -> list[Group]:
        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("runai/"):
            return None
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        return [_row(loaded, cluster, n) for n in self.jobs(loaded, cluster)]

    def tables(self, loaded: Loaded, backends: Sequence[Backend]) -> list[dict[str, Any]]:
        rows = [_workload(loaded, c, n, w) for c in self.clusters(loaded)
                for n in self.jobs(loaded, c) for w in _shown(workload_names(loaded, n))]
        if not rows:
            return []
        return [{"title": "Run:ai workloads",
                 "head": ["workload", "type", "Run:ai project", "GPU", "image",
                          "data sources"],
                 "rows": rows}]

    def how_to_run(self, cluster: str) -> str:
        return (f"Run:ai cluster `{cluster}`: copy this folder (`out/`) to a machine where "
                f"`runai` is logged in, then in\n`runai/{cluster}/` run `./submit_all.sh "
                "--dry-run` to see the `runai ... submit` commands,\n`./submit_all.sh` to "
                "submit, `./ctl.sh monitor` (in tmux or screen) to resubmit failed training\n"
                "workloads, `./ctl.sh status` to see every workload and `./delete_all.sh` to "
                "delete them.\nSubmissions are recorded in `ledger.tsv` beside the scripts.")


def _shown(names: list[str]) -> list[str]:
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


def _workload(loaded: Loaded, cluster: str, name: str, workload: str) -> list[str]:
    job = loaded.project.jobs[name]
    cl = rules.runai_cluster(loaded, cluster)
    sources = [f"nfs {n.server}:{n.path} at {n.mount}" + (" (read-only)" if n.read_only else "")
               for n in cl.nfs] + [f"pvc {p.claim} at {p.mount}" for p in cl.pvc]
    kind = rules.options(job).workload + (" (Jupyter)" if rules.options(job).jupyter else "")
    return [workload, kind, cl.project, _gpu(loaded, cluster, name), image_ref(loaded, job),
            ", ".join(sources) or "–"]


def _row(loaded: Loaded, cluster: str, name: str) -> Row:
    job = loaded.project.jobs[name]
    opts = rules.options(job)
    launcher = f"runai {opts.workload}" + (" (Jupyter)" if opts.jupyter else "")
    if opts.workload == "training" and job.retries:
        launcher += f", {job.retries} resubmission{'s' if job.retries != 1 else ''}"
    return {"name": name, "cluster": cluster, "nodes": 1, "gpus": _gpu(loaded, cluster, name),
            "launcher": launcher, "time": "–", "points": loaded.points[name].size,
            "throttle": None, "after": "–", "cost": "–",
            "description": job.description or "", "estimate": None}


BACKEND = Runai()
