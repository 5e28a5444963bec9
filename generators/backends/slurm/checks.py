"""What sbatch and Slurm accept, checked at build time: directives, sbatch options, time
limits, memory, recovery and staging of a job on a Slurm cluster."""

from __future__ import annotations

import re
from typing import Any

from ...loader import Loc
from ...project import model as m
from ...project.checker import BUILTINS, Checker, Loaded, suggest
from ...project.kind import JobScope
from ...project.semantics import check_text
from ...shell import SAFE
from .model import INT32, Resources, SlurmCluster, SlurmJob

# Slurm's time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (numbers of at most 9 digits).
SLURM_TIME = re.compile(r"(?:(?P<d>\d{1,9})-(?P<dh>\d{1,9})"
                        r"(?::(?P<dm>\d{1,9})(?::(?P<ds>\d{1,9}))?)?"
                        r"|(?P<a>\d{1,9})(?::(?P<b>\d{1,9})(?::(?P<c>\d{1,9}))?)?)"
                        r"|UNLIMITED|INFINITE|unlimited|infinite")
# Every long option of sbatch (Slurm 22.05: `sbatch --help` and the sbatch man page). sbatch
# also takes any unambiguous abbreviation of one (`--outp` is `--output`), so names must be
# given in full: an abbreviation could bring back an option refused below.
SBATCH_OPTIONS = frozenset((
    "account", "acctg-freq", "array", "batch", "bb", "bbf", "begin", "chdir", "cluster-constraint",
    "clusters", "comment", "constraint", "container", "contiguous", "core-spec",
    "cores-per-socket", "cpu-freq", "cpus-per-gpu", "cpus-per-task", "deadline", "delay-boot",
    "dependency", "distribution", "error", "exclude", "exclusive", "export", "export-file",
    "extra-node-info", "get-user-env", "gid", "gpu-bind", "gpu-freq", "gpus", "gpus-per-node",
    "gpus-per-socket", "gpus-per-task", "gres", "gres-flags", "help", "hint", "hold", "ignore-pbs",
    "input", "job-name", "kill-on-invalid-dep", "licenses", "mail-type", "mail-user", "mcs-label",
    "mem", "mem-bind", "mem-per-cpu", "mem-per-gpu", "mincpus", "network", "nice", "no-kill",
    "no-requeue", "nodefile", "nodelist", "nodes", "ntasks", "ntasks-per-core", "ntasks-per-gpu",
    "ntasks-per-node", "ntasks-per-socket", "open-mode", "output", "overcommit", "oversubscribe",
    "parsable", "partition", "power", "prefer", "priority", "profile", "propagate", "qos", "quiet",
    "reboot", "requeue", "reservation", "signal", "sockets-per-node", "spread-job", "switches",
    "test-only", "thread-spec", "threads-per-core", "time", "time-min", "tmp", "uid", "usage",
    "use-min-nodes", "verbose", "version", "wait", "wait-all-nodes", "wckey", "wrap"
))


# Launchers that start one process per GPU of each node (srun tasks with the environment
# of torch.distributed and MPI ranks).
PER_GPU = ("mpi", "torchrun")


# sbatch options that resources/cluster keys manage; setting them through `sbatch:` would clash.
MANAGED = {"job-name", "account", "partition", "qos", "nodes", "ntasks-per-node", "gpus",
           "gpus-per-node", "cpus-per-task", "mem", "time", "output", "error", "signal",
           "requeue", "no-requeue", "array", "dependency", "parsable", "export", "export-file",
           "comment"}


# Options after which sbatch would not submit the script and print its job id, which
# submit_all.sh depends on (or would wait for the job to end).
NOT_SUBMITTING = {"help", "usage", "version", "wrap", "test-only", "wait"}


# Options that put the job out of reach of the scripts' own queries (no -M, no user switch).
ELSEWHERE = {"clusters", "uid", "gid"}


# Options sbatch refuses together with --mem.
MEM_EXCLUSIVE = ("mem-per-cpu", "mem-per-gpu")


SIGNAL = re.compile(r"((R|B|RB):)?[A-Z0-9]+(@\d{1,5})?")


DIRECTIVE_VALUE = SAFE  # an #SBATCH value needs no quoting


def effective_resources(cluster: SlurmCluster, job: SlurmJob) -> Resources:
    """A job's resources over its cluster's defaults."""
    return cluster.resources.model_copy(update=job.resources.model_dump(exclude_unset=True))


def _directives(ck: Checker, loc: Loc, obj: SlurmCluster | SlurmJob, known: set[str]) -> None:
    for key in ("account", "partition", "qos"):
        value = getattr(obj, key)
        if value is not None and not (DIRECTIVE_VALUE.fullmatch(value)
                                      or re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value)):
            ck.add((*loc, key), f"{value!r} is not a valid Slurm {key} name; use letters, digits "
                   "and _@%+=:,./-, or a single ${SECRET} reference")
    for key, value in obj.sbatch.items():
        if problem := sbatch_option_problem(key):
            ck.add((*loc, "sbatch", key), problem, key=True)
        text = m._scalar_text(value)
        if not isinstance(value, bool) and not DIRECTIVE_VALUE.fullmatch(text):
            ck.add((*loc, "sbatch", key), f"{text!r} cannot be written in an #SBATCH line "
                   "(no spaces, quotes or shell syntax)")


def sbatch_option_problem(key: str) -> str | None:
    """Why ``key`` cannot be an option of ``sbatch:`` (None when it can).

    >>> sbatch_option_problem("constraint") is None
    True
    >>> print(sbatch_option_problem("outp"))  # doctest: +NORMALIZE_WHITESPACE
    'outp' is not an sbatch option: sbatch would read it as --output, which jobpack sets
    itself (use the resources/cluster keys instead)
    >>> sbatch_option_problem("constrant")
    "'constrant' is not an sbatch option (did you mean 'constraint'?)"
    """
    if key.startswith("-"):
        return f"{key!r} is not an sbatch long option name (write it without the leading '--')"
    if key == "comment":
        return ("--comment is set by jobpack itself: it carries the tag by which a submission "
                "cut short is found again on Slurm")
    if key in ELSEWHERE:
        return (f"--{key} submits the job where the scripts' squeue, sacct and scancel do not "
                "look, so its state could not be read, nor a submission cut short found again")
    if key in MANAGED:
        return f"--{key} is set by jobpack itself; use the resources/cluster keys instead"
    if key in NOT_SUBMITTING:
        return (f"--{key} would stop sbatch from submitting the script and printing its job id, "
                "which submit_all.sh needs")
    if key in SBATCH_OPTIONS:
        return None
    full = sorted(o for o in SBATCH_OPTIONS if o.startswith(key)) if key else []
    if len(full) == 1:
        managed = (", which jobpack sets itself (use the resources/cluster keys instead)"
                   if full[0] in MANAGED | NOT_SUBMITTING else "; write the full name")
        return f"{key!r} is not an sbatch option: sbatch would read it as --{full[0]}{managed}"
    if full:
        return (f"{key!r} is not an sbatch option (it abbreviates "
                f"{', '.join('--' + o for o in full[:4])}{', ...' if len(full) > 4 else ''}); "
                "write the full name")
    short = " (write long option names, e.g. nodes for -N)" if len(key) == 1 else ""
    return f"{key!r} is not an sbatch option{suggest(key, SBATCH_OPTIONS)}{short}"


def _recovery(ck: Checker, loc: Loc, job: SlurmJob, retries: int, known: set[str],
              builtins: set[str]) -> None:
    for i, rung in enumerate(job.escalate):
        _time(ck, (*loc, "escalate", i, "time"), rung.time)
        for key in ("partition", "qos"):
            value = getattr(rung, key)
            if value is not None and not DIRECTIVE_VALUE.fullmatch(value):
                ck.add((*loc, "escalate", i, key), f"{value!r} is not a valid Slurm {key} name")
        if rung.gpus is not None and rung.gpus_per_node is not None:
            ck.add((*loc, "escalate", i), "give either gpus or gpus_per_node, not both")
    if job.escalate and not retries:
        ck.add((*loc, "escalate"), "an escalation ladder needs retries (how many resubmissions "
               "may climb it)")
    if job.on_timeout is not None:
        if job.resources.signal is not None:
            ck.add((*loc, "on_timeout"), "on_timeout sets --signal itself; remove "
                   "resources.signal")
        if job.on_timeout.run is not None:
            check_text(ck, (*loc, "on_timeout", "run"), job.on_timeout.run, known, builtins)
        if job.on_timeout.requeue and job.resources.requeue is False:
            ck.add((*loc, "on_timeout", "requeue"), "requeue needs resources.requeue not false")


def _staging(ck: Checker, loc: Loc, job: SlurmJob, proj: m.Project) -> None:
    for key, items in (("stage_in", job.stage_in), ("stage_out", job.stage_out)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.sync not in proj.syncs:
                ck.add((*loc, key, i, "sync"), f"unknown sync {item.sync!r}"
                       f"{suggest(item.sync, proj.syncs)}")
            elif item.sync in seen:
                ck.add((*loc, key, i, "sync"), f"sync {item.sync!r} is listed twice")
            seen.add(item.sync)
    if job.stage_out and job.resources.signal is not None and job.on_timeout is None:
        ck.add((*loc, "stage_out"), "stage_out sets --signal itself (its final pass runs at "
               "on_timeout.before seconds before the time limit); remove resources.signal")


def _resources(ck: Checker, loc: Loc, res: Resources, job: SlurmJob) -> None:
    rloc = (*loc, "resources")
    if "time" in job.resources.model_fields_set:
        _time(ck, (*rloc, "time"), res.time)
    if res.gpus is not None and res.gpus_per_node is not None:
        ck.add(rloc, "give either gpus (for the whole job) or gpus_per_node, not both")
    if res.gpu_type and res.gpus is None and res.gpus_per_node is None:
        ck.add((*rloc, "gpu_type"), "gpu_type needs gpus or gpus_per_node")
    if res.signal is not None and not SIGNAL.fullmatch(res.signal):
        ck.add((*rloc, "signal"), f"{res.signal!r} is not [R:|B:]SIG[@SECONDS] (e.g. B:USR1@120)")
    if job.launcher in PER_GPU and res.ntasks_per_node is None and not res.gpus_per_node:
        ck.add((*loc, "launcher"), f"launcher {job.launcher} starts one process per GPU: set "
               "resources.gpus_per_node (or ntasks_per_node)")
    if job.launcher == "ray" and res.ntasks_per_node not in (None, 1):
        ck.add((*rloc, "ntasks_per_node"), "the ray launcher starts one Ray node per host; "
               "leave ntasks_per_node unset")


def time_minutes(text: str) -> int | None:
    """Minutes of a Slurm time limit (None for UNLIMITED or a text Slurm would reject).

    >>> [time_minutes(t) for t in ("90", "1:30", "2:00:00", "1-0", "1-2:30", "0:0:61")]
    [90, 2, 120, 1440, 1590, 2]
    """
    match = SLURM_TIME.fullmatch(text)
    if not match or text.isalpha():
        return None
    n = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "d" in n:
        seconds = ((n["d"] * 24 + n["dh"]) * 60 + n.get("dm", 0)) * 60 + n.get("ds", 0)
    elif "c" in n:
        seconds = (n["a"] * 60 + n["b"]) * 60 + n["c"]
    else:
        seconds = n["a"] * 60 + n.get("b", 0)
    return -(-seconds // 60)  # Slurm rounds seconds up to the next minute


def _memory_options(ck: Checker, loc: Loc, res: Resources, sbatch: dict[str, Any]) -> None:
    """sbatch refuses --mem, --mem-per-cpu and --mem-per-gpu together."""
    given = [k for k in MEM_EXCLUSIVE if k in sbatch and sbatch[k] is not False]
    given = (["mem"] if res.mem is not None else []) + given
    if len(given) > 1:
        ck.add((*loc, "sbatch"), f"sbatch refuses {' and '.join('--' + k for k in given)} "
               "together; give one (resources.mem is --mem)")


def _time(ck: Checker, loc: Loc, time: str | int | None) -> None:
    if time is None:
        return
    text = str(time)
    if not SLURM_TIME.fullmatch(text):
        hint = " (Slurm takes no units: write 24:00:00 or 1-00:00:00)" if re.search(
            r"[hmsd]", text, re.I) else ""
        ck.add(loc, f"Slurm would reject time {text!r}: use minutes, M:S, H:M:S, D-H, D-H:M "
               f"or D-H:M:S{hint}")
    elif (minutes := time_minutes(text)) is not None and minutes > INT32:
        ck.add(loc, f"time {text!r} is {minutes} minutes; Slurm takes at most {INT32} "
               "(or UNLIMITED)")


def check_cluster(ck: Checker, loc: Loc, cluster: SlurmCluster, known: set[str]) -> None:
    _directives(ck, loc, cluster, known)
    _time(ck, (*loc, "resources", "time"), cluster.resources.time)


def check_job(ck: Checker, loaded: Loaded, scope: JobScope) -> None:
    """Rules of a job on a Slurm cluster."""
    loc, job, points = scope.loc, scope.job, scope.points
    opts, cluster = options(job), scope.cluster
    assert isinstance(cluster, SlurmCluster)
    _directives(ck, loc, opts, scope.known)
    res = effective_resources(cluster, opts)
    _resources(ck, loc, res, opts)
    _memory_options(ck, loc, res, {**cluster.sbatch, **opts.sbatch})
    proj = loaded.project
    builtins = {b for b in BUILTINS if b != "user" or proj.user}
    _recovery(ck, loc, opts, job.retries, scope.known, builtins)
    _staging(ck, loc, opts, proj)
    if job.sweep and not job.sweep.chunk and points.size > cluster.max_array_size:
        ck.add((*loc, "sweep"), f"{points.size} points exceed the max_array_size "
               f"({cluster.max_array_size}) of cluster {job.cluster!r}; remove 'chunk: false' "
               "to split the array into chunks")


def options(job: m.Job) -> SlurmJob:
    """The Slurm keys of a job on a Slurm cluster."""
    assert isinstance(job.options, SlurmJob), "not a job on a Slurm cluster"
    return job.options
