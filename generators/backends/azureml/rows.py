"""PLAN.md's rows of Azure ML jobs, with their estimated costs."""

from __future__ import annotations

from ...project.checker import Loaded
from ..base import Row, money
from . import checks
from .plan import aml_cluster, data_path, distribution, image_ref


def row(loaded: Loaded, cluster: str, name: str) -> Row:
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

