"""Checks that need the whole project: references, cycles, placeholders, syncs; each cluster
kind adds its own."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import Problem
from ..loader import Loc, dotted
from ..placeholders import RUN_ID_SAMPLE, check_code
from ..shell import Param, parse_text, var_refs
from . import model as m
from .checker import BUILTINS, Checker, Loaded, Points, suggest
from .images import check_image
from .kind import JobScope, Kind
from .sweep import sweep_points

PROSE = {"description"}  # text that never reaches a shell line


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


def check(ck: Checker, loaded: Loaded, kinds: Mapping[str, Kind], cluster_names: set[str],
          job_names: set[str]) -> None:
    """Add every semantic problem of ``loaded`` to ``ck``; fill ``loaded.points``."""
    proj = loaded.project
    _names(ck, proj)
    known_vars = set(proj.secrets) | set(proj.env)
    builtins = {b for b in BUILTINS if b != "user" or proj.user}
    for name, cl in proj.clusters.items():
        kind = kinds[cl.kind]
        kind.check_cluster(ck, ("clusters", name), cl, known_vars | set(cl.env))
        check_strings(ck, ("clusters", name), cl.model_dump(
            by_alias=True, exclude=PROSE | kind.prose | {"env"}), known_vars | set(cl.env))
        check_strings(ck, ("clusters", name, "env"), cl.env, known_vars | set(cl.env),
                      params=builtins)
    check_strings(ck, ("env",), proj.env, known_vars, params=builtins)
    for name, job in proj.jobs.items():
        _job(ck, loaded, kinds, name, job, (cluster_names, job_names))
    _cycles(ck, proj)
    for name, place in proj.storage.items():
        _storage(ck, ("storage", name), place, known_vars)
    for name, sync in proj.syncs.items():
        _sync(ck, ("syncs", name), sync, proj, known_vars, builtins - {"job"})
    for name, image in proj.images.items():
        check_image(ck, ("images", name), image, proj.secrets)


def _names(ck: Checker, proj: m.Project) -> None:
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


def check_strings(ck: Checker, loc: Loc, value: Any, known: set[str], *,
             params: set[str] | None = None) -> None:
    """Check every string below ``value``: NUL bytes, placeholders, ``${NAME}`` references.

    ``params`` is the set of ``{{ names }}`` allowed there; None means none are allowed.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            check_strings(ck, (*loc, k), v, known, params=params)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_strings(ck, (*loc, i), v, known, params=params)
    elif isinstance(value, str):
        check_text(ck, loc, value, known, params)


def check_text(ck: Checker, loc: Loc, text: str, known: set[str], params: set[str] | None) -> None:
    if "\x00" in text:
        return  # reported, as for every string, by checker.check_characters
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
        if name not in known and not ck.platform.fullmatch(name):
            ck.add(loc, f"'${{{name}}}' is not declared in 'secrets'{suggest(name, known)}; "
                   "list it there (its value is read at run time, never written to out/)")


def _after(ck: Checker, loaded: Loaded, kinds: Mapping[str, Kind], name: str, job: m.Job,
           job_names: set[str]) -> None:
    proj, loc = loaded.project, ("jobs", name)
    for i, dep in enumerate(job.after):
        if dep == name:
            ck.add((*loc, "after", i), "a job cannot run after itself")
        elif dep not in job_names:
            ck.add((*loc, "after", i), f"unknown step {dep!r}{suggest(dep, job_names)}")
        elif (dep in proj.jobs and proj.jobs[dep].cluster != job.cluster
              and {job.cluster, proj.jobs[dep].cluster} <= set(proj.clusters)):
            title = kinds[proj.clusters[job.cluster].kind].title
            ck.add((*loc, "after", i), f"step {dep!r} runs on cluster "
                   f"{proj.jobs[dep].cluster!r}; {title} dependencies work within one cluster")


def _sweep_options(ck: Checker, kinds: Mapping[str, Kind], loc: Loc, job: m.Job,
                   kind: Kind) -> None:
    """Sweep keys that only other kinds use."""
    if job.sweep is None:
        return
    for other in kinds.values():
        for key, why in other.sweep_options.items():
            if key in job.sweep.model_fields_set and key not in kind.sweep_options:
                ck.add((*loc, "sweep", key), f"{key!r} {why}; {kind.sweep_refusal}", key=True)


def _job(ck: Checker, loaded: Loaded, kinds: Mapping[str, Kind], name: str, job: m.Job,
         names: tuple[set[str], set[str]]) -> None:
    (cluster_names, job_names), proj, loc = names, loaded.project, ("jobs", name)
    _after(ck, loaded, kinds, name, job, job_names)
    if job.cluster not in cluster_names:
        ck.add((*loc, "cluster"), f"unknown cluster {job.cluster!r}"
               f"{suggest(job.cluster, cluster_names)}")
    points = sweep_points(ck, loaded, loc, job)
    loaded.points[name] = points
    cluster = proj.clusters.get(job.cluster)
    kind = kinds[cluster.kind] if cluster is not None else None
    known = set(proj.secrets) | set(proj.env) | set(job.env) | set(cluster.env if cluster else ())
    params = set(points.names) | {b for b in BUILTINS if b != "user" or proj.user}
    extra = kind.job_params(name, job, cluster) if kind else {}
    check_strings(ck, (*loc, "env"), job.env, known, params=params | set(extra))
    _command(ck, loc, job, known, params | set(extra))
    _code_values(ck, loaded, name, job, points, kind)
    check_strings(ck, loc, job.model_dump(by_alias=True, include={"cluster", "after"}), known)
    if kind is None or cluster is None:
        return
    own = job.options.model_dump(by_alias=True, exclude=kind.own_text)
    check_strings(ck, loc, own, known)
    _sweep_options(ck, kinds, loc, job, kind)
    kind.check_job(ck, loaded, JobScope(loc, name, job, cluster, known, params, points))


def _code_values(ck: Checker, loaded: Loaded, name: str, job: m.Job, points: Points,
                 kind: Kind | None) -> None:
    """Placeholders in shell code that cannot stand where they do, or whose values may not
    (values are known here: sweep points and built-ins), at FILE:LINE:COL of each."""
    loc = ("jobs", name)
    columns = {n: [row[i] for row in points.rows] for i, n in enumerate(points.names)}
    static = {k: [v] for k, v in static_params(loaded, name).items()}
    cluster = loaded.project.clusters.get(job.cluster)
    extra = kind.job_params(name, job, cluster) if kind else {}
    known: dict[str, list[str]] = {**static, **columns, "run_id": [RUN_ID_SAMPLE], **extra}
    codes: list[tuple[tuple[str, ...], Any]] = [(("command",), job.command)]
    codes += kind.job_code(job) if kind else []
    for sub, code in codes:
        if isinstance(code, str):
            for offset, message in check_code(code, lambda n: known.get(n, [])):
                line, col = loaded.source.within((*loc, *sub), offset)
                ck.problems.append(Problem(loaded.source.file, line, col,
                                           dotted((*loc, *sub)), message))


def _storage(ck: Checker, loc: Loc, place: m.Storage, known: set[str]) -> None:
    check_strings(ck, loc, place.model_dump(exclude={"port"}), known)
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


def _sync(ck: Checker, loc: Loc, sync: m.Sync, proj: m.Project, known: set[str],
          builtins: set[str]) -> None:
    for key, text in (("from", sync.from_), ("to", sync.to)):
        place, _path = endpoint(text, proj.storage)
        # A place that is declared but invalid has its own error; only a name declared
        # nowhere is unknown here.
        if place is not None and place not in ck.declared.get("storage", proj.storage):
            ck.add((*loc, key), f"unknown storage {place!r}{suggest(place, proj.storage)} "
                   "(a local path with ':' must start with '/' or '.')")
        check_text(ck, (*loc, key), text, known, builtins)
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
    check_strings(ck, loc, {"include": sync.include, "exclude": sync.exclude}, known)


def _command(ck: Checker, loc: Loc, job: m.Job, known: set[str], params: set[str]) -> None:
    if isinstance(job.command, str):
        # Shell code: ${NAME} is checked, $name (a shell variable of the code itself) is not.
        check_text(ck, (*loc, "command"), job.command, known, params)
    else:
        check_strings(ck, (*loc, "command"), list(job.command), known, params=params)


def _cycles(ck: Checker, proj: m.Project) -> None:
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
