"""project.yaml -> a validated Project, or a ProjectError listing every problem found.

The cluster kinds are given by the caller (see ``Kinds``): this layer knows what every
kind has in common, and asks each kind for the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ProjectError
from ..loader import Loc, load_yaml
from . import model as m
from .checker import NAME_RULE, Checker, Loaded, check_characters, describe, platform_vars, suggest
from .kind import Kind, Section
from .semantics import check


@dataclass(frozen=True)
class Kinds:
    """The cluster kinds a project may use, and those known but not supported yet (a
    cluster of one of those is refused as such, not as an unknown kind)."""

    supported: dict[str, Kind]
    planned: dict[str, tuple[str, ...]]  # kind -> the prefixes of its platform variables
    sections: dict[str, Section] = field(default_factory=dict)  # key -> who reads it

    def known(self) -> list[str]:
        return [*self.supported, *self.planned]

    def of(self, cluster: Any) -> Kind | None:
        """The kind of a valid cluster (None for anything else)."""
        return self.supported.get(getattr(cluster, "kind", ""))

    def checker(self, source: Any, root: Path) -> Checker:
        """A checker that knows the platform variables and text kinds of every kind."""
        prefixes = [p for k in self.supported.values() for p in k.platform_prefixes]
        prefixes += [p for ps in self.planned.values() for p in ps]
        texts = m.TEXT_KINDS + tuple((("jobs", "*", *pattern), text)
                                     for k in self.supported.values()
                                     for pattern, text in k.text_kinds)
        texts += tuple(((key, *pattern), text) for key, s in self.sections.items()
                       for pattern, text in s.section_text_kinds)
        return Checker(source, root, platform_vars(prefixes), texts)


def _keys(cls: type[BaseModel]) -> set[str]:
    return {f.alias or n for n, f in cls.model_fields.items()}


COMMON = _keys(m.Job) - {"options"}


def _top_level(ck: Checker, data: Any, sections: dict[str, Section]) -> dict[str, Any]:
    """The sections of the project layer (those a backend reads are left to it)."""
    if not isinstance(data, dict):
        ck.add((), f"the project file must be a mapping of sections, got {describe(data)}")
        return {}
    known = (*m.TOP_LEVEL, *sections)
    for key in data:
        if key not in known:
            ck.add((key,), f"unknown key {key!r}{suggest(key, known)}", key=True)
    return {k: v for k, v in data.items() if k in m.TOP_LEVEL}


def _cluster(ck: Checker, kinds: Kinds, loc: Loc, body: Any) -> Any:
    """A valid cluster of its kind, or None after reporting why not."""
    kind = body.get("kind") if isinstance(body, dict) else None
    if not isinstance(body, dict):
        return ck.model(m.Cluster, body, loc)  # says what a cluster is
    if "kind" not in body:
        ck.add(loc, "required key 'kind' is missing")
        return None
    if not isinstance(kind, str):
        ck.add((*loc, "kind"), f"expected one of {', '.join(map(repr, kinds.supported))}, "
               f"got {describe(kind)}")
        return None
    if kind in kinds.planned:
        ck.add((*loc, "kind"), f"cluster kind {kind!r} is not supported by this version "
               f"(supported: {', '.join(kinds.supported)})")
        return None
    if kind not in kinds.supported:
        ck.add((*loc, "kind"), f"unknown kind {kind!r}{suggest(kind, kinds.known())}")
        return None
    return ck.model(kinds.supported[kind].cluster_model, body, loc)


def _clusters(ck: Checker, kinds: Kinds, raw: Any) -> tuple[dict[str, m.Cluster], set[str]]:
    valid: dict[str, m.Cluster] = {}
    if not isinstance(raw, dict):
        if raw is not None:
            ck.add(("clusters",), f"expected a mapping of clusters, got {describe(raw)}")
        return valid, set()
    for name, body in raw.items():
        loc = ("clusters", name)
        if not re.fullmatch(m.NAME, name):
            ck.add(loc, f"a cluster name {NAME_RULE}", key=True)
        cluster = _cluster(ck, kinds, loc, body)
        if cluster is not None:
            valid[name] = cluster
    return valid, set(raw)


def _owners(kinds: Kinds, key: str) -> list[Kind]:
    """The kinds a job key belongs to."""
    if key in COMMON:
        return [k for k in kinds.supported.values() if key not in k.refused_common]
    return [k for k in kinds.supported.values() if key in _keys(k.options_model)]


def _elsewhere(ck: Checker, kinds: Kinds, loc: Loc, key: str, cluster: str) -> None:
    """A key of other kinds given to a job on a cluster of this one."""
    names = [k.name for k in _owners(kinds, key)]
    owners = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    ck.add((*loc, key), f"{key!r} applies to {owners} clusters only; cluster {cluster!r} is "
           "not one", key=True)


def _split(ck: Checker, kinds: Kinds, loc: Loc, body: dict[str, Any],
           kind: Kind | None) -> dict[Kind, dict[str, Any]]:
    """The job keys beyond the common ones, by the kind they belong to (the job's own kind
    first); unknown keys are reported."""
    own = _keys(kind.options_model) if kind else set()
    out: dict[Kind, dict[str, Any]] = {kind: {}} if kind else {}
    for key, value in body.items():
        if key in COMMON:
            continue
        if kind and key in own:  # the usual case: no other kind's models are loaded
            out[kind][key] = value
            continue
        owners = _owners(kinds, key)
        if not owners:
            known = COMMON | {k for kd in kinds.supported.values()
                              for k in _keys(kd.options_model)}
            ck.add((*loc, key), f"unknown key {key!r}{suggest(key, known)}", key=True)
            continue
        owner = kind if kind in owners else owners[0]
        out.setdefault(owner, {})[key] = value
    return out


def _job(ck: Checker, kinds: Kinds, clusters: dict[str, m.Cluster], loc: Loc,
         body: Any) -> m.Job | None:
    """A job with its kind's options, or None after reporting why not. Keys of another kind
    are validated by that kind's model, then refused when valid."""
    if not isinstance(body, dict):
        ck.model(m.Job, body, loc)  # says what a job is
        return None
    cluster = body.get("cluster")
    kind = kinds.of(clusters.get(cluster)) if isinstance(cluster, str) else None
    job: m.Job | None = ck.model(m.Job, {k: v for k, v in body.items() if k in COMMON}, loc)
    options = _options(ck, kinds, loc, body, kind)
    if kind is not None and job is not None:
        for key in kind.refused_common:
            if key in job.model_fields_set:
                _elsewhere(ck, kinds, loc, key, str(cluster))
    if job is None:
        return None
    return job.model_copy(update={"options": options})


def _options(ck: Checker, kinds: Kinds, loc: Loc, body: dict[str, Any],
             kind: Kind | None) -> Any:
    """The job's options of its kind (None when its kind is not known)."""
    options = None
    for owner, keys in _split(ck, kinds, loc, body, kind).items():
        valid = ck.model(owner.options_model, keys, loc)
        if owner is kind:
            options = valid if valid is not None else kind.options_model()
        elif kind is not None and valid is not None:
            for key in sorted(valid.model_fields_set):
                _elsewhere(ck, kinds, loc, key, str(body.get("cluster")))
    return options


def _jobs(ck: Checker, kinds: Kinds, clusters: dict[str, m.Cluster],
          raw: Any) -> tuple[dict[str, m.Job], set[str]]:
    valid: dict[str, m.Job] = {}
    if not isinstance(raw, dict):
        if raw is not None:
            ck.add(("jobs",), f"expected a mapping of jobs, got {describe(raw)}")
        return valid, set()
    for name, body in raw.items():
        if not re.fullmatch(m.NAME, name):
            ck.add(("jobs", name), f"a job name {NAME_RULE}", key=True)
            continue
        job = _job(ck, kinds, clusters, ("jobs", name), body)
        if job is not None:
            valid[name] = job
    return valid, set(raw)


def _named(ck: Checker, cls: type[BaseModel], section: str, raw: Any) -> dict[str, Any]:
    """Validate each entry of a mapping section on its own, keeping the valid ones."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ck.add((section,), f"expected a mapping, got {describe(raw)}")
        return {}
    out = {}
    for name, body in raw.items():
        if not re.fullmatch(m.NAME, name):
            ck.add((section, name), f"a name {NAME_RULE}", key=True)
            continue
        item = ck.model(cls, body, (section, name))
        if item is not None:
            out[name] = item
    return out


def _partial_head(top: dict[str, Any]) -> m.Project:
    """The valid part of the project-level keys, with a stand-in name (errors are reported)."""
    for keep in (("secrets", "env", "user"), ("secrets",), ()):
        try:
            return m.Project.model_validate(
                {**{k: top[k] for k in keep if k in top}, "project": "invalid"})
        except ValidationError:
            continue
    raise AssertionError("unreachable: an empty project head is valid")


def _project(ck: Checker, kinds: Kinds, data: dict[str, Any],
             top: dict[str, Any]) -> tuple[m.Project, set[str], set[str]]:
    """The Project of what is valid, and the names of every cluster and job declared."""
    clusters, cluster_names = _clusters(ck, kinds, top.pop("clusters", None))
    jobs, job_names = _jobs(ck, kinds, clusters, top.pop("jobs", None))
    storage = _named(ck, m.Storage, "storage", top.pop("storage", None))
    syncs = _named(ck, m.Sync, "syncs", top.pop("syncs", None))
    images = _named(ck, m.Image, "images", top.pop("images", None))
    head = ck.model(m.Project, top, ())
    if "project" not in top:
        ck.add((), "required key 'project' is missing")
    if head is None:  # keep checking jobs and clusters against what is valid of the rest
        head = _partial_head(top)
    project = head.model_copy(update={"clusters": clusters, "jobs": jobs, "storage": storage,
                                      "syncs": syncs, "images": images})
    return project, cluster_names, job_names


def load_project(path: Path, kinds: Kinds) -> Loaded:
    """Load and validate the project at ``path`` for ``kinds``; raise ProjectError with
    every problem."""
    path = Path(path)
    data, source = load_yaml(path)
    ck = kinds.checker(source, path.parent)
    top = _top_level(ck, data, kinds.sections)
    if not isinstance(data, dict):
        raise ProjectError(ck.problems)
    check_characters(ck, data)
    ck.declared = {k: set(v) for k, v in top.items() if isinstance(v, dict)}
    project, cluster_names, job_names = _project(ck, kinds, data, top)
    loaded = Loaded(project, source, path.parent.resolve())
    check(ck, loaded, kinds.supported, cluster_names, job_names)
    for key, section in kinds.sections.items():
        if key in data:
            loaded.sections[key] = section.check_section(ck, loaded, data[key])
    if ck.problems or ck.characters:
        raise ProjectError(ck.all_problems())
    loaded.inputs = [path, *ck.inputs]
    return loaded
