"""The NGC backend: one ``ngc batch run`` per sweep point, from launch tables per cluster."""

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
    platform_prefixes = ("NGC",)
    refused_common = ("after",)
    sweep_refusal = "NGC launches one job per point"
    own_text = frozenset({"config"})
    text_kinds = ((("config", "set", "*"), m.VALUE),)

    @property
    def cluster_model(self) -> type[m.Cluster]:
        from .model import NgcCluster

        return NgcCluster

    @property
    def options_model(self) -> type[m.Model]:
        from .model import NgcJob

        return NgcJob

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        from . import rules

        rules.cluster(ck, loc, cluster)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        from . import rules

        rules.job(ck, loaded, scope)

    def job_params(self, name: str, job: m.Job, cluster: Any) -> dict[str, list[str]]:
        from . import rules

        if rules.options(job).config is None:
            return {}
        return {"config_path": [f"{getattr(cluster, 'configs', None) or ''}/{name}/point.py"]}

    def plan(self, loaded: Loaded) -> list[Group]:
        from .plan import plan

        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("ngc/"):
            return None
        if "/configs/" in path:
            return "the config file of one point"
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        from .rows import row

        return [row(loaded, cluster, n) for n in self.jobs(loaded, cluster)]

    def how_to_run(self, cluster: str) -> str:
        return (f"NGC cluster `{cluster}`: copy this folder (`out/`) to the machine that runs "
                f"`ngc`, then in\n`ngc/{cluster}/` run `./launch_all.sh --dry-run` to see the "
                "`ngc batch run` commands,\n`./launch_all.sh` to launch, and `./monitor.sh` "
                "(in tmux or screen) to record final states\nand relaunch failed points; "
                "`./status.sh` shows every point. Launches are recorded in\n`ledger.tsv` "
                "beside the scripts.")


BACKEND = Ngc()
