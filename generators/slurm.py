"""Slurm backend: one sbatch script per job (sweeps as one array), submit_all.sh per cluster."""

from __future__ import annotations

import hashlib
import heapq
from typing import Any

from . import model as m
from .base import Artifact, Context, Generator, Group, runtime_artifact
from .placeholders import command_code, used_names
from .render import render
from .semantics import effective_resources, merged_env, static_params
from .shell import Param, parse_text, shquote, shvalue, tsv_cell, var_refs, variable, word, word_ref
from .sync import seconds
from .validate import Loaded, Points


def slurm_minutes(time: str | int | None) -> float | None:
    """Minutes a Slurm time string stands for (None when unlimited or unset).

    >>> [slurm_minutes(t) for t in ("90", "1:30", "2:00:00", "1-12", "1-0:30", "0-0:0:30", 0)]
    [90.0, 2.0, 120.0, 2160.0, 1470.0, 1.0, None]
    """
    if time is None:
        return None
    text = str(time)
    if text.upper() in ("UNLIMITED", "INFINITE") or text == "0":
        return None
    days, _, rest = text.rpartition("-")
    nums = [int(x) for x in rest.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        h, mi, s = (nums + [0, 0])[:3]
    else:  # M, M:S, H:M:S
        h, mi, s = ([0] * (3 - len(nums)) + nums) if len(nums) == 3 else (0, *(nums + [0])[:2])
    secs = (int(days or 0) * 24 + h) * 3600 + mi * 60 + s
    return float(max(1, -(-secs // 60))) if secs else None  # Slurm rounds seconds up


def chunks(size: int, max_array: int) -> list[tuple[int, int]]:
    """(offset, count) pairs splitting ``size`` points into arrays Slurm accepts.

    >>> chunks(2500, 1001)
    [(0, 1001), (1001, 1001), (2002, 498)]
    """
    return [(off, min(max_array, size - off)) for off in range(0, size, max_array)]


def slurm_cluster(loaded: Loaded, name: str) -> m.SlurmCluster:
    cluster = loaded.project.clusters[name]
    assert isinstance(cluster, m.SlurmCluster), f"{name} is not a Slurm cluster"
    return cluster


def _has_params(text: str, columns: set[str]) -> bool:
    return any(isinstance(p, Param) and p.name in columns for p in parse_text(text)[0])


def directives(loaded: Loaded, name: str, job: m.Job, res: m.Resources) -> list[str]:
    """The ``#SBATCH`` options of a job, in a fixed order (values validated as safe)."""
    cluster = slurm_cluster(loaded, job.cluster)
    points = loaded.points[name]
    d = [f"--job-name={loaded.project.project}-{name}"]
    for key in ("account", "partition", "qos"):
        value = getattr(job, key) or getattr(cluster, key)
        if value and "${" not in value:
            d.append(f"--{key}={value}")
    gpu = f"{res.gpu_type}:" if res.gpu_type else ""
    pairs: list[tuple[str, Any]] = [
        ("nodes", res.nodes), ("ntasks-per-node", res.ntasks_per_node),
        ("gpus", res.gpus is not None and f"{gpu}{res.gpus}"),
        ("gpus-per-node", res.gpus_per_node is not None and f"{gpu}{res.gpus_per_node}"),
        ("cpus-per-task", res.cpus_per_task), ("mem", res.mem), ("time", res.time)]
    d += [f"--{k}={v}" for k, v in pairs if v is not None and v is not False]
    pattern = "%x_%A_%a" if loaded.project.jobs[name].sweep else "%x_%j"
    d += [f"--output=logs/{pattern}.out", f"--error=logs/{pattern}.err"]
    timeout = job.on_timeout
    if res.signal:
        d.append(f"--signal={res.signal}")
    elif timeout or job.stage_out:
        d.append(f"--signal=B:USR1@{signal_before(job)}")
    requeue = res.requeue if res.requeue is not None else (timeout and timeout.requeue) or None
    if requeue is not None:
        d.append("--requeue" if requeue else "--no-requeue")
    if job.sweep:
        first = chunks(points.size, cluster.max_array_size)[0][1]
        throttle = f"%{job.sweep.throttle}" if job.sweep.throttle else ""
        d.append(f"--array=0-{first - 1}{throttle}")
    extra = {**cluster.sbatch, **job.sbatch}
    # true: a flag such as --exclusive; false: left out.
    d += [f"--{k}" if v is True else f"--{k}={m._scalar_text(v)}"
          for k, v in sorted(extra.items()) if v is not False]
    return d


def signal_before(job: m.Job) -> int:
    """Seconds before the time limit at which Slurm signals the job (on_timeout.before)."""
    return (job.on_timeout or m.OnTimeout()).before


def stage_out(loaded: Loaded, job: m.Job) -> list[tuple[str, int]]:
    """(sync, interval in seconds or 0 for only at the end) of each stage_out entry."""
    out = []
    for item in job.stage_out:
        every = item.every or loaded.project.syncs[item.sync].every
        out.append((item.sync, seconds(every) if every else 0))
    return out


def _hook(job: m.Job) -> str | None:
    """Shell code of the job's on_timeout hook (placeholders as variable references)."""
    if job.on_timeout is None or job.on_timeout.run is None:
        return None
    return command_code(job.on_timeout.run)


def rung_options(rung: m.Rung) -> list[str]:
    """sbatch options of one escalation rung (they override the script's directives).

    >>> rung_options(m.Rung(time="2:00:00", mem="64G", partition="long"))
    ['--partition=long', '--mem=64G', '--time=2:00:00']
    """
    pairs: list[tuple[str, Any]] = [
        ("partition", rung.partition), ("qos", rung.qos), ("gpus", rung.gpus),
        ("gpus-per-node", rung.gpus_per_node), ("cpus-per-task", rung.cpus_per_task),
        ("mem", rung.mem), ("time", rung.time)]
    return [shquote(f"--{k}={m._scalar_text(v)}") for k, v in pairs if v is not None]


def submit_options(loaded: Loaded, job: m.Job) -> list[str]:
    """Options passed on the sbatch command line: directives whose value is a secret."""
    cluster = loaded.project.clusters[job.cluster]
    out: list[str] = []
    for key in ("account", "partition", "qos"):
        value = getattr(job, key) or getattr(cluster, key)
        if value and "${" in value:
            out.append(word(parse_text(f"--{key}={value}")[0], {}))
    return out


class SlurmGenerator(Generator):
    name = "slurm"
    template_dirs = ("slurm", "_base", "_macros", "lib")

    def groups(self, loaded: Loaded, ctx: Context) -> list[Group]:
        out: list[Group] = []
        for cname, cluster in loaded.project.clusters.items():
            if not isinstance(cluster, m.SlurmCluster):
                continue
            names = [n for n, j in loaded.project.jobs.items() if j.cluster == cname]
            for name in names:
                out.append(self._job_group(loaded, ctx, cname, name))
            if names:
                out.append(self._cluster_group(loaded, ctx, cname, cluster, names))
        return out

    def _job_group(self, loaded: Loaded, ctx: Context, cname: str, name: str) -> Group:
        job = loaded.project.jobs[name]
        points = loaded.points[name]
        rows = hashlib.sha256(repr(points).encode()).hexdigest()
        staged = sorted({i.sync for i in (*job.stage_in, *job.stage_out)})
        piece = {"job": job.model_dump(mode="json", by_alias=True), "name": name,
                 "cluster": loaded.project.clusters[cname].model_dump(mode="json"),
                 "project": loaded.project.model_dump(mode="json",
                                                      include={"project", "user", "secrets",
                                                               "env"}),
                 "points": rows, "file": ctx.project_file,
                 "syncs": {s: loaded.project.syncs[s].every for s in staged},
                 "yaml": [loaded.source.snippet(loc) for loc in (
                     ("jobs", name), ("clusters", cname), ("env",), ("user",), ("secrets",),
                     *(("syncs", s) for s in staged))]}
        return Group(f"slurm/{cname}/{name}", piece,
                     lambda: self.render_job(loaded, ctx, cname, name), ("jobs", name))

    def _cluster_group(self, loaded: Loaded, ctx: Context, cname: str, cluster: m.SlurmCluster,
                       names: list[str]) -> Group:
        jobs = loaded.project.jobs
        summary = [(n, jobs[n].after, loaded.points[n].size,
                    jobs[n].model_dump(include={"sweep", "account", "partition", "qos",
                                                "stage_in", "stage_out"}))
                   for n in names]
        piece = {"cluster": cluster.model_dump(mode="json"), "jobs": summary,
                 "project": loaded.project.project, "secrets": loaded.project.secrets,
                 "file": ctx.project_file}
        return Group(f"slurm/{cname}", piece,
                     lambda: self.render_cluster(loaded, ctx, cname, names), ("clusters", cname))

    def job_context(self, loaded: Loaded, ctx: Context, name: str) -> dict[str, Any]:
        job = loaded.project.jobs[name]
        cluster = slurm_cluster(loaded, job.cluster)
        res = effective_resources(loaded, job)
        points = loaded.points[name]
        static = static_params(loaded, name)
        columns = set(points.names)
        env = merged_env(loaded, job)
        static_env, point_env = [], []
        for key, value in env.items():
            parts = parse_text(value)[0]
            if _has_params(value, columns):
                point_env.append((key, word_ref(parts)))
            else:
                static_env.append((key, word(parts, static)))
        texts = [*env.values(), *cluster.modules, cluster.conda or "",
                 *(job.command if isinstance(job.command, tuple) else [job.command])]
        used = sorted({v for t in texts for v in var_refs(t)} & set(loaded.project.secrets))
        hook = _hook(job)
        refs = {*used_names(job.command), *(used_names(job.on_timeout.run)
                                            if job.on_timeout and job.on_timeout.run else [])}
        refs |= {p.name for v in env.values() if _has_params(v, columns)
                 for p in parse_text(v)[0] if isinstance(p, Param)}
        return {
            "header": ctx.header(name), "name": name, "job": job, "res": res,
            "project": loaded.project.project, "cluster_name": job.cluster,
            "directives": directives(loaded, name, job, res),
            "submit_options": submit_options(loaded, job),
            "modules": [word(parse_text(mod)[0], static) for mod in cluster.modules],
            "conda": word(parse_text(cluster.conda)[0], static) if cluster.conda else None,
            "static_env": static_env, "secrets": used,
            "builtins": [(variable(n), static[n]) for n in sorted(refs)
                         if n in static and n not in columns],
            "code": "".join(f"export {key}={value}\n" for key, value in point_env)
                    + command_code(job.command),
            "sweep": job.sweep is not None, "size": points.size,
            "params": list(points.names), "tsv": f"{name}.params.tsv",
            "launcher": job.launcher,
            "on_timeout": job.on_timeout,
            "hook": hook,
            "before": signal_before(job),
            "stage_in": [item.sync for item in job.stage_in],
            "stage_out": stage_out(loaded, job),
        }

    def render_job(self, loaded: Loaded, ctx: Context, cname: str, name: str) -> list[Artifact]:
        context = self.job_context(loaded, ctx, name)
        base = f"slurm/{cname}/{name}"
        out = [Artifact(f"{base}.sbatch", render(ctx.env, "slurm/job.sbatch.j2", context),
                        executable=True, lint="shellcheck")]
        if loaded.project.jobs[name].sweep:
            out.append(Artifact(f"{base}.params.tsv", params_tsv(ctx.header(name),
                                                                  loaded.points[name])))
        return out

    def render_cluster(self, loaded: Loaded, ctx: Context, cname: str,
                       names: list[str]) -> list[Artifact]:
        cluster = slurm_cluster(loaded, cname)
        steps: list[dict[str, Any]] = []
        needed = {a for n in names for a in loaded.project.jobs[n].after}
        var = {n: f"jp_ids_{i}" for i, n in enumerate(names, start=1) if n in needed}
        order = submission_order(loaded, names)
        for step, name in enumerate(order, start=1):
            job = loaded.project.jobs[name]
            size = loaded.points[name].size
            parts = chunks(size, cluster.max_array_size) if job.sweep else []
            dependency = ":".join(f"${{{var[a]}}}" for a in job.after)
            steps.append({"name": name, "step": step, "after": job.after, "var": var.get(name),
                          "after_pos": [order.index(a) for a in job.after],
                          "retries": job.retries,
                          "rungs": [rung_options(r) for r in job.escalate],
                          "array": bool(job.sweep),
                          "dependency": f"afterok:{dependency}" if dependency else "",
                          "chunks": parts, "throttle": job.sweep.throttle if job.sweep else None,
                          "options": submit_options(loaded, job), "size": size})
        used = sorted({v for n in names for o in submit_options(loaded, loaded.project.jobs[n])
                       for v in var_refs(o)})
        staged = sorted({i.sync for n in names for i in (*loaded.project.jobs[n].stage_in,
                                                          *loaded.project.jobs[n].stage_out)})
        context = {"header": ctx.header(), "cluster_name": cname, "steps": steps,
                   "secrets": used, "project": loaded.project.project,
                   "syncs": [shvalue(s) for s in staged]}
        return [Artifact(f"slurm/{cname}/{script}",
                         render(ctx.env, f"slurm/{script}.j2", context),
                         executable=True, lint="shellcheck")
                for script in ("submit_all.sh", "ctl.sh")] + [
            runtime_artifact(ctx, f"slurm/{cname}", "slurm")]


def submission_order(loaded: Loaded, names: list[str]) -> list[str]:
    """Jobs in an order where every job comes after the jobs it depends on (YAML order
    otherwise): each time, the first job in YAML order whose dependencies are all placed.

    >>> from types import SimpleNamespace as N
    >>> jobs = {"a": N(after=["c"]), "b": N(after=[]), "c": N(after=["b"])}
    >>> submission_order(N(project=N(jobs=jobs)), ["a", "b", "c"])
    ['b', 'c', 'a']
    """
    index = {name: i for i, name in enumerate(names)}
    waiting = {n: len({d for d in loaded.project.jobs[n].after if d in index}) for n in names}
    needed_by: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        for dep in {d for d in loaded.project.jobs[name].after if d in index}:
            needed_by[dep].append(name)
    ready = [index[n] for n in names if not waiting[n]]
    heapq.heapify(ready)
    done: list[str] = []
    while ready:  # a heap keeps "first in YAML order" at O(log n) per job
        name = names[heapq.heappop(ready)]
        done.append(name)
        for later in needed_by[name]:
            waiting[later] -= 1
            if not waiting[later]:
                heapq.heappush(ready, index[later])
    if len(done) != len(names):  # pragma: no cover - cycles are rejected by validation
        raise AssertionError(f"dependency cycle among {sorted(set(names) - set(done))}")
    return done


def params_tsv(header: list[str], points: Points) -> str:
    r"""The sweep table an array task reads its point from, one row per point.

    Line 3 + i holds point i. Cells are escaped as ``printf %b`` reads them back (see
    ``tsv_cell``), so tabs and line breaks in values cannot break the table, and no value is
    ever read by ``eval``.

    >>> table = params_tsv(["h"], Points(("lr",), (("0.1",), ("a\tb",))))
    >>> print(table.replace(chr(9), "|"), end="")
    # h
    index|lr
    0|0.1
    1|a\tb
    """
    lines = ["# " + " ".join(header), "\t".join(("index", *points.names))]
    lines += ["\t".join((str(i), *(tsv_cell(v) for v in row))) for i, row in enumerate(points.rows)]
    return "\n".join(lines) + "\n"
