"""Run:ai backend: one workload per sweep point, submitted with ``runai workspace submit`` or
``runai training submit`` (v2 grammar) from a table per job, and tracked in a ledger."""

from __future__ import annotations

import re
from typing import Any

from ...placeholders import command_code, used_names
from ...plan import FileSpec, Group, file_header, plain_context, runtime_file, text_file
from ...project import images
from ...project import model as m
from ...project.checker import Loaded
from ...project.semantics import merged_env, static_params
from ...shell import Param, Safe, parse_text, shquote, tsv_cell, var_refs, variable, word
from . import names
from .rules import (
    JUPYTER_ARGS,
    JUPYTER_PORT,
    JUPYTER_TOKEN,
    gpu_flags,
    jupyter_token,
    options,
    runai_cluster,
    user,
)

SCRIPTS = ("submit_all.sh", "ctl.sh", "delete_all.sh")
# Where an image that carries the run helper has it: `/run.sh "cmd1" "cmd2"` runs each
# argument as shell code, in order, stopping at the first that fails.
RUN_HELPER = "/run.sh"
# Run:ai's final workload states, and those a resubmission may cure.
RESUBMIT = ("Failed",)
FINAL = ("Succeeded", "Completed", "Stopped", *RESUBMIT)


def image_ref(loaded: Loaded, job: m.Job) -> str:
    """The reference a workload runs: an image of the project by its first (pushed) tag, or
    the text as given."""
    return images.image_ref(loaded.project, str(options(job).image))


def run_helper(loaded: Loaded, job: m.Job) -> bool:
    """Whether the job's image is an image of the project built with the run helper
    (``images.<name>.dockerfile.run_helper``)."""
    image = loaded.project.images.get(str(options(job).image))
    return image is not None and image.dockerfile is not None and image.dockerfile.run_helper


def bundle_label(loaded: Loaded) -> str:
    """The value of the label jobpack-project of every workload of the bundle: the project's
    name when it is a label value, else a hash of it.

    >>> class P: project = "mnist"
    >>> class L: project = P
    >>> bundle_label(L), (setattr(P, "project", "a" * 64), bundle_label(L))[1]
    ('mnist', 'hffe054fe')
    """
    name = loaded.project.project
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?", name):
        return name
    return names.digest((name,))


def workload_names(loaded: Loaded, name: str) -> list[str]:
    """The workload name of every point of a job."""
    job = loaded.project.jobs[name]
    prefix = user(loaded, runai_cluster(loaded, job.cluster))
    assert prefix is not None, "checked: a Run:ai job has a user"
    points = loaded.points[name]
    start = names.base(prefix, loaded.project.project, name)
    return names.point_names(start, points.names, points.rows)


def _flag(name: str, value: str) -> list[str]:
    """A flag and its quoted value; a bare value with ',' is quoted all the same, so that it
    does not read as a list to shellcheck (SC2054).

    >>> _flag("--nfs", "path=/a,server=b")
    ['--nfs', "'path=/a,server=b'"]
    """
    quoted: str = shquote(value)
    return [name, Safe(f"'{quoted}'") if quoted == value and "," in value else quoted]


def _resources(loaded: Loaded, job: m.Job) -> list[str]:
    cl, opts = runai_cluster(loaded, job.cluster), options(job)
    gpu = opts.gpu if opts.gpu is not None else cl.gpu
    out: list[str] = [shquote(w) for w in gpu_flags(gpu)]
    cpu = opts.cpu if opts.cpu is not None else cl.cpu
    out += _flag("--cpu-core-request", m._scalar_text(cpu)) if cpu is not None else []
    memory = opts.memory or cl.memory
    out += _flag("--cpu-memory-request", memory) if memory else []
    for pool in opts.node_pools if opts.node_pools is not None else cl.node_pools:
        out += _flag("--node-pools", pool)
    return out


def _data(loaded: Loaded, job: m.Job) -> list[str]:
    cl = runai_cluster(loaded, job.cluster)
    out: list[str] = []
    for nfs in cl.nfs:
        out += _flag("--nfs", f"path={nfs.path},server={nfs.server},mountpath={nfs.mount}"
                     + ("" if nfs.read_only else ",readwrite"))
    for pvc in cl.pvc:
        out += _flag("--existing-pvc", f"claimname={pvc.claim},path={pvc.mount}")
    return out


def common_args(loaded: Loaded, name: str) -> list[str]:
    """Quoted words of every submission of a job after its name, except the run id, the
    values of its point and the command."""
    job = loaded.project.jobs[name]
    cl, opts = runai_cluster(loaded, job.cluster), options(job)
    out = _flag("-p", cl.project) + _flag("-i", image_ref(loaded, job))
    policy = opts.image_pull_policy or cl.image_pull_policy
    out += _flag("--image-pull-policy", policy) if policy else []
    out += _resources(loaded, job) + _data(loaded, job)
    backoff = opts.backoff_limit if opts.backoff_limit is not None else cl.backoff_limit
    if backoff is not None and opts.workload == "training":  # a training flag only
        out += _flag("--backoff-limit", str(backoff))
    out += ["--preemptible"] if opts.preemptible else []
    out += _flag("--working-dir", opts.working_dir) if opts.working_dir else []
    for port in opts.ports:
        container, _, external = str(port).partition(":")
        out += _flag("--port", f"service-type=NodePort,container={container}"
                     + (f",external={external}" if external else ""))
    out += _flag("--external-url", f"container={JUPYTER_PORT}") if opts.jupyter else []
    return out + _env(loaded, name)


def _env(loaded: Loaded, name: str) -> list[str]:
    """-e words of values that are the same at every point (secrets and the run id expand
    when the workload is submitted), and of the built-ins the command uses."""
    job = loaded.project.jobs[name]
    static = static_params(loaded, name)
    columns = set(loaded.points[name].names)
    out: list[str] = []
    env = merged_env(loaded, job)
    if options(job).jupyter and jupyter_token(loaded):
        env = {JUPYTER_TOKEN: f"${{{JUPYTER_TOKEN}}}", **env}
    for key, value in env.items():
        if not _uses(value, columns):
            out += ["-e", word(parse_text(f"{key}={value}")[0], static)]
    for ref in used_names(job.command):
        if ref in static:  # built-ins reach the command as variables, like parameters
            out += _flag("-e", f"{variable(ref)}={static[ref]}")
    return out


def _uses(text: str, params: set[str]) -> bool:
    return any(isinstance(p, Param) and p.name in params for p in parse_text(text)[0])


def container_command(loaded: Loaded, name: str) -> list[Safe]:
    """The quoted words after ``--command --``: the job's code, through the image's run
    helper when it has one, else through bash."""
    job = loaded.project.jobs[name]
    code = command_code(job.command)
    if options(job).jupyter:
        token = f'"${{{JUPYTER_TOKEN}}}"' if jupyter_token(loaded) else ""
        code = code.rstrip() + " " + " ".join(JUPYTER_ARGS) + f" --NotebookApp.token={token}"
    if run_helper(loaded, job):
        return [shquote(RUN_HELPER), shquote(code)]
    return [shquote("bash"), shquote("-c"), shquote(code)]


class _PointEnv:
    """The -e words of one point: the values of the parameters its command uses, and env
    values filled with them."""

    def __init__(self, loaded: Loaded, name: str) -> None:
        job = loaded.project.jobs[name]
        self.points = loaded.points[name]
        self.static = static_params(loaded, name)
        params = set(self.points.names)
        self.refs = [r for r in used_names(job.command) if r in params]
        self.env = [(k, parse_text(v)[0]) for k, v in merged_env(loaded, job).items()
                    if _uses(v, params)]

    def __call__(self, index: int) -> list[str]:
        values = {**self.static,
                  **dict(zip(self.points.names, self.points.rows[index], strict=True))}
        out: list[str] = []
        for ref in self.refs:
            out += ["-e", f"{variable(ref)}={values[ref]}"]
        for key, parts in self.env:
            text = "".join(values[p.name] if isinstance(p, Param) else getattr(p, "text", "")
                           for p in parts)
            out += ["-e", f"{key}={text}"]
        return out


def plan(loaded: Loaded, cname: str) -> list[Group]:
    """A group per job of cluster ``cname`` (its table of points), and one for the
    cluster's scripts."""
    jobs = [n for n, j in loaded.project.jobs.items() if j.cluster == cname]
    out = [Group(f"runai/{cname}/{name}", ("jobs", name), (_table(loaded, cname, name),))
           for name in jobs]
    if jobs:
        out.append(Group(f"runai/{cname}", ("clusters", cname),
                         tuple(_cluster_files(loaded, cname, jobs))))
    return out


def _table(loaded: Loaded, cname: str, name: str) -> FileSpec:
    header = file_header(loaded.source.file, name)
    lines = ["# " + " ".join(header),
             "# index\tname\targuments of this point, one per cell (printf %b escapes)"]
    args = _PointEnv(loaded, name)
    for i, workload in enumerate(workload_names(loaded, name)):
        lines.append("\t".join((str(i), workload, *(tsv_cell(w) for w in args(i)))))
    return text_file(f"runai/{cname}/{name}.points.tsv", "\n".join(lines) + "\n")


def _job_summary(loaded: Loaded, name: str) -> dict[str, Any]:
    job = loaded.project.jobs[name]
    opts = options(job)
    return {"name": name, "common": common_args(loaded, name),
            "command": container_command(loaded, name),
            "size": loaded.points[name].size, "workload": opts.workload,
            "retries": job.retries if opts.workload == "training" else 0,
            "jupyter": opts.jupyter, "token": opts.jupyter and jupyter_token(loaded)}


def _cluster_files(loaded: Loaded, cname: str, jobs: list[str]) -> list[FileSpec]:
    summaries = [_job_summary(loaded, name) for name in jobs]
    words = [w for j in summaries for w in j["common"]]
    used = sorted({v for w in words for v in var_refs(w)} & set(loaded.project.secrets))
    cl = runai_cluster(loaded, cname)
    context = {"header": file_header(loaded.source.file), "cluster_name": cname,
               "jobs": summaries, "runai_project": cl.project, "bundle": bundle_label(loaded),
               "types": sorted({j["workload"] for j in summaries}),
               "final": FINAL, "resubmit": RESUBMIT}
    # Only scripts that submit read the secrets (delete_all.sh never does).
    return [*(FileSpec(f"runai/{cname}/{s}", f"runai/{s}.j2",
                       plain_context({**context,
                                      "secrets": used if s != "delete_all.sh" else []}),
                       executable=True, lint="shellcheck") for s in SCRIPTS),
            runtime_file(f"runai/{cname}", "runai", loaded.source.file)]
