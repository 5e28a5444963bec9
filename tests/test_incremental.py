"""An incremental build after a one-leaf change writes exactly what a full build writes.

For each valid test project, hypothesis changes ONE leaf of its YAML: a key the schema
allows is added where it is absent, a value is changed, or a key or list item is removed.
The changed project is built into an out/ that holds a build of the original (with its build
state), then into a fresh folder; the two out/ trees must be identical, byte for byte, with
the same executable bits. A change that makes the project invalid must fail both builds with
the same error text and leave the incremental out/ as it was.

The keys come from the pydantic models (``schema`` below is the only place that knows where
they live); everything else works on plain dicts. Values are drawn by type and constraint,
preferring values the test projects use for a key of the same name and names that exist in
the project (clusters, jobs, syncs, storage), so that most changes are valid.

Each example restores, in place, a build of the original made once per test run, so it
costs one incremental and one full build. The examples are derandomized (no database), so
a run in CI is reproducible; INCREMENTAL_EXAMPLES=N runs N examples per project instead of
30 (at least 300 in all).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import io
import json
import math
import os
import re
import shutil
import types
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECTS, ROOT, snapshot
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from test_schema import problems as schema_problems

from generators.cli import main as jobpack_main
from generators.loader import parse_yaml

Spec = dict[str, Any]


@functools.cache
def schema() -> Spec:
    """The schema of project.yaml as plain dicts (see ``describe``): the one function that
    knows which model is the root and where it lives."""
    from generators.project.model import Job, Project
    from generators.registry import KINDS

    kinds = list(KINDS.supported.values())
    root = describe(Project)
    clusters = {"kind": "union", "of": [describe(k.cluster_model) for k in kinds]}
    root["fields"]["clusters"]["spec"] = {"kind": "dict", "value": clusters}
    # A job holds the common keys and the keys of its kind's options: one model per kind.
    # A job whose keys fit several kinds takes the keys of all of them (see ``resolve``), so
    # a key of another kind than its cluster's, a change the project must refuse in both
    # builds alike, is still drawn, without five kinds' keys drowning the valid changes.
    common = {k: v for k, v in describe(Job)["fields"].items() if k != "options"}
    jobs = [{"kind": "model", "name": f"Job[{kind.name}]",
             "fields": {**common, **describe(kind.options_model)["fields"]}} for kind in kinds]
    root["fields"]["jobs"]["spec"] = {"kind": "dict", "value": {"kind": "union", "of": jobs}}
    # Sections a backend reads (the dev nodes): a mapping of its entries.
    for key, section in KINDS.sections.items():
        if section.entry_model is not None:
            root["fields"][key] = {"spec": {"kind": "dict",
                                            "value": describe(section.entry_model)},
                                   "required": False}
    return root


# -- pydantic -> plain dicts -------------------------------------------------------------
# A spec is {"kind": K, ...}: "model" (name, fields: key -> {"spec", "required"}), "dict"
# (value), "list" (item), "union" (of), "literal" (values), "str" (pattern, max_length),
# "int"/"float" (ge, le), "bool", or "any".

def describe(model: Any) -> Spec:
    from pydantic import BaseModel

    memo: dict[type, Spec] = {}

    def walk(tp: Any, meta: tuple[Any, ...] = ()) -> Spec:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return walk(args[0], (*meta, *args[1:]))
        if origin in (typing.Union, types.UnionType):
            options = [walk(a, meta) for a in args if a is not type(None)]
            return options[0] if len(options) == 1 else {"kind": "union", "of": options}
        if origin is typing.Literal:
            return {"kind": "literal", "values": list(args)}
        if origin in (list, tuple, set, frozenset):
            return {"kind": "list", "item": walk(args[0])}
        if origin is dict:
            return {"kind": "dict", "value": walk(args[1])}
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in memo:
                memo[tp] = {"kind": "model", "name": tp.__name__, "fields": {}}
                memo[tp]["fields"] = {
                    f.alias or name: {"spec": walk(f.annotation, tuple(f.metadata)),
                                      "required": f.is_required()}
                    for name, f in tp.model_fields.items()}
            return memo[tp]
        bounds = {k: getattr(m, k) for m in meta for k in ("ge", "le", "gt", "lt", "pattern",
                                                           "max_length")
                  if getattr(m, k, None) is not None}
        kinds = {bool: "bool", int: "int", float: "float", str: "str"}
        return {"kind": kinds.get(tp, "any"), **bounds}

    return walk(model)


# -- reading and writing projects as plain data --------------------------------------------

def valid_projects() -> list[str]:
    """Every test project but the invalid corpus (each folder with a project.yaml)."""
    return sorted(p.parent.name for p in PROJECTS.glob("*/project.yaml"))


def load(text: str) -> Any:
    """The project as jobpack reads it (YAML 1.2; numbers keep how they were written)."""
    return parse_yaml(text, "project.yaml")[0]


class _Dumper(yaml.SafeDumper):
    """Writes back what ``load`` read: every string double-quoted, so that none reads back
    as a number or a boolean, and every number as it was written (``0.10`` stays)."""


def _text_number(dumper: yaml.SafeDumper, value: Any) -> yaml.ScalarNode:
    tag = "int" if isinstance(value, int) else "float"
    return dumper.represent_scalar(f"tag:yaml.org,2002:{tag}", value.text)


_Dumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v,
                                                             style='"'))
for _cls in {type(v) for v in load("[1, 1.5]")}:
    _Dumper.add_multi_representer(_cls, _text_number)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# -- walking a document with its spec ---------------------------------------------------------

SCALARS = {"str", "int", "float", "bool", "literal", "any"}


def fits(spec: Spec, value: Any) -> bool:
    """Whether ``value`` has the shape and type ``spec`` asks for (bounds included)."""
    kind = spec["kind"]
    if kind == "union":
        return any(fits(s, value) for s in spec["of"])
    if kind == "model":
        fields = spec["fields"]
        return isinstance(value, dict) and all(
            k in fields and fits(fields[k]["spec"], v) for k, v in value.items()) and all(
            k in value for k, f in fields.items() if f["required"])
    if kind in ("dict", "list"):
        inner = spec["value" if kind == "dict" else "item"]
        items = value.values() if isinstance(value, dict) else value
        return isinstance(value, dict if kind == "dict" else list) and all(
            fits(inner, v) for v in items)
    return _fits_scalar(spec, value)


def _fits_scalar(spec: Spec, value: Any) -> bool:
    kind = spec["kind"]
    if kind == "literal":
        return any(value == v and type(value) is type(v) for v in spec["values"])
    if kind == "any":
        return value is not None
    if kind == "bool" or isinstance(value, bool):
        return kind == "bool" and isinstance(value, bool)
    types_ = {"str": str, "int": int, "float": int | float}
    if not isinstance(value, types_[kind]):
        return False
    if kind == "str":
        return (not spec.get("pattern") or re.search(spec["pattern"], value) is not None) \
            and len(value) <= spec.get("max_length", len(value))
    return math.isfinite(value) and spec.get("ge", value) <= value <= spec.get("le", value)


def resolve(spec: Spec, value: Any) -> Spec:
    """The member of a union that the mapping or list ``value`` is; several models that fit
    are merged (their keys are all allowed: which one applies may depend on something outside
    the value). A union of scalars stays as it is: a new value may be of any of its types."""
    if spec["kind"] != "union" or not isinstance(value, dict | list):
        return spec
    models = [s for s in spec["of"] if s["kind"] == "model" and isinstance(value, dict)
              and _model_matches(s, value)]
    if len(models) > 1:
        merged: dict[str, Any] = {}
        for m in models:
            merged.update(m["fields"])
        return {"kind": "model", "name": "|".join(m["name"] for m in models), "fields": merged}
    fitting = models or [s for s in spec["of"] if s["kind"] not in SCALARS and fits(s, value)]
    return fitting[0] if fitting else spec


def _model_matches(spec: Spec, value: dict[str, Any]) -> bool:
    fields = spec["fields"]
    return all(k in fields for k in value) and all(
        fits(f["spec"], value[k]) for k, f in fields.items()
        if f["spec"]["kind"] == "literal" and k in value)


@dataclass(frozen=True)
class Node:
    """A place in a document: ``label`` names it by the schema key that holds it, with
    ``[]`` for each entry of a mapping or list below that key (``env[]``, ``after[]``)."""

    path: tuple[str | int, ...]
    label: str
    spec: Spec
    value: Any


def nodes(doc: Any, spec: Spec) -> list[Node]:
    found: list[Node] = []

    def walk(value: Any, spec: Spec, path: tuple[str | int, ...], label: str) -> None:
        spec = resolve(spec, value)
        found.append(Node(path, label, spec, value))
        if spec["kind"] == "model" and isinstance(value, dict):
            for key, sub in value.items():
                if key in spec["fields"]:
                    walk(sub, spec["fields"][key]["spec"], (*path, key), key)
        elif spec["kind"] == "dict" and isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, spec["value"], (*path, key), label + "[]")
        elif spec["kind"] == "list" and isinstance(value, list):
            for i, sub in enumerate(value):
                walk(sub, spec["item"], (*path, i), label + "[]")

    walk(doc, spec, (), "")
    return found


# Values that name something else in the project: label -> (section, the name in a value).
REFERENCES: dict[str, tuple[str, Any]] = {
    "cluster": ("clusters", lambda v: v),
    "after[]": ("jobs", lambda v: v),
    "sync": ("syncs", lambda v: v),
    "from": ("storage", lambda v: v.split(":", 1)[0] if ":" in v else None),
    "to": ("storage", lambda v: v.split(":", 1)[0] if ":" in v else None),
    "image": ("images", lambda v: None if "/" in v or ":" in v else v),
}
# Labels whose values must name an entry (the others may also be paths or image references).
MUST_NAME = {"cluster", "after[]", "sync"}


VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PARAMETER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def references(found: list[Node], below: tuple[str | int, ...]) -> set[tuple[str, str]]:
    """The names the values below ``below`` refer to: (section, name), with ("${}", NAME)
    for each ${NAME} (a secret, an env name or a platform variable) and ("{{}}", NAME) for
    each parameter {{ NAME }}."""
    refs = set()
    for n in found:
        if n.path[:len(below)] != below or not isinstance(n.value, str):
            continue
        refs |= {("${}", name) for name in VARIABLE.findall(n.value)}
        refs |= {("{{}}", name) for name in PARAMETER.findall(n.value)}
        if n.label in REFERENCES:
            section, name = REFERENCES[n.label][0], REFERENCES[n.label][1](n.value)
            if name is not None:
                refs.add((section, name))
    return refs


def known(doc: Any) -> set[tuple[str, str]]:
    """What values may refer to in ``doc``: its clusters, jobs, syncs and storage, the
    ${NAME}s it declares or already uses, and the parameters it already uses."""
    if id(doc) not in _KNOWN:
        found = {(s, n) for s in ("clusters", "jobs", "syncs", "storage", "images")
                 for n in names(doc, s)}
        found |= {("${}", n) for n in [*doc.get("secrets", []), *doc.get("env", {})]}
        _KNOWN[id(doc)] = (doc, found | references(nodes(doc, schema()), ()))
    return _KNOWN[id(doc)][1]


# By id of the doc, which is kept so that its id is not reused.
_KNOWN: dict[int, tuple[Any, set[tuple[str, str]]]] = {}


def names(doc: dict[str, Any], section: str) -> list[str]:
    value = doc.get(section)
    return sorted(value) if isinstance(value, dict) else []


# -- what the test projects use, by label -------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    value: Any
    refs: frozenset[tuple[str, str]]


def harvest(docs: list[Any], spec: Spec) -> dict[str, list[Seen]]:
    """Every value (and, under ``LABEL{}``, every mapping key) found in ``docs``, by label,
    with the names it refers to; the first source of values for a change."""
    pools: dict[str, dict[str, Seen]] = {}
    for doc in docs:
        found = nodes(doc, spec)
        for n in found:
            seen = Seen(n.value, frozenset(references(found, n.path)))
            pools.setdefault(n.label, {}).setdefault(repr(n.value), seen)
            if n.spec["kind"] == "dict" and isinstance(n.value, dict):
                for key in n.value:
                    pools.setdefault(n.label + "{}", {}).setdefault(repr(key), Seen(key, seen.refs))
    return {label: list(by_repr.values()) for label, by_repr in pools.items()}


# -- strategies for values ------------------------------------------------------------------------

PLAIN_TEXT = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
ODD_TEXT = st.sampled_from(["a b", "it's", '"q"', "$(touch pwned)", "x\ny", "ünï ✓", ""])


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each picked ``weight`` times as often as one of weight 1."""
    return st.sampled_from([s for w, s in choices for _ in range(w)]).flatmap(lambda s: s)


def values(spec: Spec, label: str, doc: dict[str, Any], pools: dict[str, list[Seen]]
           ) -> st.SearchStrategy[Any]:
    """Values for the place ``label``: names that exist (only those, where a name must
    exist), values seen elsewhere under the same label, and values made from the type."""
    here = names(doc, REFERENCES[label][0]) if label in REFERENCES else []
    if label in ("from", "to") and here:
        return weighted((2, st.tuples(st.sampled_from(here), PLAIN_TEXT).map(":".join)),
                        (1, made(spec, label, doc, pools)))
    if here and label in MUST_NAME:
        return st.sampled_from(here)
    seen = [s.value for s in pools.get(label, [])
            if s.refs <= known(doc) and fits(spec, s.value)]
    choices = [(2, st.sampled_from(here))] if here else []
    choices += [(3, st.sampled_from(seen))] if seen else []
    return weighted(*choices, (1, made(spec, label, doc, pools)))


def made(spec: Spec, label: str, doc: dict[str, Any], pools: dict[str, list[Seen]]
         ) -> st.SearchStrategy[Any]:
    """A value of type ``spec`` built from scratch (mappings and lists of one entry)."""
    kind = spec["kind"]
    if kind == "union":
        return st.one_of([made(s, label, doc, pools) for s in spec["of"]])
    if kind == "model":
        return _model(spec, doc, pools)
    if kind == "dict":
        return st.dictionaries(keys(label, {}, pools),
                               values(spec["value"], label + "[]", doc, pools),
                               min_size=1, max_size=1)
    if kind == "list":
        return st.lists(values(spec["item"], label + "[]", doc, pools), min_size=1, max_size=1)
    return _scalar(spec)


def _scalar(spec: Spec) -> st.SearchStrategy[Any]:
    kind = spec["kind"]
    if kind == "literal":
        return st.sampled_from(spec["values"])
    if kind == "bool":
        return st.booleans()
    if kind in ("int", "float"):
        low = spec.get("ge", spec.get("gt", -1) + 1)
        high = spec.get("le", spec.get("lt", low + 1001) - 1)
        ints = st.integers(low, min(high, low + 100)) | st.sampled_from([low, high])
        return ints if kind == "int" else ints | ints.map(lambda i: i + 0.5).filter(
            lambda x: x <= high)
    if kind == "str" and spec.get("pattern"):
        return st.from_regex(spec["pattern"], fullmatch=True).filter(
            lambda s: len(s) <= spec.get("max_length", len(s)))
    if kind == "str":
        return weighted((3, PLAIN_TEXT), (1, ODD_TEXT))
    return PLAIN_TEXT | st.lists(PLAIN_TEXT, min_size=1, max_size=3)  # "any": code or argv


def _model(spec: Spec, doc: dict[str, Any], pools: dict[str, list[Seen]]
           ) -> st.SearchStrategy[dict[str, Any]]:
    """The required keys, and one optional key when there is none or with some chance."""
    fields = spec["fields"]
    required = {k: values(f["spec"], k, doc, pools) for k, f in fields.items() if f["required"]}
    optional = [k for k, f in fields.items() if not f["required"]]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        value = draw(st.fixed_dictionaries(required))
        if optional and (not required or draw(st.booleans())):
            key = draw(st.sampled_from(optional))
            value[key] = draw(values(fields[key]["spec"], key, doc, pools))
        return value

    return build()


def keys(label: str, taken: dict[str, Any], pools: dict[str, list[Seen]]
         ) -> st.SearchStrategy[str]:
    """A key for a new entry of the mapping at ``label``: one seen there elsewhere, or a
    new word in the case the mapping's keys use."""
    seen = [s.value for s in pools.get(label + "{}", []) if s.value not in taken]
    upper = any(isinstance(s.value, str) and s.value.isupper()
                for s in pools.get(label + "{}", []))
    word = PLAIN_TEXT.map(str.upper) if upper else PLAIN_TEXT
    return (st.sampled_from(seen) | word if seen else word).filter(lambda k: k not in taken)


# -- one change ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    op: str  # "add", "set" or "remove"
    path: tuple[str | int, ...]  # for "add" to a mapping or list: the container's path
    spec: Spec
    label: str
    into: str = ""  # for "add": "model" (path ends with the key), "dict" or "list"


def sites(doc: Any, spec: Spec) -> list[Site]:
    """Every change that touches one leaf of ``doc``."""
    found, every = [], nodes(doc, spec)
    needed = {(*n.path, k) for n in every if n.spec["kind"] == "model"
              for k, f in n.spec["fields"].items() if f["required"]}
    for n in every:
        kind = n.spec["kind"]
        if n.path and n.path not in needed:  # without a required key, no project is valid
            found.append(Site("remove", n.path, n.spec, n.label))
        if n.path and (kind in SCALARS or kind == "union" and all(
                s["kind"] in SCALARS for s in n.spec["of"])):
            found.append(Site("set", n.path, n.spec, n.label))
        if kind == "model" and isinstance(n.value, dict):
            found += [Site("add", (*n.path, k), f["spec"], k, "model")
                      for k, f in n.spec["fields"].items() if k not in n.value]
        elif kind == "dict" and isinstance(n.value, dict):
            found.append(Site("add", n.path, n.spec["value"], n.label + "[]", "dict"))
        elif kind == "list" and isinstance(n.value, list):
            found.append(Site("add", n.path, n.spec["item"], n.label + "[]", "list"))
    return found


def at(doc: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (
        not isinstance(a, bool) and not isinstance(b, bool) and isinstance(a, int | float)
        and isinstance(b, int | float) and a == b)


class Change:
    """One change of a project, shown as what was done where (a repr hypothesis prints)."""

    def __init__(self, project: str, op: str, path: tuple[str | int, ...], value: Any,
                 text: str) -> None:
        self.project, self.op, self.path, self.value = project, op, path, value
        self.text = text  # the changed project.yaml

    def __repr__(self) -> str:
        where = ".".join(map(str, self.path))
        shown = "" if self.op == "remove" else f" = {json.dumps(self.value, default=str)}"
        return f"<{self.project}: {self.op} {where}{shown}>"


@st.composite
def changes(draw: st.DrawFn, project: str) -> Change:
    doc, spec, pools = ORIGINAL[project], schema(), POOLS
    where = sites(doc, spec)
    op = draw(st.sampled_from([op for op in ("add", "set", "remove")
                               if any(s.op == op for s in where)]))
    # Each key of the schema as likely as any other, however many places it could go.
    label = draw(st.sampled_from(sorted({s.label for s in where if s.op == op})))
    site = draw(st.sampled_from([s for s in where if s.op == op and s.label == label]))
    changed = copy.deepcopy(doc)
    path, value = site.path, None
    if op == "remove":
        parent = at(changed, path[:-1])
        del parent[path[-1]]
    elif op == "set":
        old = at(doc, path)
        value = draw(values(site.spec, site.label, doc, pools).filter(lambda v: not same(v, old)))
        at(changed, path[:-1])[path[-1]] = value
    elif site.into == "model":
        value = draw(values(site.spec, site.label, doc, pools))
        at(changed, path[:-1])[path[-1]] = value
    elif site.into == "dict":
        mapping = at(changed, path)
        key = draw(keys(site.label[:-2], mapping, pools))
        value = mapping[key] = draw(values(site.spec, site.label, doc, pools))
        path = (*path, key)
    else:
        items = at(changed, path)
        index = draw(st.integers(0, len(items)))
        value = draw(values(site.spec, site.label, doc, pools))
        items.insert(index, value)
        path = (*path, index)
    return Change(project, op, path, value, dump(changed))


PROJECT_NAMES = valid_projects()
ORIGINAL = {name: load((PROJECTS / name / "project.yaml").read_text(encoding="utf-8"))
            for name in PROJECT_NAMES}
POOLS = harvest([*ORIGINAL.values(), load((ROOT / "project.yaml").read_text(encoding="utf-8"))],
                schema())


# -- building and comparing ------------------------------------------------------------------------

@dataclass
class Build:
    code: int
    stdout: str
    stderr: str


def build(folder: Path) -> Build:
    """``jobpack build`` of folder/project.yaml into folder/out, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = jobpack_main(["build", "-p", str(folder / "project.yaml"),
                             "-o", str(folder / "out")])
    return Build(code, out.getvalue(), err.getvalue().replace(str(folder), "<folder>"))


def tree(out: Path) -> dict[str, tuple[bytes, bool] | None]:
    """Every file below out/ (content, executable) and every folder (None)."""
    found: dict[str, tuple[bytes, bool] | None] = {}
    for here, dirs, files in os.walk(out):
        rel = Path(here).relative_to(out)
        found.update({(rel / d).as_posix() + "/": None for d in dirs})
        for f in files:
            path = Path(here) / f
            found[(rel / f).as_posix()] = (path.read_bytes(), os.access(path, os.X_OK))
    return found


def differences(incremental: Path, full: Path) -> str:
    """What differs between two out/ trees, as a user would want to read it ('' if none)."""
    a, b = tree(incremental), tree(full)
    lines = [f"only in the incremental build: {p}" for p in sorted(set(a) - set(b))]
    lines += [f"missing from the incremental build: {p}" for p in sorted(set(b) - set(a))]
    # MANIFEST.sha256 last: it differs wherever another file does.
    for rel in sorted(set(a) & set(b), key=lambda p: (p == "MANIFEST.sha256", p)):
        if a[rel] is None or b[rel] is None or a[rel] == b[rel]:
            continue
        (old, old_x), (new, new_x) = a[rel], b[rel]  # type: ignore[misc]
        if old_x != new_x:
            lines.append(f"{rel}: executable {old_x} in the incremental build, {new_x} in the "
                         "full build")
        if old != new:
            diff = clipped(list(difflib.unified_diff(
                old.decode(errors="replace").splitlines(),
                new.decode(errors="replace").splitlines(),
                f"incremental/{rel}", f"full/{rel}", lineterm="", n=1)))
            more = f"\n  ... {len(diff) - 24} more diff lines" if len(diff) > 24 else ""
            lines.append(f"{rel} differs:\n  " + "\n  ".join(diff[:24]) + more)
    return "\n".join(lines)


def clipped(diff: list[str], width: int = 120) -> list[str]:
    """Long changed lines cut to the part around their first difference from the line
    they replace (generated scripts hold lines of hundreds of characters)."""
    out = list(diff)
    for i in range(len(out) - 1):
        minus, plus = diff[i], diff[i + 1]
        if not (minus.startswith("-") and plus.startswith("+")) or minus.startswith("---") \
                or max(len(minus), len(plus)) <= width:
            continue
        pairs = zip(minus[1:], plus[1:], strict=False)
        at = next((j for j, (x, y) in enumerate(pairs) if x != y), min(len(minus), len(plus)) - 1)
        start = max(0, at - width // 3)
        for k, line in ((i, minus), (i + 1, plus)):
            body = line[1 + start:1 + start + width]
            out[k] = line[0] + ("…" if start else "") + body + ("…" if len(line) > 1 + start
                                                                 + width else "")
    return out


@dataclass(frozen=True)
class Original:
    """A project (as ``dump`` writes it) built once in ``work``, and a copy of that folder
    (project, data files, out/ and the build state .jobpack/) in ``saved``."""

    work: Path
    saved: Path

    def restore(self) -> Path:
        """``work`` as it was right after the build: same paths, contents and mtimes, so
        that the build state (which names files by their absolute paths) is its own."""
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.copytree(self.saved, self.work, symlinks=True)
        return self.work


@pytest.fixture(scope="session")
def prebuilt(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Original]:
    """Each project built once, when first asked for."""
    built: dict[str, Original] = {}

    def original(name: str) -> Original:
        if name not in built:
            base = tmp_path_factory.mktemp("incremental-original")
            folder = base / "work"
            shutil.copytree(PROJECTS / name, folder)
            (folder / "project.yaml").write_text(dump(ORIGINAL[name]), encoding="utf-8")
            result = build(folder)
            assert result.code == 0, result.stderr
            shutil.copytree(folder, base / "saved", symlinks=True)
            built[name] = Original(folder, base / "saved")
        return built[name]

    return original


@pytest.mark.parametrize("project", PROJECT_NAMES)
def test_a_restored_build_is_incremental(project: str,
                                         prebuilt: Callable[[str], Original]) -> None:
    """The folders the property test builds into keep their build state: building one
    unchanged plans and renders nothing (else the property would compare two full builds)."""
    folder = prebuilt(project).restore()
    before = snapshot(folder / "out")
    result = build(folder)
    assert result.code == 0, result.stderr
    assert not re.search(r"^(plan|render|bundle)\b", result.stdout, re.M), \
        f"a build of an unchanged project ran tasks again:\n{result.stdout}"
    assert snapshot(folder / "out") == before


# An example costs about two builds that render (a fraction of a second when idle): 30 per
# project, and at least 300 in all (12 projects: 360). The bugs this catches are often one
# key wide (a key read by a template that its group's digest leaves out), so deeper runs
# (INCREMENTAL_EXAMPLES) find more.
PER_PROJECT = int(os.environ.get("INCREMENTAL_EXAMPLES", 0)) or \
    max(30, math.ceil(300 / max(1, len(PROJECT_NAMES))))
# At most this share of changes may make a project invalid: beyond it, the generator has
# drifted from the schema and mostly tests error messages. (A job whose keys fit several
# kinds may be given a key its own kind refuses; values are drawn by type, and many texts
# are refused by the checks.) Measured: 40-50% on the NGC projects, where a share of 30
# changes swings by about 9% from one project to the next.
MAX_INVALID = 0.6


@pytest.mark.parametrize("project", PROJECT_NAMES)
def test_incremental_build_equals_full_build(project: str,
                                             prebuilt: Callable[[str], Original],
                                             tmp_path: Path) -> None:
    counts: Counter[str] = Counter()
    original = prebuilt(project)

    # No explain phase: it reruns failing examples many times, for little a diff lacks.
    @settings(max_examples=PER_PROJECT, derandomize=True, database=None, deadline=None,
              print_blob=False, phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(change=changes(project))
    def incremental_equals_full(change: Change) -> None:
        counts["examples"] += 1
        work = tmp_path / str(counts["examples"])
        try:
            compare(change, original, work, counts)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    incremental_equals_full()
    print(f"{project}: {counts['examples']} changes, {counts['invalid']} of them invalid")
    assert counts["invalid"] <= MAX_INVALID * counts["examples"], \
        f"{counts['invalid']} of {counts['examples']} changes made {project} invalid"


def compare(change: Change, original: Original, work: Path, counts: Counter[str]) -> None:
    incremental = original.restore()
    (incremental / "project.yaml").write_text(change.text, encoding="utf-8")
    before = snapshot(incremental / "out")
    inc = build(incremental)

    full = work / "full"
    shutil.copytree(original.saved, full, ignore=shutil.ignore_patterns("out", ".jobpack"))
    (full / "project.yaml").write_text(change.text, encoding="utf-8")
    fresh = build(full)

    if fresh.code != 0:
        counts["invalid"] += 1
        event("the change makes the project invalid")
        assert (inc.code, inc.stderr) == (fresh.code, fresh.stderr), (
            f"the full build failed with exit {fresh.code}:\n{fresh.stderr}\n"
            f"the incremental build gave exit {inc.code}:\n{inc.stderr}")
        assert snapshot(incremental / "out") == before, "a failed build changed out/"
        return
    event("the change keeps the project valid")
    assert inc.code == 0, f"the incremental build failed (the full build did not):\n{inc.stderr}"
    # An editor checking against `jobpack schema` must not flag a project jobpack builds.
    assert not schema_problems(change.text), schema_problems(change.text)
    diff = differences(incremental / "out", full / "out")
    if diff:
        raise AssertionError(f"the incremental build differs from a full build:\n{diff}")
