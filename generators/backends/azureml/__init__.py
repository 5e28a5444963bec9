"""The Azure ML backend: a command-job YAML per job or point, created with ``az ml job
create`` by submit_all.sh and followed by ctl.sh, from a ledger per cluster."""

from __future__ import annotations

from typing import Any

from ...loader import Loc
from ...plan import Group
from ...project import model as m
from ...project.checker import Checker, Loaded
from ...project.kind import JobScope
from ..base import ClusterBackend, Row, money
from . import checks
from .model import AzuremlCluster, AzuremlJob
from .plan import aml_cluster, data_path, distribution, image_ref, plan

DESCRIPTIONS = {
    ".points.tsv": "one row per point: its name, the start of its Azure ML job names, its YAML",
    ".yml": "Azure ML command job (az ml job create -f)",
    "submit_all.sh": "creates every point's Azure ML job once; records ledger.tsv",
    "ctl.sh": "status, logs, cancel, resubmit and a resubmitting monitor, by any unique suffix",
}


class AzureMl(ClusterBackend):
    name = "azureml"
    title = "Azure ML"
    cluster_model = AzuremlCluster
    options_model = AzuremlJob
    platform_prefixes = ("AZUREML",)
    refused_common = ("after",)
    sweep_refusal = "Azure ML creates one job per point"
    text_kinds = ((("tags", "*"), m.VALUE),)

    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        checks.check_cluster(ck, loc, cluster)

    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        checks.check_job(ck, loaded, scope)

    def plan(self, loaded: Loaded) -> list[Group]:
        return [g for cname in self.clusters(loaded) for g in plan(loaded, cname)]

    def describe(self, path: str) -> str | None:
        if not path.startswith("azureml/"):
            return None
        if "/sweeps/" in path:
            return "Azure ML command job of one point (az ml job create -f)"
        return next((text for end, text in DESCRIPTIONS.items() if path.endswith(end)), "")

    def rows(self, loaded: Loaded, cluster: str) -> list[Row]:
        return [_row(loaded, cluster, n) for n in self.jobs(loaded, cluster)]

    def how_to_run(self, cluster: str) -> str:
        return (f"Azure ML cluster `{cluster}`: in `azureml/{cluster}/` (the bundle stays "
                "inside the project folder,\nwhose code folders az uploads), run "
                "`./submit_all.sh --dry-run` to see the `az ml job create`\ncommands, "
                "`./submit_all.sh` to create the jobs, and `./ctl.sh status`, `logs`, "
                "`cancel`,\n`resubmit` or `monitor` (resubmits failed jobs up to their "
                "retries), each taking any\nunique suffix of a job's name. Submissions are "
                "recorded in `ledger.tsv` beside the scripts.")


def _row(loaded: Loaded, cluster: str, name: str) -> Row:
    job = loaded.project.jobs[name]
    opts = checks.options(job)
    cl = aml_cluster(loaded, cluster)
    nodes, per_node = opts.resources.nodes, opts.resources.gpus_per_node
    dist = distribution(opts)
    launch = (f"{'torchrun' if dist['type'] == 'pytorch' else 'mpirun'}, "
              f"{dist['process_count_per_instance']} per node" if dist else "one per node")
    parts = [f"processes: {launch}", f"compute: {opts.compute or cl.compute}",
             f"image: {image_ref(loaded, job)}"]
    parts += [f"in {n}: {data_path(i.path, cl)} ({i.mode})" for n, i in opts.inputs.items()]
    parts += [f"out {n}: {data_path(o.path, cl) if o.path else 'default'} ({o.mode})"
              for n, o in opts.outputs.items()]
    hours = checks.timeout_seconds(opts.timeout) / 3600 if opts.timeout is not None else None
    points = loaded.points[name].size
    gpus = nodes * per_node if per_node else 0
    cost, estimate = "–", None
    if cl.rates and hours is not None:
        value = hours * points * (nodes * cl.rates.node_hour + gpus * cl.rates.gpu_hour)
        estimate = [cl.rates.unit, value]
        cost = f"{money(value)} {cl.rates.unit}"
    elif cl.rates:
        cost = "unbounded (no timeout)"
    return {"name": name, "cluster": cluster, "nodes": nodes,
            "gpus": f"{nodes} × {per_node}" if per_node else "–",
            "launcher": "azureml: " + "; ".join(parts),
            "time": ("none" if opts.timeout is None else f"{opts.timeout} s"
                     if isinstance(opts.timeout, int) else opts.timeout),
            "points": points, "throttle": None, "after": "–", "cost": cost,
            "description": job.description or "", "estimate": estimate}


BACKEND = AzureMl()
