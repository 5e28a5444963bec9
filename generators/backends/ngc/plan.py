"""NGC backend: one ``ngc batch run`` per sweep point, launched from a table and tracked in a
ledger of job ids (never in NGC's 7-day job history)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml

from ...placeholders import command_code, used_names
from ...plan import FileSpec, Group, file_header, plain_context, runtime_file, text_file
from ...project import images
from ...project import model as m
from ...project.checker import Loaded
from ...project.semantics import merged_env, static_params
from ...shell import Param, parse_text, shquote, tsv_cell, var_refs, variable, word
from .model import NgcCluster
from .rules import MAX_RUNTIME, options

SCRIPTS = ("launch_all.sh", "monitor.sh", "status.sh", "ctl.sh")
# Scripts that launch read the secrets of the launch flags (ctl.sh only for resubmit); the
# others (status.sh, exec.sh) never ask for them.
LAUNCHERS = ("launch_all.sh", "monitor.sh", "ctl.sh")
# NGC's terminal states (UNKNOWN left out: the monitor keeps asking rather than act on it),
# and the failures a relaunch may cure; KILLED_BY_USER and CANCELED are left alone.
RELAUNCH = ("FAILED", "FAILED_RUN_LIMIT_EXCEEDED", "KILLED_BY_SYSTEM", "TASK_LOST",
            "RESOURCE_GRANT_DENIED", "RESOURCE_LIMIT_EXCEEDED", "INFINITY_POOL_MISSING",
            "IM_INTERNAL_ERROR", "RESOURCE_RELEASED")
FINAL = ("FINISHED_SUCCESS", "KILLED_BY_USER", "KILLED_BY_ADMIN", "CANCELED", *RELAUNCH)


def ngc_cluster(loaded: Loaded, name: str) -> NgcCluster:
    cluster = loaded.project.clusters[name]
    assert isinstance(cluster, NgcCluster), f"{name} is not an NGC cluster"
    return cluster


def point_keys(names: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> list[str]:
    """A stable, unique key per point, from its values (not its position), for job names.

    >>> point_keys(("sequence", "length"), (("0a1b", "155"), ("ff", "3")))
    ['0a1b', 'ff']
    >>> point_keys(("lr", "opt"), (("0.1", "adam"), ("1e-2", "s g d")))
    ['0.1_adam', 'p0f70bf0abf']
    >>> point_keys((), ((),))
    ['']

    Keys name config files too, so they differ in more than case (``ab.py`` and ``AB.py`` are
    one file on a case-insensitive file system):

    >>> point_keys(("sequence", "length"), (("ab", "1"), ("AB", "2")))
    ['p4b293b806f', 'pbc9eef1632']
    """
    keep = [i for i, n in enumerate(names) if not (n == "length" and "sequence" in names)]
    keys = []
    for row in rows:
        text = "_".join(row[i] for i in keep)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", text) and text:
            text = "p" + hashlib.sha256("\0".join(row).encode()).hexdigest()[:10]
        keys.append(text)
    # Values that only differ in dropped characters, or in case.
    if len({k.lower() for k in keys}) != len(keys):
        keys = ["p" + hashlib.sha256("\0".join(r).encode()).hexdigest()[:10] for r in rows]
    return keys


def job_name(project: str, job: str, key: str) -> str:
    return f"{project}-{job}" + (f"-{key}" if key else "")


def instances(loaded: Loaded, job: m.Job) -> list[str]:
    """The instance of each attempt: the cluster's ladder (its instance, then ``escalate``)
    from the job's instance on; a job on an instance outside the ladder stays on it."""
    cluster = ngc_cluster(loaded, job.cluster)
    ladder = [str(cluster.instance), *cluster.escalate] if cluster.instance else cluster.escalate
    start = str(options(job).instance or cluster.instance)
    if options(job).interactive or start not in ladder:
        return [start]
    return ladder[ladder.index(start):]


def retries(loaded: Loaded, job: m.Job) -> int:
    """Relaunches allowed: the job's retries, or one per rung above its instance by default
    (interactive jobs are never relaunched by the monitor)."""
    if options(job).interactive:
        return 0
    if "retries" in job.model_fields_set:
        return job.retries
    return len(instances(loaded, job)) - 1


def image_ref(loaded: Loaded, job: m.Job) -> str:
    """The reference NGC launches: an image's nvcr.io tag (else its first), or the text."""
    return images.image_ref(loaded.project, str(options(job).image), ["nvcr.io/"])


def _flag(name: str, value: str) -> list[str]:
    return [name, shquote(value)]


def common_args(loaded: Loaded, name: str) -> list[str]:
    """Quoted words of every launch of a job, except name, instance, command and point env."""
    job = loaded.project.jobs[name]
    cl = ngc_cluster(loaded, job.cluster)
    out = _flag("--image", image_ref(loaded, job)) + _flag("--result", cl.result)
    for key in ("org", "team", "ace"):
        value = getattr(cl, key)
        out += _flag(f"--{key}", value) if value else []
    for ws, spec in cl.workspaces.items():
        mount, _, mode = spec.partition(":")
        out += _flag("--workspace", f"{ws}:{mount}:{mode or 'RW'}")
    for ident, mount in cl.datasets.items():
        out += _flag("--datasetid", f"{ident}:{mount}")
    for key in ("priority", "preempt"):
        value = getattr(options(job), key) or getattr(cl, key)
        out += _flag(f"--{key}", value) if value else []
    opts = options(job)
    runtime = (opts.total_runtime or cl.total_runtime
               or (MAX_RUNTIME if opts.interactive else None))
    out += _flag("--total-runtime", str(runtime)) if runtime else []
    for label in dict.fromkeys([*cl.labels, *options(job).labels]):
        out += _flag("--label", label)
    for port in options(job).ports:
        out += _flag("--port", str(port))
    for secret in cl.secrets:
        out += _flag("--secret", secret)
    return out + _env_and_command(loaded, name)


def _env_and_command(loaded: Loaded, name: str) -> list[str]:
    """--env-var words that do not depend on the point, and the command line (whose values
    are the expansions of variables set per point)."""
    job = loaded.project.jobs[name]
    static = static_params(loaded, name)
    columns = set(loaded.points[name].names)
    out: list[str] = []
    for key, value in merged_env(loaded, job).items():
        if not _uses(value, columns):
            out += ["--env-var", word(parse_text(f"{key}:{value}")[0], static)]
    for ref in used_names(job.command):
        if ref in static:  # built-ins reach the command as variables, like parameters
            out += _flag("--env-var", f"{variable(ref)}:{static[ref]}")
    code = command_code(job.command)
    if options(job).interactive:
        code = f"{code}\nsleep {MAX_RUNTIME}"
    return out + _flag("--commandline", code)


def _uses(text: str, params: set[str] | dict[str, str]) -> bool:
    return any(isinstance(p, Param) and p.name in params for p in parse_text(text)[0])


def _fill(text: str, values: dict[str, str]) -> str:
    """``text`` with its parameters replaced by their values (for NGC flags, not shell code).

    >>> _fill("a-{{ x }}-b/${HOME}", {"x": "1"})
    'a-1-b/${HOME}'
    """
    return _filled(parse_text(text)[0], values)


def _filled(parts: list[Any], values: dict[str, str]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, Param):
            out += values[part.name]
        else:  # literal text, or a ${NAME} kept as written
            out += getattr(part, "text", None) or "${" + getattr(part, "name", "") + "}"
    return out


def point_args(loaded: Loaded, name: str, index: int, key: str) -> list[str]:
    """The words of one point's launch, as ngc receives them: its name, the values of its
    parameters (as environment variables the command refers to) and env values that use
    parameters."""
    return _PointArgs(loaded, name)(index, key)


class _PointArgs:
    """point_args for every point of one job: what does not change from one point to the
    next (the command's placeholders, the env values that use parameters) found once."""

    def __init__(self, loaded: Loaded, name: str) -> None:
        job = loaded.project.jobs[name]
        self.loaded, self.name = loaded, name
        self.points = loaded.points[name]
        self.static = static_params(loaded, name)
        self.config = options(job).config is not None
        names = set(self.points.names)
        self.refs = [r for r in used_names(job.command) if r in names or r == "config_path"]
        self.env = [(k, parse_text(v)[0]) for k, v in merged_env(loaded, job).items()
                    if _uses(v, names)]

    def __call__(self, index: int, key: str) -> list[str]:
        values = dict(zip(self.points.names, self.points.rows[index], strict=True))
        static = {**self.static, **values}
        if self.config:
            static["config_path"] = config_path(self.loaded, self.name, key)
        out = ["--name", job_name(self.loaded.project.project, self.name, key)]
        for ref in self.refs:
            out += ["--env-var", f"{variable(ref)}:{static[ref]}"]
        for env_key, parts in self.env:
            out += ["--env-var", f"{env_key}:{_filled(parts, static)}"]
        return out


def config_ext(job: m.Job) -> str:
    config = options(job).config
    assert config is not None
    base = config.base
    return ".py" if base.endswith(".py") else ".json" if base.endswith(".json") else ".yaml"


def config_path(loaded: Loaded, name: str, key: str) -> str:
    job = loaded.project.jobs[name]
    configs = str(ngc_cluster(loaded, job.cluster).configs).rstrip("/")
    return f"{configs}/{name}/{key or name}{config_ext(job)}"


def _number(text: str) -> int | float:
    """The number a numeric parameter's text stands for.

    >>> _number("155"), _number("1e-2"), _number("007")
    (155, 0.01, 7)
    """
    try:
        return int(text)
    except ValueError:
        return float(text)


class _Configs:
    """The config files of one job's points: what does not change from one point to the
    next (the base, the header, the parsed ``set`` values) found once."""

    def __init__(self, loaded: Loaded, name: str, header: list[str]) -> None:
        job = loaded.project.jobs[name]
        config = options(job).config
        assert config is not None
        self.points = loaded.points[name]
        self.static = static_params(loaded, name)
        self.ext = config_ext(job)
        self.base = config_base(loaded, name)
        self.first = True
        if self.ext == ".py":
            self.head = "".join(f"# {h}\n" for h in header) + f"_base_ = {config.base!r}\n\n"
        else:
            self.head = "".join(f"# {h}\n" for h in header)
        # Each set key with: a constant, the name of a numeric parameter standing alone,
        # or the parts of a text to fill in.
        self.set: list[tuple[str, str, Any]] = []
        for key, raw in config.set_.items():
            if not isinstance(raw, str):
                value = raw if isinstance(raw, bool) else _number(m._scalar_text(raw))
                self.set.append((key, "constant", value))
                continue
            parts = parse_text(raw)[0]
            if len(parts) == 1 and isinstance(parts[0], Param) and \
                    parts[0].name in self.points.numeric:
                self.set.append((key, "number", parts[0].name))
            else:
                self.set.append((key, "text", parts))

    def values(self, index: int) -> dict[str, Any]:
        """The ``set`` keys of a point's config with parameters filled in."""
        values = dict(zip(self.points.names, self.points.rows[index], strict=True))
        static = {**self.static, **values}
        out: dict[str, Any] = {}
        for key, how, what in self.set:
            if how == "constant":
                out[key] = what
            elif how == "number":
                out[key] = _number(values[what])
            else:
                out[key] = _filled(what, static)
        return out

    def text(self, index: int) -> str:
        """One point's config file: a Python file inheriting the base by path, or the
        merged YAML/JSON base."""
        values = _nested(self.values(index))
        if self.ext == ".py":
            text = self.head + "".join(f"{k} = {_python_value(v)}\n"
                                       for k, v in values.items())
            if self.first:
                # Keys are checked identifiers and values are literals, so every point's
                # file parses when the first one does.
                compile(text, "config", "exec")
                self.first = False
            return text
        merged = _merge(self.base, values)
        if self.ext == ".json":
            return json.dumps(merged, indent=2, sort_keys=False) + "\n"
        text = self.head + yaml.safe_dump(merged, sort_keys=False)
        assert yaml.safe_load(text) == merged
        return text


def _nested(values: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested mappings.

    >>> _nested({"a.b": 1, "a.c": 2, "d": 3})
    {'a': {'b': 1, 'c': 2}, 'd': 3}
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def _python_value(value: Any) -> str:
    if isinstance(value, dict):
        return "dict(" + ", ".join(f"{k}={_python_value(v)}" for k, v in value.items()) + ")"
    return repr(value)


def config_base(loaded: Loaded, name: str) -> Any:
    """The parsed YAML or JSON base of a job's configs (None for a Python base)."""
    job = loaded.project.jobs[name]
    config = options(job).config
    assert config is not None
    if config_ext(job) == ".py":
        return None
    text = (loaded.root / config.base).read_text(encoding="utf-8")
    return json.loads(text) if config_ext(job) == ".json" else yaml.safe_load(text) or {}


def _merge(base: Any, over: dict[str, Any]) -> Any:
    if not isinstance(base, dict):
        return over
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key), value) if isinstance(value, dict) else value
    return out


def plan(loaded: Loaded, cname: str) -> list[Group]:
    """A group per job of cluster ``cname`` (its launch table and configs), and one for the
    cluster's scripts."""
    names = [n for n, j in loaded.project.jobs.items() if j.cluster == cname]
    out = [Group(f"ngc/{cname}/{name}", ("jobs", name), tuple(_job_files(loaded, cname, name)))
           for name in names]
    if names:
        out.append(Group(f"ngc/{cname}", ("clusters", cname),
                         tuple(_cluster_files(loaded, cname, names))))
    return out


def _job_files(loaded: Loaded, cname: str, name: str) -> list[FileSpec]:
    job = loaded.project.jobs[name]
    config = options(job).config
    points = loaded.points[name]
    keys = point_keys(points.names, points.rows)
    header = file_header(loaded.source.file, name)
    lines = ["# " + " ".join(header),
             "# index\tname\targuments of this point, one per cell (printf %b escapes)"]
    args = _PointArgs(loaded, name)
    for i, key in enumerate(keys):
        cells = (tsv_cell(word) for word in args(i, key))
        lines.append("\t".join((str(i), job_name(loaded.project.project, name, key), *cells)))
    out = [text_file(f"ngc/{cname}/{name}.points.tsv", "\n".join(lines) + "\n")]
    if config is not None:
        configs = _Configs(loaded, name, header)
        folder = f"ngc/{cname}/configs/{name}"
        for i, key in enumerate(keys):
            out.append(text_file(f"{folder}/{key or name}{configs.ext}", configs.text(i)))
    return out


def _job_summary(loaded: Loaded, name: str) -> dict[str, Any]:
    job = loaded.project.jobs[name]
    return {"name": name, "common": common_args(loaded, name),
            "size": loaded.points[name].size, "interactive": options(job).interactive,
            "retries": retries(loaded, job),
            "instances": [shquote(i) for i in instances(loaded, job)],
            "ports": [str(p) for p in options(job).ports]}


def _cluster_files(loaded: Loaded, cname: str, names: list[str]) -> list[FileSpec]:
    jobs = [_job_summary(loaded, name) for name in names]
    words = [w for j in jobs for w in j["common"]]
    used = sorted({v for w in words for v in var_refs(w)} & set(loaded.project.secrets))
    context = {"header": file_header(loaded.source.file), "cluster_name": cname, "jobs": jobs,
               "interactive": [j for j in jobs if j["interactive"]],
               "project": loaded.project.project, "secrets": used,
               "final": FINAL, "relaunch": RELAUNCH,
               "parallel": ngc_cluster(loaded, cname).parallel}
    scripts = list(SCRIPTS) + (["exec.sh"] if context["interactive"] else [])
    return [*(FileSpec(f"ngc/{cname}/{s}", f"ngc/{s}.j2",
                       plain_context({**context, "secrets": used if s in LAUNCHERS else []}),
                       executable=True, lint="shellcheck") for s in scripts),
            runtime_file(f"ngc/{cname}", "ngc", loaded.source.file)]
