"""The Run:ai backend: one workload per sweep point, from tables per job, with submit_all.sh,
ctl.sh and delete_all.sh per cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...project import model as m
from ..base import Backend, ClusterBackend, Row

if TYPE_CHECKING:
    from ...loader import Loc
    from ...plan import Group
    from ...project.checker import Checker, Loaded
    from ...project.kind import JobScope

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
    platform_prefixes = ("RUNAI",)
    refused_common = ("after",)
    sweep_refusal = "Run:ai submits one workload per point"

    @property
    def cluster_model(self) -> type[m.Cluster]:
        from .model import RunaiCluster

        return RunaiCluster

    @property
    def options_model(self) -> type[m.Model]:
        from .model import RunaiJob

        return RunaiJob

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        from . import rules

        rules.cluster(ck, loc, cluster)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        from . import rules

        rules.job(ck, loaded, scope)

    def plan(self, loaded: Loaded) -> list[Group]:
        from .plan import plan

        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("runai/"):
            return None
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        from .rows import row

        return [row(loaded, cluster, n) for n in self.jobs(loaded, cluster)]

    def tables(self, loaded: Loaded, backends: Sequence[Backend]) -> list[dict[str, Any]]:
        from .rows import workloads

        rows = [w for c in self.clusters(loaded)
                for w in workloads(loaded, c, self.jobs(loaded, c))]
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


BACKEND = Runai()
