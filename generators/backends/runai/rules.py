"""What ``runai workspace submit`` and ``runai training submit`` (the v2 CLI) accept, checked
at build time: workload names, GPU, CPU and memory requests, data sources, ports; and which
keys a Run:ai job needs."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from ...loader import Loc, dotted
from ...project import model as m
from ...project.checker import Checker, Loaded
from ...project.images import check_job_image, reference_problem
from ...project.kind import JobScope
from ...shell import var_refs
from . import names
from .model import Gpu, RunaiCluster, RunaiJob

# Kubernetes quantities as the CLI takes them (1G, 500M, 1.5Gi).
MEMORY = re.compile(r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,3})?(K|M|G|T|Ki|Mi|Gi|Ti)")
GPU_MEMORY = re.compile(r"[1-9][0-9]{0,6}(M|G|Mi|Gi)")
HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?")
# A path in --nfs and --existing-pvc, whose values are key=value pairs joined by ','.
MOUNT = re.compile(r"/[^\s,=]*")
SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
PORT = re.compile(r"([0-9]{1,5})(?::([0-9]{1,5}))?")
# Environment names the scripts set themselves: the run id, and their own variables
RESERVED_ENV = re.compile(r"RUN_ID|jp_.*")
# jupyter: true appends these to the command, as the seed's Jupyter environment does; the
# workload's Jupyter tool reaches the server on JUPYTER_PORT under that base URL.
JUPYTER_PORT = 8888
JUPYTER_ARGS = (f"--port={JUPYTER_PORT}",
                "--NotebookApp.base_url=/${RUNAI_PROJECT}/${RUNAI_JOB_NAME}")
# The secret whose value, when the project declares it, is Jupyter's token (sent as an
# environment variable of the workload); without it Jupyter asks for no token.
JUPYTER_TOKEN = "JUPYTER_TOKEN"


def jupyter_token(loaded: Loaded) -> bool:
    """Whether Jupyter servers of the project ask for the token of secret JUPYTER_TOKEN."""
    return JUPYTER_TOKEN in loaded.project.secrets
JUPYTER_LINE = re.compile(r"\s*(exec\s+)?jupyter(\s+[^#;&|<>()`]*)?")


def options(job: m.Job) -> RunaiJob:
    """The Run:ai keys of a job on a Run:ai cluster."""
    assert isinstance(job.options, RunaiJob), "not a job on a Run:ai cluster"
    return job.options


def runai_cluster(loaded: Loaded, name: str) -> RunaiCluster:
    cluster = loaded.project.clusters[name]
    assert isinstance(cluster, RunaiCluster), f"{name} is not a Run:ai cluster"
    return cluster


def gpu_flags(gpu: Gpu | None) -> list[str]:
    """The runai flags of a GPU request (see ``gpu_problem``).

    >>> gpu_flags(2), gpu_flags(0)
    (['-g', '2'], [])
    >>> gpu_flags(0.5)
    ['--gpu-request-type', 'portion', '--gpu-portion-request', '0.5']
    >>> gpu_flags("10G")
    ['--gpu-request-type', 'memory', '--gpu-memory-request', '10G']
    """
    if gpu is None or (isinstance(gpu, int) and gpu == 0):
        return []
    if isinstance(gpu, str):
        return ["--gpu-request-type", "memory", "--gpu-memory-request", gpu]
    if isinstance(gpu, float):
        return ["--gpu-request-type", "portion", "--gpu-portion-request", m._scalar_text(gpu)]
    return ["-g", str(gpu)]


def gpu_problem(gpu: Gpu) -> str | None:
    """Why runai would refuse ``gpu`` as a GPU request.

    >>> [gpu_problem(v) for v in (1, 0.25, "24G")]
    [None, None, None]
    >>> gpu_problem(1.5).split("; ")[1]
    'ask whole devices with an integer'
    >>> gpu_problem("half")
    "'half' is not a GPU memory amount such as 10G or 500M (or give devices as a number)"
    """
    if isinstance(gpu, bool):
        return "expected a number of GPUs, a portion such as 0.5, or a memory amount such as 10G"
    if isinstance(gpu, int):
        return None if 0 <= gpu <= m.MAX_ARRAY else f"{gpu} is not a number of GPUs (0 or more)"
    if isinstance(gpu, float):
        if 0 < gpu < 1 and re.fullmatch(r"0?\.[0-9]{1,4}", m._scalar_text(gpu)):
            return None
        return ("a portion of a GPU is more than 0 and less than 1 (e.g. 0.5); ask whole "
                "devices with an integer")
    if not GPU_MEMORY.fullmatch(gpu):
        return (f"{gpu!r} is not a GPU memory amount such as 10G or 500M (or give devices as "
                "a number)")
    return None


def _resources(ck: Checker, loc: Loc, gpu: Gpu | None, cpu: Any, memory: str | None) -> None:
    if gpu is not None and (problem := gpu_problem(gpu)):
        ck.add((*loc, "gpu"), problem)
    if cpu is not None and (isinstance(cpu, bool) or not 0 < cpu <= 100_000
                            or not re.fullmatch(r"[0-9]+(\.[0-9]{1,3})?", m._scalar_text(cpu))):
        ck.add((*loc, "cpu"), f"{m._scalar_text(cpu)} is not a number of CPU cores (more than "
               "0, e.g. 4 or 0.5)")
    if memory is not None and (not MEMORY.fullmatch(memory)
                               or not float(re.sub(r"[A-Za-z]+$", "", memory))):
        ck.add((*loc, "memory"), f"{memory!r} is not a memory amount such as 16G, 500M or 1.5Gi")


def _labels(ck: Checker, loc: Loc, pools: list[str] | None) -> None:
    for i, pool in enumerate(pools or []):
        if not names.LABEL.fullmatch(pool) or len(pool) > names.MAX:
            ck.add((*loc, "node_pools", i), f"{pool!r} is not a node pool name (lowercase "
                   "letters, digits and '-')")


def cluster(ck: Checker, loc: Loc, cl: RunaiCluster) -> None:
    if not names.LABEL.fullmatch(cl.project) or len(cl.project) > names.MAX:
        ck.add((*loc, "project"), f"{cl.project!r} is not a Run:ai project name (lowercase "
               "letters, digits and '-', at most 63)")
    if cl.user is not None and not names.LABEL.fullmatch(cl.user):
        ck.add((*loc, "user"), f"{cl.user!r} cannot start a workload name: use lowercase "
               "letters, digits and '-'")
    _labels(ck, loc, cl.node_pools)
    _resources(ck, loc, cl.gpu, cl.cpu, cl.memory)
    mounts: dict[str, Loc] = {}
    for i, nfs in enumerate(cl.nfs):
        at = (*loc, "nfs", i)
        if not HOST.fullmatch(nfs.server):
            ck.add((*at, "server"), f"{nfs.server!r} is not a host name or address")
        for key in ("path", "mount"):
            if not MOUNT.fullmatch(getattr(nfs, key)):
                ck.add((*at, key), f"{getattr(nfs, key)!r} is not an absolute path without "
                       "spaces, ',' or '='")
        _mount(ck, (*at, "mount"), nfs.mount, mounts)
    for i, pvc in enumerate(cl.pvc):
        at = (*loc, "pvc", i)
        if not SUBDOMAIN.fullmatch(pvc.claim):
            ck.add((*at, "claim"), f"{pvc.claim!r} is not a claim name (lowercase letters, "
                   "digits, '-' and '.')")
        if not MOUNT.fullmatch(pvc.mount):
            ck.add((*at, "mount"), f"{pvc.mount!r} is not an absolute path without spaces, "
                   "',' or '='")
        _mount(ck, (*at, "mount"), pvc.mount, mounts)


def _mount(ck: Checker, loc: Loc, mount: str, seen: dict[str, Loc]) -> None:
    """A mount path used once (``/b`` and ``/b/`` are the same folder)."""
    key = posixpath.normpath(mount) if mount.startswith("/") else mount
    if key in seen:
        ck.add(loc, f"{mount!r} is mounted twice (also at {dotted(seen[key])})")
    seen[key] = loc


def user(loaded: Loaded, cl: RunaiCluster) -> str | None:
    """The prefix of the cluster's workload names: its ``user``, else the project's."""
    return cl.user or loaded.project.user


def job(ck: Checker, loaded: Loaded, scope: JobScope) -> None:
    """Rules of a job on a Run:ai cluster."""
    loc, jb, opts, cl = scope.loc, scope.job, options(scope.job), scope.cluster
    assert isinstance(cl, RunaiCluster)
    _image(ck, loaded, loc, opts)
    _name(ck, loaded, scope, cl)
    _resources(ck, loc, opts.gpu, opts.cpu, opts.memory)
    _labels(ck, loc, opts.node_pools)
    training = opts.workload == "training"
    if training and opts.preemptible:
        ck.add((*loc, "preemptible"), "runai training submit has no --preemptible: training "
               "workloads are preemptible already; it applies to workspaces")
    if not training and opts.backoff_limit is not None:
        ck.add((*loc, "backoff_limit"), "--backoff-limit is a flag of training workloads; a "
               "workspace runs until it is deleted")
    if not training and "retries" in jb.model_fields_set and jb.retries:
        ck.add((*loc, "retries"), "retries resubmit failed training workloads; a workspace "
               "runs until it is deleted")
    if opts.jupyter:
        _jupyter(ck, loc, jb, training)
    if opts.working_dir is not None and not re.fullmatch(r"/\S*", opts.working_dir):
        ck.add((*loc, "working_dir"), f"{opts.working_dir!r} is not an absolute path in the "
               "container")
    _ports(ck, loc, opts.ports, opts.jupyter)
    _env(ck, loc, jb, scope.points.names)
    _env_refs(ck, loaded, loc, jb)
    _unique(ck, loaded, scope, cl)
    first: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(scope.points.rows):
        if row in first:
            ck.add((*loc, "sweep"), f"point {i} repeats point {first[row]} (same values); each "
                   "point is a workload named after its values, so points must differ")
            break
        first[row] = i


def _image(ck: Checker, loaded: Loaded, loc: Loc, jb: RunaiJob) -> None:
    if jb.image is None:
        ck.add(loc, "a Run:ai job needs 'image' (a name in images, or a reference such as "
               "docker.io/ORG/REPO:TAG)")
        return
    errors = len(ck.problems)
    check_job_image(ck, loaded.project.images, (*loc, "image"), jb.image)
    if len(ck.problems) == errors and jb.image not in loaded.project.images and (
            problem := reference_problem(jb.image)):
        ck.add((*loc, "image"), problem)


def _unique(ck: Checker, loaded: Loaded, scope: JobScope, cl: RunaiCluster) -> None:
    """No two jobs of one Run:ai project may name a workload alike (job ``train`` with the
    point ``1`` and job ``train-1``): each name is one workload."""
    if user(loaded, cl) is None:
        return
    mine = set(_workload_names(loaded, scope.name))
    for other, job in loaded.project.jobs.items():
        if other == scope.name:
            break  # each pair is reported once, at the later job
        there = loaded.project.clusters.get(job.cluster)
        if (not isinstance(there, RunaiCluster) or there.project != cl.project
                or other not in loaded.points or user(loaded, there) is None):
            continue
        if same := sorted(mine & set(_workload_names(loaded, other))):
            ck.add(scope.loc, f"workload name {same[0]!r} is also one of job {other!r} "
                   f"(Run:ai project {cl.project!r}); rename one of the jobs", key=True)


def _workload_names(loaded: Loaded, name: str) -> list[str]:
    job = loaded.project.jobs[name]
    cl = loaded.project.clusters[job.cluster]
    assert isinstance(cl, RunaiCluster)
    prefix = user(loaded, cl)
    assert prefix is not None
    points = loaded.points[name]
    return names.point_names(names.base(prefix, loaded.project.project, name), points.names,
                             points.rows)


def _name(ck: Checker, loaded: Loaded, scope: JobScope, cl: RunaiCluster) -> None:
    prefix = user(loaded, cl)
    if prefix is None:
        ck.add(scope.loc, f"no user to start its workload names with: set 'user' at the top "
               f"of the project or in cluster {scope.job.cluster!r}")
        return
    if cl.user is not None and not names.LABEL.fullmatch(cl.user):
        return  # reported at the cluster's user
    start = names.base(prefix, loaded.project.project, scope.name)
    if problem := names.problem(start, scope.points.size > 1 or bool(scope.points.names)):
        ck.add(scope.loc, f"workload name {problem}; rename the job (or shorten user or "
               "project)", key=True)


def _jupyter(ck: Checker, loc: Loc, jb: m.Job, training: bool) -> None:
    if training:
        ck.add((*loc, "jupyter"), "jupyter: true is for workspaces (workload: workspace)")
        return
    command = jb.command
    if isinstance(command, tuple):
        ok = command[0] == "jupyter"
    else:
        lines = [line for line in command.splitlines() if line.strip()]
        ok = bool(lines) and bool(JUPYTER_LINE.fullmatch(lines[-1]))
    if not ok:
        ck.add((*loc, "command"), "with jupyter: true the base URL and port are added to the "
               "command's last line, which must be a plain 'jupyter ...' command (e.g. "
               "jupyter lab --ip=0.0.0.0 --no-browser --allow-root)")


def _ports(ck: Checker, loc: Loc, ports: list[int | str], jupyter: bool) -> None:
    seen = {JUPYTER_PORT} if jupyter else set()
    for i, port in enumerate(ports):
        match = PORT.fullmatch(str(port)) if not isinstance(port, bool) else None
        numbers = [int(g) for g in match.groups() if g] if match else []
        if not numbers or not all(1 <= n <= 65535 for n in numbers):
            ck.add((*loc, "ports", i), f"{port!r} is not a container port, or "
                   "CONTAINER:EXTERNAL (1-65535 each)")
        elif numbers[0] in seen:
            ck.add((*loc, "ports", i), f"container port {numbers[0]} is "
                   + ("Jupyter's" if numbers[0] == JUPYTER_PORT and jupyter else "listed twice"))
        else:
            seen.add(numbers[0])


def _env_refs(ck: Checker, loaded: Loaded, loc: Loc, jb: m.Job) -> None:
    """Env values are expanded where the workload is submitted: a ${NAME} there must be a
    secret (read then), not a variable of the workload's own environment."""
    envs: list[tuple[Loc, dict[str, m.Scalar]]] = [
        (("env",), loaded.project.env), (("clusters", jb.cluster, "env"),
                                         loaded.project.clusters[jb.cluster].env),
        ((*loc, "env"), jb.env)]
    for at, env in envs:
        for key, value in env.items():
            if RESERVED_ENV.fullmatch(key):
                ck.add((*at, key), f"{key!r} is set by the Run:ai scripts (RUN_ID and names "
                       "starting jp_ are theirs); choose another name", key=True)
            for ref in var_refs(value) if isinstance(value, str) else []:
                if ref not in loaded.project.secrets:
                    ck.add((*at, key), f"'${{{ref}}}' in an env value is read where the "
                           "workload is submitted, and only secrets are read there; refer to "
                           "it in the command, which runs in the workload")


def _env(ck: Checker, loc: Loc, jb: m.Job, params: tuple[str, ...]) -> None:
    """Env values that use sweep parameters are fixed per point when the bundle is built; the
    run id and ${NAME} values are not known then."""
    if not params:
        return
    used = re.compile(r"\{\{\s*(" + "|".join(map(re.escape, params)) + r")\s*\}\}")
    for key, value in jb.env.items():
        if not isinstance(value, str) or not used.search(value):
            continue
        if re.search(r"\{\{\s*run_id\s*\}\}", value):
            ck.add((*loc, "env", key), "'{{ run_id }}' is known only at submission, and this "
                   "value is fixed per point at build time: use $RUN_ID in the command (every "
                   "workload gets RUN_ID in its environment)")
        if "${" in value:
            ck.add((*loc, "env", key), "an env value that uses sweep parameters is fixed at "
                   "build time and cannot also read ${NAME}; split it into two variables")
