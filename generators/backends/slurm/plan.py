"""Slurm backend: one sbatch script per job (sweeps as one array), submit_all.sh per cluster."""

from __future__ import annotations

import heapq
from typing import Any

from ...placeholders import command_code, used_names
from ...plan import FileSpec, Group, file_header, plain_context, runtime_file, text_file
from ...project import model as m
from ...project.checker import Loaded, Points
from ...project.model import seconds
from ...project.semantics import merged_env, static_params
from ...shell import (
    Param,
    Safe,
    needs_escape,
    parse_text,
    shquote,
    shvalue,
    tsv_cell,
    var_refs,
    variable,
    word,
    word_ref,
)
from .checks import PER_GPU, effective_resources, options
from .model import OnTimeout, Resources, Rung, SlurmCluster, SlurmJob


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


def slurm_cluster(loaded: Loaded, name: str) -> SlurmCluster:
    cluster = loaded.project.clusters[name]
    assert isinstance(cluster, SlurmCluster), f"{name} is not a Slurm cluster"
    return cluster


def _has_params(text: str, columns: set[str]) -> bool:
    return any(isinstance(p, Param) and p.name in columns for p in parse_text(text)[0])


def directives(loaded: Loaded, name: str, job: m.Job, res: Resources) -> list[str]:
    """The ``#SBATCH`` options of a job, in a fixed order (values validated as safe)."""
    cluster = slurm_cluster(loaded, job.cluster)
    opts = options(job)
    points = loaded.points[name]
    d = [f"--job-name={loaded.project.project}-{name}"]
    for key in ("account", "partition", "qos"):
        value = getattr(opts, key) or getattr(cluster, key)
        if value and "${" not in value:
            d.append(f"--{key}={value}")
    gpu = f"{res.gpu_type}:" if res.gpu_type else ""
    pairs: list[tuple[str, Any]] = [
        ("nodes", res.nodes), ("ntasks-per-node", tasks_per_node(opts, res)),
        ("gpus", res.gpus is not None and f"{gpu}{res.gpus}"),
        ("gpus-per-node", res.gpus_per_node is not None and f"{gpu}{res.gpus_per_node}"),
        ("cpus-per-task", res.cpus_per_task), ("mem", res.mem), ("time", res.time)]
    d += [f"--{k}={v}" for k, v in pairs if v is not None and v is not False]
    pattern = "%x_%A_%a" if loaded.project.jobs[name].sweep else "%x_%j"
    d += [f"--output=logs/{pattern}.out", f"--error=logs/{pattern}.err"]
    timeout = opts.on_timeout
    if res.signal:
        d.append(f"--signal={res.signal}")
    elif timeout or opts.stage_out:
        d.append(f"--signal=B:USR1@{signal_before(opts)}")
    requeue = res.requeue if res.requeue is not None else (timeout and timeout.requeue) or None
    if requeue is not None:
        d.append("--requeue" if requeue else "--no-requeue")
    if job.sweep:
        first = chunks(points.size, cluster.max_array_size)[0][1]
        throttle = f"%{job.sweep.throttle}" if job.sweep.throttle else ""
        d.append(f"--array=0-{first - 1}{throttle}")
    extra = {**cluster.sbatch, **opts.sbatch}
    # true: a flag such as --exclusive; false: left out.
    d += [f"--{k}" if v is True else f"--{k}={m._scalar_text(v)}"
          for k, v in sorted(extra.items()) if v is not False]
    return d


def tasks_per_node(opts: SlurmJob, res: Resources) -> int | None:
    """--ntasks-per-node: as given, or one task per GPU with an mpi or torchrun launcher."""
    if res.ntasks_per_node is None and opts.launcher in PER_GPU:
        return res.gpus_per_node
    return res.ntasks_per_node


def signal_before(job: SlurmJob) -> int:
    """Seconds before the time limit at which Slurm signals the job (on_timeout.before)."""
    return (job.on_timeout or OnTimeout()).before


def stage_out(loaded: Loaded, job: SlurmJob) -> list[tuple[str, int]]:
    """(sync, interval in seconds or 0 for only at the end) of each stage_out entry."""
    out = []
    for item in job.stage_out:
        every = item.every or loaded.project.syncs[item.sync].every
        out.append((item.sync, seconds(every) if every else 0))
    return out


def _hook(job: SlurmJob) -> str | None:
    """Shell code of the job's on_timeout hook (placeholders as variable references)."""
    if job.on_timeout is None or job.on_timeout.run is None:
        return None
    return command_code(job.on_timeout.run)


def rung_options(rung: Rung) -> list[str]:
    """sbatch options of one escalation rung (they override the script's directives).

    >>> rung_options(Rung(time="2:00:00", mem="64G", partition="long"))
    ['--partition=long', '--mem=64G', '--time=2:00:00']
    """
    pairs: list[tuple[str, Any]] = [
        ("partition", rung.partition), ("qos", rung.qos), ("gpus", rung.gpus),
        ("gpus-per-node", rung.gpus_per_node), ("cpus-per-task", rung.cpus_per_task),
        ("mem", rung.mem), ("time", rung.time)]
    return [shquote(f"--{k}={m._scalar_text(v)}") for k, v in pairs if v is not None]


def submit_options(loaded: Loaded, job: m.Job) -> list[str]:
    """Options passed on the sbatch command line: directives whose value is a secret."""
    cluster, opts = slurm_cluster(loaded, job.cluster), options(job)
    out: list[str] = []
    for key in ("account", "partition", "qos"):
        value = getattr(opts, key) or getattr(cluster, key)
        if value and "${" in value:
            out.append(word(parse_text(f"--{key}={value}")[0], {}))
    return out


def plan(loaded: Loaded, cname: str) -> list[Group]:
    """A group per job of cluster ``cname`` (its sbatch script, and its sweep table), and
    one for the cluster's submit_all.sh and ctl.sh."""
    names = [n for n, j in loaded.project.jobs.items() if j.cluster == cname]
    out = [_job_group(loaded, cname, name) for name in names]
    if names:
        out.append(Group(f"slurm/{cname}", ("clusters", cname),
                         tuple(_cluster_files(loaded, cname, names))))
    return out


def _job_group(loaded: Loaded, cname: str, name: str) -> Group:
    context = job_context(loaded, name)
    base = f"slurm/{cname}/{name}"
    files = [FileSpec(f"{base}.sbatch", "slurm/job.sbatch.j2", context, executable=True,
                      lint="shellcheck")]
    if loaded.project.jobs[name].sweep:
        header = file_header(loaded.source.file, name)
        files.append(text_file(f"{base}.params.tsv", params_tsv(header, loaded.points[name])))
    return Group(base, ("jobs", name), tuple(files))


def _env(loaded: Loaded, name: str) -> tuple[list[tuple[str, Safe]], list[tuple[str, Safe]]]:
    """The job's environment: (variables set in the script, variables set per point)."""
    job = loaded.project.jobs[name]
    static = static_params(loaded, name)
    columns = set(loaded.points[name].names)
    static_env, point_env = [], []
    for key, value in merged_env(loaded, job).items():
        parts = parse_text(value)[0]
        if _has_params(value, columns):
            point_env.append((key, word_ref(parts)))
        else:
            static_env.append((key, word(parts, static)))
    return static_env, point_env


def _used(loaded: Loaded, name: str) -> tuple[list[str], set[str]]:
    """Secrets the job's script reads, and the parameters its code refers to."""
    job = loaded.project.jobs[name]
    opts, cluster = options(job), slurm_cluster(loaded, job.cluster)
    env = merged_env(loaded, job)
    columns = set(loaded.points[name].names)
    texts = [*env.values(), *cluster.modules, cluster.conda or "",
             *(job.command if isinstance(job.command, tuple) else [job.command])]
    used = sorted({v for t in texts for v in var_refs(t)} & set(loaded.project.secrets))
    refs = {*used_names(job.command), *(used_names(opts.on_timeout.run)
                                        if opts.on_timeout and opts.on_timeout.run else [])}
    refs |= {p.name for v in env.values() if _has_params(v, columns)
             for p in parse_text(v)[0] if isinstance(p, Param)}
    return used, refs


def job_context(loaded: Loaded, name: str) -> dict[str, Any]:
    """What job.sbatch.j2 reads for job ``name``."""
    job = loaded.project.jobs[name]
    opts, cluster = options(job), slurm_cluster(loaded, job.cluster)
    res = effective_resources(cluster, opts)
    points = loaded.points[name]
    static = static_params(loaded, name)
    static_env, point_env = _env(loaded, name)
    used, refs = _used(loaded, name)
    return plain_context({
        "header": file_header(loaded.source.file, name), "name": name, "res": res,
        "project": loaded.project.project, "cluster_name": job.cluster,
        "directives": directives(loaded, name, job, res),
        "submit_options": submit_options(loaded, job),
        "modules": [word(parse_text(mod)[0], static) for mod in cluster.modules],
        "conda": word(parse_text(cluster.conda)[0], static) if cluster.conda else None,
        "static_env": static_env, "secrets": used,
        "builtins": [(variable(n), static[n]) for n in sorted(refs)
                     if n in static and n not in points.names],
        "code": "".join(f"export {key}={value}\n" for key, value in point_env)
                + command_code(job.command),
        "sweep": job.sweep is not None, "size": points.size,
        "params": list(points.names), "tsv": f"{name}.params.tsv",
        "launcher": opts.launcher, "on_timeout": opts.on_timeout, "hook": _hook(opts),
        "before": signal_before(opts), "stage_in": [item.sync for item in opts.stage_in],
        "stage_out": stage_out(loaded, opts),
    })


def _step(loaded: Loaded, cname: str, order: list[str], var: dict[str, str],
          name: str) -> dict[str, Any]:
    """One job of submit_all.sh: its place, dependencies, retries, arrays and options."""
    job = loaded.project.jobs[name]
    opts, cluster = options(job), slurm_cluster(loaded, cname)
    size = loaded.points[name].size
    dependency = ":".join(f"${{{var[a]}}}" for a in job.after)
    return {"name": name, "step": order.index(name) + 1, "after": job.after,
            "var": var.get(name), "after_pos": [order.index(a) for a in job.after],
            "retries": job.retries, "rungs": [rung_options(r) for r in opts.escalate],
            "array": bool(job.sweep),
            "dependency": f"afterok:{dependency}" if dependency else "",
            "chunks": chunks(size, cluster.max_array_size) if job.sweep else [],
            "throttle": job.sweep.throttle if job.sweep else None,
            "options": submit_options(loaded, job), "size": size}


def _cluster_files(loaded: Loaded, cname: str, names: list[str]) -> list[FileSpec]:
    jobs = loaded.project.jobs
    needed = {a for n in names for a in jobs[n].after}
    var = {n: f"jp_ids_{i}" for i, n in enumerate(names, start=1) if n in needed}
    order = submission_order(loaded, names)
    steps = [_step(loaded, cname, order, var, name) for name in order]
    used = sorted({v for n in names for o in submit_options(loaded, jobs[n])
                   for v in var_refs(o)})
    staged = sorted({i.sync for n in names
                     for i in (*options(jobs[n]).stage_in, *options(jobs[n]).stage_out)})
    context = plain_context({"header": file_header(loaded.source.file), "cluster_name": cname,
                     "steps": steps, "secrets": used, "project": loaded.project.project,
                     "syncs": [shvalue(s) for s in staged]})
    return [*(FileSpec(f"slurm/{cname}/{script}", f"slurm/{script}.j2", context,
                       executable=True, lint="shellcheck")
              for script in ("submit_all.sh", "ctl.sh")),
            runtime_file(f"slurm/{cname}", "slurm", loaded.source.file)]


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
    cell = tsv_cell if needs_escape("".join(v for row in points.rows for v in row)) else str
    lines += ["\t".join((str(i), *map(cell, row))) for i, row in enumerate(points.rows)]
    return "\n".join(lines) + "\n"
