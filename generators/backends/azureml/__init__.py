"""The Azure ML backend: a command-job YAML per job or point, created with ``az ml job
create`` by submit_all.sh and followed by ctl.sh, from a ledger per cluster."""

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
    ".points.tsv": "one row per point: its name, the start of its Azure ML job names, its YAML",
    ".yml": "Azure ML command job (az ml job create -f)",
    "submit_all.sh": "creates every point's Azure ML job once; records ledger.tsv",
    "ctl.sh": "status, logs, cancel, resubmit and a resubmitting monitor, by any unique suffix",
}


class AzureMl(ClusterBackend):
    name = "azureml"
    title = "Azure ML"
    platform_prefixes = ("AZUREML",)
    refused_common = ("after",)
    sweep_refusal = "Azure ML creates one job per point"
    text_kinds = ((("tags", "*"), m.VALUE),)

    @property
    def cluster_model(self) -> type[m.Cluster]:
        from .model import AzuremlCluster

        return AzuremlCluster

    @property
    def options_model(self) -> type[m.Model]:
        from .model import AzuremlJob

        return AzuremlJob

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        from . import checks

        checks.check_cluster(ck, loc, cluster)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        from . import checks

        checks.check_job(ck, loaded, scope)

    def plan(self, loaded: Loaded) -> list[Group]:
        from .plan import plan

        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("azureml/"):
            return None
        if "/sweeps/" in path:
            return "Azure ML command job of one point (az ml job create -f)"
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        from .rows import row

        return [row(loaded, cluster, n) for n in self.jobs(loaded, cluster)]

    def how_to_run(self, cluster: str) -> str:
        return (f"Azure ML cluster `{cluster}`: in `azureml/{cluster}/` (the bundle stays "
                "inside the project folder,\nwhose code folders az uploads), run "
                "`./submit_all.sh --dry-run` to see the `az ml job create`\ncommands, "
                "`./submit_all.sh` to create the jobs, and `./ctl.sh status`, `logs`, "
                "`cancel`,\n`resubmit` or `monitor` (resubmits failed jobs up to their "
                "retries), each taking any\nunique suffix of a job's name. Submissions are "
                "recorded in `ledger.tsv` beside the scripts.")


BACKEND = AzureMl()
