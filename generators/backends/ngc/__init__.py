"""The NGC backend: one ``ngc batch run`` per sweep point, from launch tables per cluster."""

from __future__ import annotations

from typing import Any

from ...loader import Loc
from ...plan import Group
from ...project import model as m
from ...project.checker import Checker, Loaded
from ...project.kind import JobScope
from ..base import ClusterBackend, Row
from . import rules
from .model import NgcCluster, NgcJob
from .plan import instances, ngc_cluster, plan

DESCRIPTIONS = {
    ".points.tsv": "one row per point: its NGC job name and launch arguments",
    "launch_all.sh": "launches every point with ngc batch run; records ledger.tsv",
    "monitor.sh": "records final states and relaunches failed points up the ladder",
    "status.sh": "every point's state and attempt",
    "exec.sh": "a shell in the running interactive job",
    "ctl.sh": "status, logs, cancel and resubmit by job name or id suffix, from ledger.tsv",
}


class Ngc(ClusterBackend):
    name = "ngc"
    title = "NGC"
    cluster_model = NgcCluster
    options_model = NgcJob
    platform_prefixes = ("NGC",)
    refused_common = ("after",)
    sweep_refusal = "NGC launches one job per point"
    own_text = frozenset({"config"})
    text_kinds = ((("config", "set", "*"), m.VALUE),)

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        rules.cluster(ck, loc, cluster)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        rules.job(ck, loaded, scope)

    def job_params(self, name: str, job: m.Job, cluster: Any) -> dict[str, list[str]]:
        if rules.options(job).config is None:
            return {}
        return {"config_path": [f"{getattr(cluster, 'configs', None) or ''}/{name}/point.py"]}

    def plan(self, loaded: Loaded) -> list[Group]:
        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("ngc/"):
            return None
        if "/configs/" in path:
            return "the config file of one point"
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        return [_row(loaded, cluster, n) for n in self.jobs(loaded, cluster)]

    def how_to_run(self, cluster: str) -> str:
        return (f"NGC cluster `{cluster}`: copy this folder (`out/`) to the machine that runs "
                f"`ngc`, then in\n`ngc/{cluster}/` run `./launch_all.sh --dry-run` to see the "
                "`ngc batch run` commands,\n`./launch_all.sh` to launch, and `./monitor.sh` "
                "(in tmux or screen) to record final states\nand relaunch failed points; "
                "`./status.sh` shows every point. Launches are recorded in\n`ledger.tsv` "
                "beside the scripts.")


def _row(loaded: Loaded, cluster: str, name: str) -> Row:
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


BACKEND = Ngc()
