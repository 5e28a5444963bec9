"""The Slurm backend: sbatch scripts per job, submit_all.sh and ctl.sh per cluster."""

from __future__ import annotations

from typing import Any

from ...loader import Loc
from ...plan import Group
from ...project import model as m
from ...project.checker import Checker, Loaded
from ...project.kind import JobScope
from ..base import ClusterBackend, Row, money
from . import checks
from .model import Resources, Rung, SlurmCluster, SlurmJob
from .plan import plan, slurm_cluster, slurm_minutes, submission_order

DESCRIPTIONS = {
    ".sbatch": "Slurm batch script",
    ".params.tsv": "sweep points, one shell-quoted row per array task",
    "ctl.sh": "status, logs, cancel, resubmit and a retrying monitor, from ledger.tsv",
    "submit_all.sh": "submits the cluster's jobs in dependency order; records ledger.tsv",
}
ARRAYS = "is for Slurm arrays"


class Slurm(ClusterBackend):
    name = "slurm"
    title = "Slurm"
    cluster_model = SlurmCluster
    options_model = SlurmJob
    platform_prefixes = ("SLURM", "SLURMD")
    sweep_options = {"throttle": ARRAYS, "chunk": ARRAYS}
    sweep_refusal = "Slurm runs a sweep as job arrays"
    prose = frozenset({"login"})
    own_text = frozenset({"on_timeout"})
    text_kinds = ((("on_timeout", "run"), m.CODE),)

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        checks.check_cluster(ck, loc, cluster, known)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        checks.check_job(ck, loaded, scope)

    def job_code(self, job: m.Job) -> list[tuple[tuple[str, ...], str]]:
        timeout = checks.options(job).on_timeout
        return [(("on_timeout", "run"), timeout.run)] if timeout and timeout.run else []

    def plan(self, loaded: Loaded) -> list[Group]:
        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("slurm/"):
            return None
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        return [_row(loaded, cluster, n)
                for n in submission_order(loaded, self.jobs(loaded, cluster))]

    def how_to_run(self, cluster: str) -> str:
        return (f"Cluster `{cluster}`: copy this folder (`out/`) to a login node, then in "
                f"`slurm/{cluster}/` run\n`./submit_all.sh --dry-run` to see the sbatch "
                "commands and `./submit_all.sh` to submit.\nLogs go to `logs/` and every "
                "submission is recorded in `ledger.tsv` beside the scripts.")

    def flows(self, loaded: Loaded) -> list[tuple[str, str, str]]:
        out = []
        for name, job in loaded.project.jobs.items():
            if loaded.project.clusters[job.cluster].kind != self.name:
                continue
            opts = checks.options(job)
            out += [(i.sync, name, "in") for i in opts.stage_in]
            for o in opts.stage_out:
                every = o.every or loaded.project.syncs[o.sync].every
                out.append((o.sync, name, f"out every {every}" if every else "out"))
        return out

    def sync_uses(self, loaded: Loaded, sync: str) -> list[str]:
        out = []
        for name, job in loaded.project.jobs.items():
            if loaded.project.clusters[job.cluster].kind != self.name:
                continue
            opts = checks.options(job)
            out += [f"stage-in of {name}" for i in opts.stage_in if i.sync == sync]
            for o in opts.stage_out:
                if o.sync == sync:
                    every = o.every or loaded.project.syncs[sync].every
                    out.append(f"stage-out of {name}" + (f" (every {every})" if every else ""))
        return out


def _attempts(res: Resources, job: SlurmJob, retries: int) -> list[tuple[float | None, int]]:
    """(minutes, GPUs) of every submission a point may get: the first at the job's own
    resources, then one per retry at its escalation rung (the last rung once past the end).

    >>> res = Resources(nodes=2, gpus_per_node=1, time="1:00:00")
    >>> job = SlurmJob(escalate=[Rung(time="2:00:00"), Rung(gpus=8)])
    >>> _attempts(res, job, 3)
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


def _row(loaded: Loaded, cluster: str, name: str) -> Row:
    """A job's PLAN.md row, with its estimated cost: every point at its full time limit,
    retried as often as ``retries`` allows, each retry at its escalation rung."""
    job = loaded.project.jobs[name]
    cl = slurm_cluster(loaded, cluster)
    opts = checks.options(job)
    res = checks.effective_resources(cl, opts)
    nodes = res.nodes or 1
    gpus = res.gpus if res.gpus is not None else (res.gpus_per_node or 0) * nodes
    attempts = _attempts(res, opts, job.retries)
    points = loaded.points[name].size
    cost, estimate = "–", None
    if cl.rates and all(minutes is not None for minutes, _ in attempts):
        value = sum((minutes or 0) / 60 * points * (nodes * cl.rates.node_hour
                                                     + g * cl.rates.gpu_hour)
                    for minutes, g in attempts)
        estimate = [cl.rates.unit, value]
        cost = f"{money(value)} {cl.rates.unit}"
        if job.retries:
            cost += f" ({len(attempts)} attempts)"
    elif cl.rates:
        cost = "unbounded (no time limit)"
    return {"name": name, "cluster": cluster, "nodes": nodes, "gpus": gpus or "–",
            "time": res.time or "default", "points": points,
            "throttle": job.sweep.throttle if job.sweep else None,
            "after": ", ".join(job.after) or "–", "cost": cost,
            "launcher": opts.launcher,
            "description": job.description or "", "estimate": estimate}


BACKEND = Slurm()
