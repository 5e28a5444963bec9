"""Checks that need the whole project: references, cycles, placeholders, sweeps, times."""

from __future__ import annotations

import itertools
import math
import re
from typing import TYPE_CHECKING, Any

from ..backends.ngc import rules as ngc_rules
from ..errors import Problem
from ..loader import dotted, parse_json
from ..placeholders import RUN_ID_SAMPLE, check_code, used_names
from ..shell import SAFE, Param, parse_text, var_refs
from . import model as m
from .validate import (
    BUILTINS,
    PLATFORM_VARS,
    SLURM_TIME,
    Loaded,
    Points,
    is_number,
    suggest,
    text_problem,
)

if TYPE_CHECKING:
    from ..loader import Loc
    from .validate import _Checker

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
PROSE = {"description", "login"}  # text that never reaches a shell line
# At most this many points per sweep: far beyond real use, and small enough that a mistaken
# product is refused at once instead of exhausting memory.
MAX_POINTS = 100_000
DIRECTIVE_VALUE = SAFE  # an #SBATCH value needs no quoting


def effective_resources(loaded: Loaded, job: m.Job) -> m.Resources:
    """A job's resources over its cluster's defaults."""
    cluster = loaded.project.clusters[job.cluster]
    assert isinstance(cluster, m.SlurmCluster)
    base = cluster.resources
    return base.model_copy(update=job.resources.model_dump(exclude_unset=True))


def static_params(loaded: Loaded, job: str) -> dict[str, str]:
    """Values of the built-in parameters known when the bundle is built."""
    out = {"project": loaded.project.project, "job": job}
    if loaded.project.user:
        out["user"] = loaded.project.user
    return out


def merged_env(loaded: Loaded, job: m.Job) -> dict[str, str]:
    """Project env, then the cluster's, then the job's (later ones win)."""
    out: dict[str, str] = {}
    for env in (loaded.project.env, loaded.project.clusters[job.cluster].env, job.env):
        out.update({k: m._scalar_text(v) for k, v in env.items()})
    return out


def check(ck: _Checker, loaded: Loaded, cluster_names: set[str], job_names: set[str]) -> None:
    """Add every semantic problem of ``loaded`` to ``ck``; fill ``loaded.points``."""
    proj = loaded.project
    _names(ck, proj)
    known_vars = set(proj.secrets) | set(proj.env)
    builtins = {b for b in BUILTINS if b != "user" or proj.user}
    for name, cl in proj.clusters.items():
        if isinstance(cl, m.NgcCluster):
            ngc_rules.cluster(ck, ("clusters", name), cl)
        else:
            _directives(ck, ("clusters", name), cl, known_vars | set(cl.env))
            _time(ck, ("clusters", name, "resources", "time"), cl.resources.time)
        _strings(ck, ("clusters", name), cl.model_dump(by_alias=True, exclude=PROSE | {"env"}),
                 known_vars | set(cl.env))
        _strings(ck, ("clusters", name, "env"), cl.env, known_vars | set(cl.env), params=builtins)
    _strings(ck, ("env",), proj.env, known_vars, params=builtins)
    for name, job in proj.jobs.items():
        _job(ck, loaded, name, job, cluster_names, job_names)
    _cycles(ck, proj)
    for name, place in proj.storage.items():
        _storage(ck, ("storage", name), place, known_vars)
    for name, sync in proj.syncs.items():
        _sync(ck, ("syncs", name), sync, proj, known_vars, builtins - {"job"})
    for name, image in proj.images.items():
        _image(ck, ("images", name), image)


def _image(ck: _Checker, loc: Loc, image: m.Image) -> None:
    if image.dockerfile is not None:
        ck.add((*loc, "dockerfile"), "building images is not supported by this version; "
               "rehost an existing image with source and tags", key=True)
    refs: list[tuple[Loc, str]] = [(("source",), image.source)] if image.source else []
    refs += [(("tags", i), t) for i, t in enumerate(image.tags)]
    for sub, ref in refs:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", ref):
            ck.add((*loc, *sub), f"{ref!r} is not an image reference (e.g. "
                   "nvcr.io/ORG/REPO:TAG)")
    if image.source is not None and not image.tags:
        ck.add(loc, "an image with a source needs tags to push it to")


def _names(ck: _Checker, proj: m.Project) -> None:
    seen: set[str] = set()
    for i, name in enumerate(proj.secrets):
        if not re.fullmatch(m.ENV_NAME, name):
            ck.add(("secrets", i), f"{name!r} is not a valid environment variable name")
        if name in seen:
            ck.add(("secrets", i), f"secret {name!r} is listed twice")
        seen.add(name)
    envs: list[tuple[Loc, dict[str, Any]]] = [(("env",), proj.env)]
    envs += [(("clusters", n, "env"), c.env) for n, c in proj.clusters.items()]
    envs += [(("jobs", n, "env"), j.env) for n, j in proj.jobs.items()]
    for loc, env in envs:
        for key, value in env.items():
            if not re.fullmatch(m.ENV_NAME, key):
                ck.add((*loc, key), f"{key!r} is not a valid environment variable name", key=True)
            if key in seen and "${" not in str(value):
                ck.add((*loc, key), f"{key!r} is a secret; secrets are never given values in "
                       "project.yaml (set them in secrets.env at run time)", key=True)


def _directives(ck: _Checker, loc: Loc, obj: m.SlurmCluster | m.Job, known: set[str]) -> None:
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


def _strings(ck: _Checker, loc: Loc, value: Any, known: set[str], *,
             params: set[str] | None = None) -> None:
    """Check every string below ``value``: NUL bytes, placeholders, ``${NAME}`` references.

    ``params`` is the set of ``{{ names }}`` allowed there; None means none are allowed.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            _strings(ck, (*loc, k), v, known, params=params)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _strings(ck, (*loc, i), v, known, params=params)
    elif isinstance(value, str):
        _text(ck, loc, value, known, params)


def _text(ck: _Checker, loc: Loc, text: str, known: set[str], params: set[str] | None) -> None:
    if "\x00" in text:
        return  # reported, as for every string, by validate.check_characters
    parts, errors = parse_text(text)
    for err in errors:
        ck.add(loc, err)
    for part in parts:
        if isinstance(part, Param):
            if params is None:
                ck.add(loc, f"'{{{{ {part.name} }}}}' is not allowed here; parameters may be "
                       "used in command and env")
            elif part.name not in params:
                ck.add(loc, f"undefined parameter '{{{{ {part.name} }}}}'"
                       f"{suggest(part.name, params)}; defined here: {', '.join(sorted(params))}")
    for name in var_refs(text):
        if name not in known and not PLATFORM_VARS.fullmatch(name):
            ck.add(loc, f"'${{{name}}}' is not declared in 'secrets'{suggest(name, known)}; "
                   "list it there (its value is read at run time, never written to out/)")


def _job(ck: _Checker, loaded: Loaded, name: str, job: m.Job, cluster_names: set[str],
         job_names: set[str]) -> None:
    proj, loc = loaded.project, ("jobs", name)
    for i, dep in enumerate(job.after):
        if dep == name:
            ck.add((*loc, "after", i), "a job cannot run after itself")
        elif dep not in job_names:
            ck.add((*loc, "after", i), f"unknown step {dep!r}{suggest(dep, job_names)}")
        elif (dep in proj.jobs and proj.jobs[dep].cluster != job.cluster
              and {job.cluster, proj.jobs[dep].cluster} <= set(proj.clusters)):
            ck.add((*loc, "after", i), f"step {dep!r} runs on cluster "
                   f"{proj.jobs[dep].cluster!r}; Slurm dependencies work within one cluster")
    if job.cluster not in cluster_names:
        ck.add((*loc, "cluster"), f"unknown cluster {job.cluster!r}"
               f"{suggest(job.cluster, cluster_names)}")
    points = _sweep(ck, loaded, loc, job)
    loaded.points[name] = points
    cluster = proj.clusters.get(job.cluster)
    known = set(proj.secrets) | set(proj.env) | set(job.env) | set(cluster.env if cluster else ())
    params = set(points.names) | {b for b in BUILTINS if b != "user" or proj.user}
    params |= {"config_path"} if job.config is not None else set()
    _strings(ck, (*loc, "env"), job.env, known, params=params)
    _command(ck, loc, job, known, params)
    _code_values(ck, loaded, name, job, points)
    rest = job.model_dump(by_alias=True,
                          exclude=PROSE | {"command", "env", "sweep", "on_timeout", "config"})
    _strings(ck, loc, rest, known)
    if job.config is not None:
        _strings(ck, (*loc, "config"), job.config.model_dump(by_alias=True), known,
                 params=params - {"config_path"})
    if cluster is None:
        return
    if isinstance(cluster, m.NgcCluster):
        _only(ck, loc, job, SLURM_ONLY, "slurm")
        ngc_rules.job(ck, loaded, loc, job, cluster)
        return
    _only(ck, loc, job, ngc_rules.NGC_ONLY, "ngc")
    _directives(ck, loc, job, known)
    _resources(ck, loc, effective_resources(loaded, job), job)
    _memory_options(ck, loc, effective_resources(loaded, job), {**cluster.sbatch, **job.sbatch})
    _recovery(ck, loc, job, known, {b for b in BUILTINS if b != "user" or proj.user})
    _staging(ck, loc, job, proj)
    if job.sweep and not job.sweep.chunk and points.size > cluster.max_array_size:
        ck.add((*loc, "sweep"), f"{points.size} points exceed the max_array_size "
               f"({cluster.max_array_size}) of cluster {job.cluster!r}; remove 'chunk: false' "
               "to split the array into chunks")


def _code_values(ck: _Checker, loaded: Loaded, name: str, job: m.Job, points: Points) -> None:
    """Placeholders in shell code that cannot stand where they do, or whose values may not
    (values are known here: sweep points and built-ins), at FILE:LINE:COL of each."""
    loc = ("jobs", name)
    columns = {n: [row[i] for row in points.rows] for i, n in enumerate(points.names)}
    static = {k: [v] for k, v in static_params(loaded, name).items()}
    cluster = loaded.project.clusters.get(job.cluster)
    configs = getattr(cluster, "configs", None) or ""
    known: dict[str, list[str]] = {**static, **columns, "run_id": [RUN_ID_SAMPLE],
                                   "config_path": [f"{configs}/{name}/point.py"]}
    codes: list[tuple[tuple[str, ...], Any]] = [(("command",), job.command)]
    if job.on_timeout is not None and job.on_timeout.run is not None:
        codes.append((("on_timeout", "run"), job.on_timeout.run))
    for sub, code in codes:
        if isinstance(code, str):
            for offset, message in check_code(code, lambda n: known.get(n, [])):
                line, col = loaded.source.within((*loc, *sub), offset)
                ck.problems.append(Problem(loaded.source.file, line, col,
                                           dotted((*loc, *sub)), message))
    if isinstance(cluster, m.NgcCluster):
        _ngc_carried(ck, loc, job, columns)


def _ngc_carried(ck: _Checker, loc: Loc, job: m.Job, columns: dict[str, list[str]]) -> None:
    """NGC jobs get their parameters' values as --env-var KEY:VALUE, which ngc takes only
    without line breaks and up to 2048 characters."""
    for ref in used_names(job.command):
        for n, value in enumerate(columns.get(ref, [])):
            if "\n" in value or len(value) > 2048:
                why = "a line break" if "\n" in value else "more than 2048 characters"
                ck.add((*loc, "command"), f"'{{{{ {ref} }}}}': value {n + 1} has {why}; an "
                       "NGC job receives each value as an environment variable "
                       "(ngc batch run --env-var), which cannot carry it")
                break


SLURM_ONLY = ("resources", "account", "partition", "qos", "launcher", "sbatch", "escalate",
              "on_timeout", "stage_in", "stage_out", "after")


def _only(ck: _Checker, loc: Loc, job: m.Job, keys: tuple[str, ...], kind: str) -> None:
    """Keys of one cluster kind given to a job of another kind."""
    for key in keys:
        if key in job.model_fields_set:
            ck.add((*loc, key), f"{key!r} applies to {kind} clusters only; cluster "
                   f"{job.cluster!r} is not one", key=True)


def _recovery(ck: _Checker, loc: Loc, job: m.Job, known: set[str], builtins: set[str]) -> None:
    for i, rung in enumerate(job.escalate):
        _time(ck, (*loc, "escalate", i, "time"), rung.time)
        for key in ("partition", "qos"):
            value = getattr(rung, key)
            if value is not None and not DIRECTIVE_VALUE.fullmatch(value):
                ck.add((*loc, "escalate", i, key), f"{value!r} is not a valid Slurm {key} name")
        if rung.gpus is not None and rung.gpus_per_node is not None:
            ck.add((*loc, "escalate", i), "give either gpus or gpus_per_node, not both")
    if job.escalate and not job.retries:
        ck.add((*loc, "escalate"), "an escalation ladder needs retries (how many resubmissions "
               "may climb it)")
    if job.on_timeout is not None:
        if job.resources.signal is not None:
            ck.add((*loc, "on_timeout"), "on_timeout sets --signal itself; remove "
                   "resources.signal")
        if job.on_timeout.run is not None:
            _text(ck, (*loc, "on_timeout", "run"), job.on_timeout.run, known, builtins)
        if job.on_timeout.requeue and job.resources.requeue is False:
            ck.add((*loc, "on_timeout", "requeue"), "requeue needs resources.requeue not false")


def _staging(ck: _Checker, loc: Loc, job: m.Job, proj: m.Project) -> None:
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


def _storage(ck: _Checker, loc: Loc, place: m.Storage, known: set[str]) -> None:
    _strings(ck, loc, place.model_dump(exclude={"port"}), known)
    if place.password is not None and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}",
                                                      place.password):
        ck.add((*loc, "password"), "a password is never written in project.yaml: list a secret "
               "and refer to it, e.g. password: ${FTP_PASS}")


def endpoint(text: str, storage: dict[str, m.Storage]) -> tuple[str | None, str]:
    """Split a sync endpoint into (storage name or None for a local path, path).

    >>> endpoint("pbss:launch/x", {"pbss": None}), endpoint("/tmp/a:b", {})
    (('pbss', 'launch/x'), (None, '/tmp/a:b'))
    """
    head, sep, rest = text.partition(":")
    if sep and re.fullmatch(m.NAME, head) and not text.startswith((".", "/", "~")):
        return head, rest
    return None, text


def _sync(ck: _Checker, loc: Loc, sync: m.Sync, proj: m.Project, known: set[str],
          builtins: set[str]) -> None:
    for key, text in (("from", sync.from_), ("to", sync.to)):
        place, _path = endpoint(text, proj.storage)
        # A place that is declared but invalid has its own error; only a name declared
        # nowhere is unknown here.
        if place is not None and place not in ck.declared.get("storage", proj.storage):
            ck.add((*loc, key), f"unknown storage {place!r}{suggest(place, proj.storage)} "
                   "(a local path with ':' must start with '/' or '.')")
        _text(ck, (*loc, key), text, known, builtins)
    kinds = [proj.storage[n].kind for n, _ in (endpoint(t, proj.storage)
                                                for t in (sync.from_, sync.to))
             if n is not None and n in proj.storage]
    remote = [k for k in kinds if k in ("ssh", "ftp")]
    if len(remote) > 1 or (remote and "rclone" in kinds):
        ck.add(loc, "one side of a sync may be an ssh host or an FTP server, the other must "
               "be local (for rclone remotes on both sides, use an rclone sftp remote)")
    if "ftp" in kinds and (sync.include or sync.pack):
        ck.add(loc, "an FTP sync takes exclude, but not include or pack")
    if sync.pack is not None and "rclone" in kinds:
        ck.add((*loc, "pack"), "pack: tar works with ssh hosts and local folders (rsync), not "
               "with rclone remotes")
    if sync.pack is not None and sync.include:
        ck.add((*loc, "pack"), "pack: tar cannot be combined with include")
    if sync.delete is not None:
        ck.add((*loc, "delete"), "delete is not supported by this version; mode: sync "
               "deletes what the source no longer has")
    _strings(ck, loc, {"include": sync.include, "exclude": sync.exclude}, known)


def _command(ck: _Checker, loc: Loc, job: m.Job, known: set[str], params: set[str]) -> None:
    if isinstance(job.command, str):
        # Shell code: ${NAME} is checked, $name (a shell variable of the code itself) is not.
        _text(ck, (*loc, "command"), job.command, known, params)
    else:
        _strings(ck, (*loc, "command"), list(job.command), known, params=params)


def _resources(ck: _Checker, loc: Loc, res: m.Resources, job: m.Job) -> None:
    rloc = (*loc, "resources")
    if "time" in job.resources.model_fields_set:
        _time(ck, (*rloc, "time"), res.time)
    if res.gpus is not None and res.gpus_per_node is not None:
        ck.add(rloc, "give either gpus (for the whole job) or gpus_per_node, not both")
    if res.gpu_type and res.gpus is None and res.gpus_per_node is None:
        ck.add((*rloc, "gpu_type"), "gpu_type needs gpus or gpus_per_node")
    if res.signal is not None and not SIGNAL.fullmatch(res.signal):
        ck.add((*rloc, "signal"), f"{res.signal!r} is not [R:|B:]SIG[@SECONDS] (e.g. B:USR1@120)")
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


def _memory_options(ck: _Checker, loc: Loc, res: m.Resources, sbatch: dict[str, Any]) -> None:
    """sbatch refuses --mem, --mem-per-cpu and --mem-per-gpu together."""
    given = [k for k in MEM_EXCLUSIVE if k in sbatch and sbatch[k] is not False]
    given = (["mem"] if res.mem is not None else []) + given
    if len(given) > 1:
        ck.add((*loc, "sbatch"), f"sbatch refuses {' and '.join('--' + k for k in given)} "
               "together; give one (resources.mem is --mem)")


def _time(ck: _Checker, loc: Loc, time: str | int | None) -> None:
    if time is None:
        return
    text = str(time)
    if not SLURM_TIME.fullmatch(text):
        hint = " (Slurm takes no units: write 24:00:00 or 1-00:00:00)" if re.search(
            r"[hmsd]", text, re.I) else ""
        ck.add(loc, f"Slurm would reject time {text!r}: use minutes, M:S, H:M:S, D-H, D-H:M "
               f"or D-H:M:S{hint}")
    elif (minutes := time_minutes(text)) is not None and minutes > m.INT32:
        ck.add(loc, f"time {text!r} is {minutes} minutes; Slurm takes at most {m.INT32} "
               "(or UNLIMITED)")


def _sweep(ck: _Checker, loaded: Loaded, loc: Loc, job: m.Job) -> Points:
    sweep = job.sweep
    if sweep is None:
        return Points()
    sloc = (*loc, "sweep")
    errors_before = len(ck.problems)
    sources: list[Points] = []
    if sweep.sequences is not None:
        sources.append(_sequences(ck, loaded, (*sloc, "sequences"), sweep.sequences))
    if sweep.points is not None:
        sources.append(_point_list(ck, (*sloc, "list"), sweep.points))
    if sweep.matrix is not None:
        sources.append(_matrix(ck, (*sloc, "matrix"), sweep.matrix))
    if not sources:
        ck.add(sloc, "a sweep needs at least one of matrix, list or sequences")
        return Points()
    names = _param_names(ck, sloc, sources)
    if not _few_enough(ck, sloc, [s.size for s in sources]):
        return Points(tuple(names), ())
    rows = [tuple(itertools.chain.from_iterable(combo))
            for combo in itertools.product(*(s.rows for s in sources))]
    if not rows and len(ck.problems) == errors_before:
        ck.add(sloc, "the sweep has no points")
    numeric = tuple(sorted({n for s in sources for n in s.numeric}))
    return Points(tuple(names), tuple(rows), numeric)


def _few_enough(ck: _Checker, loc: Loc, sizes: list[int]) -> bool:
    """Whether a product of ``sizes`` points stays within MAX_POINTS (computed before any
    point is, so that a huge matrix is refused at once instead of exhausting memory)."""
    total = math.prod(sizes)
    if total > MAX_POINTS:
        ck.add(loc, f"the sweep has {total} points; at most {MAX_POINTS} are supported "
               "(split the job, or sweep inside the job)")
    return total <= MAX_POINTS


def _param_names(ck: _Checker, loc: Loc, sources: list[Points]) -> list[str]:
    names: list[str] = []
    for n in (n for src in sources for n in src.names):
        if n in names:
            ck.add(loc, f"parameter {n!r} is defined by two sweep sources")
        if n in BUILTINS:
            ck.add(loc, f"parameter {n!r} would hide the built-in '{{{{ {n} }}}}'")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", n):
            ck.add(loc, f"parameter name {n!r} is not an identifier of at most "
                   f"{m.NAME_MAX} characters")
        names.append(n)
    return names


def _matrix(ck: _Checker, loc: Loc, matrix: dict[str, list[m.Scalar]]) -> Points:
    for key, values in matrix.items():
        if not values:
            ck.add((*loc, key), "a matrix axis needs at least one value")
    if not _few_enough(ck, loc, [len(v) for v in matrix.values()]):
        return Points(tuple(matrix), ())
    rows = itertools.product(*([m._scalar_text(v) for v in vals] for vals in matrix.values()))
    return Points(tuple(matrix), tuple(rows), tuple(sorted(
        k for k, vals in matrix.items() if vals and all(is_number(v) for v in vals))))


def _point_list(ck: _Checker, loc: Loc, points: list[dict[str, m.Scalar]]) -> Points:
    if not points:
        return Points((), ())
    names = tuple(points[0])
    for i, point in enumerate(points):
        if set(point) != set(names):
            ck.add((*loc, i), f"every point must set the same parameters ({', '.join(names)})")
    rows = tuple(tuple(m._scalar_text(p.get(n, "")) for n in names) for p in points)
    return Points(names, rows, tuple(sorted(
        n for n in names if all(is_number(p.get(n)) for p in points))))


def _sequences(ck: _Checker, loaded: Loaded, loc: Loc, rel: str) -> Points:
    empty = Points(("sequence", "length"), ())
    if rel.startswith("/"):
        ck.add(loc, f"sequences file {rel!r}: give the path relative to the project file")
        return empty
    found, data = ck.data_file(loc, rel, f"sequences file {rel!r}", parse_json)
    if not found:
        return empty
    if not isinstance(data, dict) or not data:
        ck.add(loc, f"sequences file {rel!r} must be a non-empty JSON object "
               "{\"<sequence>\": <length>, ...}")
        return empty
    bad = [k for k, v in data.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        ck.add(loc, f"sequences file {rel!r}: length of {_short(bad[0])} is not a "
               "non-negative integer" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    for name in data:
        if problem := text_problem(name, m.VALUE):
            ck.add(loc, f"sequences file {rel!r}: the sequence name {_short(name)} {problem}")
            return empty
    if not _few_enough(ck, loc, [len(data)]):
        return empty
    return Points(("sequence", "length"), tuple((k, str(v)) for k, v in data.items()),
                  ("length",))


def _short(text: str) -> str:
    r"""A value for a message: quoted, escaped, and cut when long.

    >>> _short("a\nb"), len(_short("x" * 100))
    ("'a\\nb'", 63)
    """
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:60] + "..."


def _cycles(ck: _Checker, proj: m.Project) -> None:
    """Report each dependency cycle once, walking ``after`` depth first with a stack of its
    own (a chain of thousands of jobs must not exhaust Python's)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[str]] = set()
    for root in proj.jobs:
        if root in state:
            continue
        trail, stack = [root], [(root, iter(enumerate(proj.jobs[root].after)))]
        state[root] = 1
        while stack:
            name, deps = stack[-1]
            for i, dep in deps:
                if dep not in proj.jobs or dep == name:
                    continue  # unknown steps and self-dependencies are reported by _job
                if state.get(dep) == 1:
                    cycle = [*trail[trail.index(dep):], dep]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        shown = cycle if len(cycle) <= 12 else [
                            *cycle[:5], f"... ({len(cycle) - 8} more)", *cycle[-3:]]
                        ck.add(("jobs", name, "after", i),
                               f"dependency cycle: {' -> '.join(shown)}")
                elif dep not in state:
                    state[dep] = 1
                    trail.append(dep)
                    stack.append((dep, iter(enumerate(proj.jobs[dep].after))))
                    break
            else:
                state[name] = 2
                trail.pop()
                stack.pop()
