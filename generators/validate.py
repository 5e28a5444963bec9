"""project.yaml -> a validated Project, or a ProjectError listing every problem found."""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import model as m
from .errors import Problem, ProjectError
from .loader import Loc, Source, load_yaml

BUILTINS = ("project", "user", "job", "run_id")
PLATFORM_VARS = re.compile(
    r"(SLURM|SLURMD|RUNAI|NGC|AZUREML)_[A-Z0-9_]+|USER|HOME|PATH|TMPDIR|HOSTNAME|PWD|LOGNAME"
    r"|RUN_ID|CUDA_VISIBLE_DEVICES")
SLURM_TIME = re.compile(r"\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+|\d+-\d+:\d+|\d+-\d+:\d+:\d+"
                        r"|UNLIMITED|INFINITE|unlimited|infinite")


@dataclass(frozen=True)
class Points:
    """The expanded sweep of one job: parameter names and one row of texts per point."""

    names: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ((),)
    # Parameters whose every value is a number, sorted (a set would make repr(), and so the
    # build's digests, differ from one process to the next).
    numeric: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.rows)


@dataclass
class Loaded:
    """A valid project with everything a generator needs that YAML alone does not say."""

    project: m.Project
    source: Source
    root: Path
    points: dict[str, Points] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''.

    >>> suggest("clusterr", ["cluster", "command"])
    " (did you mean 'cluster'?)"
    """
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (through Optional, unions and Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    return [annotation]


def _model_at(cls: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the value at ``loc`` below ``cls``."""
    for part in loc:
        nxt = None
        for t in _unwrap(cls):
            if isinstance(t, type) and issubclass(t, BaseModel):
                fields = {f.alias or n: f for n, f in t.model_fields.items()}
                if part in fields:
                    nxt = fields[part].annotation
            elif typing.get_origin(t) in (dict, list) and typing.get_args(t):
                nxt = typing.get_args(t)[-1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        cls = nxt
    models = [t for t in _unwrap(cls) if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if models else None


_TYPE_WORDS = {"string_type": "a string", "int_type": "an integer", "float_type": "a number",
               "bool_type": "true or false", "list_type": "a list", "dict_type": "a mapping",
               "model_type": "a mapping", "int_from_float": "an integer"}


PATTERN_WORDS = {
    m.PROJECT: "is not a valid name: use lowercase letters, digits and '-', starting with a "
               "letter or digit",
    m.NAME: "is not a valid name: use letters, digits, '_', '.' and '-'",
    m.INTERVAL: "is not an interval: a number and s, m or h (e.g. 15m)",
}


def _describe(value: Any) -> str:
    kinds = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list",
             dict: "mapping", type(None): "nothing"}
    shown = f" {value!r}" if isinstance(value, str | int | float) and len(repr(value)) < 40 else ""
    return f"{kinds.get(type(value), type(value).__name__)}{shown}"


def _pydantic_problems(exc: ValidationError, cls: type[BaseModel], prefix: Loc,
                       source: Source) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p
                                                   and p not in ("list",)))
        full: Loc = (*prefix, *loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            owner = _model_at(cls, loc[:-1])
            allowed = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
            msg = f"unknown key {loc[-1]!r}{suggest(str(loc[-1]), allowed)}"
            problems.append(source.problem(full, msg, key=True))
            continue
        if kind == "missing":
            msg = f"required key {loc[-1]!r} is missing"
            problems.append(source.problem(full[:-1], msg))
            continue
        if kind in _TYPE_WORDS:
            msg = f"expected {_TYPE_WORDS[kind]}, got {_describe(err['input'])}"
            if isinstance(err["input"], dict) and any(
                    isinstance(k, str) and k.startswith("{") for k in err["input"]):
                msg += "; quote values that start with '{{'"
        elif kind == "string_pattern_mismatch":
            msg = f"{err['input']!r} {PATTERN_WORDS.get(err['ctx']['pattern'], 'is not valid')}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append(source.problem(full, msg))
    return problems


class _Checker:
    """Collects problems while building the Project piece by piece, so all are reported."""

    def __init__(self, source: Source, root: Path) -> None:
        self.source = source
        self.root = root
        self.problems: list[Problem] = []
        self.inputs: list[Path] = []

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.problems.append(self.source.problem(loc, message, key=key))

    def model(self, cls: type[BaseModel], data: Any, loc: Loc) -> Any:
        """Validate ``data``; on errors, report them and return the model without the bad
        keys (when that validates) so that later checks still see the rest."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            self.problems += _pydantic_problems(exc, cls, loc, self.source)
            bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
            if not isinstance(data, dict) or not bad:
                return None
            try:
                return cls.model_validate({k: v for k, v in data.items() if k not in bad})
            except ValidationError:
                return None


def _top_level(ck: _Checker, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        ck.add((), f"the project file must be a mapping of sections, got {_describe(data)}")
        return {}
    for key in data:
        if key not in m.TOP_LEVEL:
            ck.add((key,), f"unknown key {key!r}{suggest(key, m.TOP_LEVEL)}", key=True)
        elif key in m.NOT_YET and data[key]:
            ck.add((key,), f"section {key!r} is not supported by this version of jobpack",
                   key=True)
    return {k: v for k, v in data.items() if k in m.TOP_LEVEL and k not in m.NOT_YET}


def _clusters(ck: _Checker, raw: Any) -> tuple[dict[str, m.SlurmCluster | m.NgcCluster],
                                                set[str]]:
    valid: dict[str, m.SlurmCluster | m.NgcCluster] = {}
    if not isinstance(raw, dict):
        if raw is not None:
            ck.add(("clusters",), f"expected a mapping of clusters, got {_describe(raw)}")
        return valid, set()
    for name, body in raw.items():
        loc = ("clusters", name)
        if not re.fullmatch(m.NAME, name):
            ck.add(loc, "a cluster name uses letters, digits, '_', '.' and '-'", key=True)
        kind = body.get("kind") if isinstance(body, dict) else None
        if isinstance(body, dict) and kind in m.KINDS_KNOWN and kind not in m.KINDS_SUPPORTED:
            ck.add((*loc, "kind"), f"cluster kind {kind!r} is not supported by this version "
                   f"(supported: {', '.join(m.KINDS_SUPPORTED)})")
            continue
        if isinstance(body, dict) and isinstance(kind, str) and kind not in m.KINDS_KNOWN:
            ck.add((*loc, "kind"), f"unknown kind {kind!r}{suggest(kind, m.KINDS_KNOWN)}")
            continue
        cls = m.CLUSTER_MODELS.get(kind if isinstance(kind, str) else "", m.SlurmCluster)
        cluster = ck.model(cls, body, loc)
        if cluster is not None:
            valid[name] = cluster
    return valid, set(raw)


def _jobs(ck: _Checker, raw: Any) -> tuple[dict[str, m.Job], set[str]]:
    valid: dict[str, m.Job] = {}
    if not isinstance(raw, dict):
        if raw is not None:
            ck.add(("jobs",), f"expected a mapping of jobs, got {_describe(raw)}")
        return valid, set()
    for name, body in raw.items():
        if not re.fullmatch(m.NAME, name):
            ck.add(("jobs", name), "a job name uses letters, digits, '_', '.' and '-' and "
                   "starts with a letter or digit", key=True)
            continue
        job = ck.model(m.Job, body, ("jobs", name))
        if job is not None:
            valid[name] = job
    return valid, set(raw)


def _named(ck: _Checker, cls: type[BaseModel], section: str, raw: Any) -> dict[str, Any]:
    """Validate each entry of a mapping section on its own, keeping the valid ones."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ck.add((section,), f"expected a mapping, got {_describe(raw)}")
        return {}
    out = {}
    for name, body in raw.items():
        if not re.fullmatch(m.NAME, name):
            ck.add((section, name), "a name uses letters, digits, '_', '.' and '-'", key=True)
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


def load_project(path: Path) -> Loaded:
    """Load and validate the project at ``path``; raise ProjectError with every problem."""
    path = Path(path)
    data, source = load_yaml(path)
    ck = _Checker(source, path.parent)
    top = _top_level(ck, data)
    if not isinstance(data, dict):
        raise ProjectError(ck.problems)
    clusters, cluster_names = _clusters(ck, top.pop("clusters", None))
    jobs, job_names = _jobs(ck, top.pop("jobs", None))
    storage = _named(ck, m.Storage, "storage", top.pop("storage", None))
    syncs = _named(ck, m.Sync, "syncs", top.pop("syncs", None))
    images = _named(ck, m.Image, "images", top.pop("images", None))
    head = ck.model(m.Project, top, ())
    if "project" not in top and isinstance(data, dict):
        ck.add((), "required key 'project' is missing")
    if head is None:  # keep checking jobs and clusters against what is valid of the rest
        head = _partial_head(top)
    project = head.model_copy(update={"clusters": clusters, "jobs": jobs, "storage": storage,
                                      "syncs": syncs, "images": images})
    loaded = Loaded(project, source, path.parent.resolve())
    from .semantics import check  # late import: semantics needs Loaded

    check(ck, loaded, cluster_names, job_names)
    if ck.problems:
        raise ProjectError(ck.problems)
    loaded.inputs = [path, *ck.inputs]
    return loaded
