"""The Slurm backend: sbatch scripts per job, submit_all.sh and ctl.sh per cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...project import model as m
from ..base import ClusterBackend, Row

if TYPE_CHECKING:
    from ...loader import Loc
    from ...plan import Group
    from ...project.checker import Checker, Loaded
    from ...project.kind import JobScope

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
    platform_prefixes = ("SLURM", "SLURMD")
    sweep_options = {"throttle": ARRAYS, "chunk": ARRAYS}
    sweep_refusal = "Slurm runs a sweep as job arrays"
    prose = frozenset({"login"})
    own_text = frozenset({"on_timeout"})
    text_kinds = ((("on_timeout", "run"), m.CODE),)

    @property
    def cluster_model(self) -> type[m.Cluster]:
        from .model import SlurmCluster

        return SlurmCluster

    @property
    def options_model(self) -> type[m.Model]:
        from .model import SlurmJob

        return SlurmJob

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        from . import checks

        checks.check_cluster(ck, loc, cluster, known)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        from . import checks

        checks.check_job(ck, loaded, scope)

    def job_code(self, job: m.Job) -> list[tuple[tuple[str, ...], str]]:
        from . import checks

        timeout = checks.options(job).on_timeout
        return [(("on_timeout", "run"), timeout.run)] if timeout and timeout.run else []

    def plan(self, loaded: Loaded) -> list[Group]:
        from .plan import plan

        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("slurm/"):
            return None
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        from .plan import submission_order
        from .rows import row

        return [row(loaded, cluster, n)
                for n in submission_order(loaded, self.jobs(loaded, cluster))]

    def how_to_run(self, cluster: str) -> str:
        return (f"Cluster `{cluster}`: copy this folder (`out/`) to a login node, then in "
                f"`slurm/{cluster}/` run\n`./submit_all.sh --dry-run` to see the sbatch "
                "commands and `./submit_all.sh` to submit.\nLogs go to `logs/` and every "
                "submission is recorded in `ledger.tsv` beside the scripts.")

    def flows(self, loaded: Loaded) -> list[tuple[str, str, str]]:
        from . import checks

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
        from . import checks

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


BACKEND = Slurm()
