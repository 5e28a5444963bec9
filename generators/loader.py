"""YAML -> plain Python values, remembering FILE:LINE:COL of every key and value.

The project file is composed into nodes with PyYAML's C parser and turned into values by our
own walk, so that:
- every mapping key and value keeps its position (``Source.where(path)``);
- scalars resolve as YAML 1.2 does: ``24:00:00`` stays a string (YAML 1.1 would read it as
  the integer 86400) and ``no``/``on`` stay strings;
- duplicate keys are errors instead of silently keeping the last one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, ProjectError

Loc = tuple[str | int, ...]

try:
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _BaseLoader = yaml.SafeLoader

_INT = re.compile(r"[-+]?[0-9]+$|0o[0-7]+$|0x[0-9a-fA-F]+$")


class Int(int):
    """An integer that remembers how it was written (``007`` stays ``007`` in a script)."""

    text: str


class Float(float):
    """A number that remembers how it was written (``0.10`` stays ``0.10``)."""

    text: str


def _number(cls: type[Int] | type[Float], value: int | float, text: str) -> Int | Float:
    out = cls(value)
    out.text = text
    return out
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"),
                  ".nan": float("nan")}
_BOOL = {"true": True, "false": False}
_NULL = {"", "~", "null"}


def dotted(loc: Loc) -> str:
    """Render a value path the way error messages show it.

    >>> dotted(("jobs", "train", "after", 0))
    'jobs.train.after[0]'
    >>> dotted(())
    '(top)'
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


@dataclass
class Source:
    """Positions of every value of one loaded file."""

    file: str
    text: str = ""
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    spans: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    scalars: dict[Loc, tuple[str, int, str]] = field(default_factory=dict)

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """Line and column of the value at ``loc`` (or of its key), else of its nearest parent."""
        table = self.key_positions if key else self.positions
        loc = tuple(loc)
        while loc:
            if loc in table:
                return table[loc]
            if loc in self.positions:
                return self.positions[loc]
            loc = loc[:-1]
        return self.positions.get((), (1, 1))

    def snippet(self, loc: Loc) -> str:
        """The YAML text of the value at ``loc`` (for digests of what a group reads)."""
        start, end = self.spans.get(tuple(loc), (0, 0))
        return self.text[start:end]

    def within(self, loc: Loc, offset: int) -> tuple[int, int]:
        """Line and column of character ``offset`` of the string at ``loc``: exact for
        single-line and literal block (``|``) scalars, the nearest line start for folded
        ones, the scalar's start otherwise."""
        line, col = self.where(loc)
        start = self.scalars.get(tuple(loc))
        if start is None:
            return line, col
        style, index, value = start
        if style in ("|", ">"):
            return _block_position(self.text, index, value, offset) or (line, col)
        if "\n" in value[:offset]:
            return line, col
        return line, col + offset + (1 if style in ("'", '"') else 0)

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        line, col = self.where(loc, key=key)
        return Problem(self.file, line, col, dotted(loc), message)


def _scalar(node: yaml.ScalarNode) -> Any:
    text = node.value
    if node.style or node.tag not in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int",
                                      "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                                      "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp"):
        return text  # quoted or block scalars, and unknown tags, are strings
    low = text.lower()
    if low in _NULL:
        return None
    if low in _BOOL:
        return _BOOL[low]
    if _INT.match(text):
        return _number(Int, int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10), text)
    if _FLOAT.match(text):
        return _number(Float, float(text), text)
    if low in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[low]
    return text


class _Walker:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def value(self, node: yaml.Node, loc: Loc) -> Any:
        self.source.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if len(loc) <= 2:
            self.source.spans[loc] = (node.start_mark.index, node.end_mark.index)
        if isinstance(node, yaml.ScalarNode):
            if "{{" in node.value:  # where its placeholders stand, for error messages
                self.source.scalars[loc] = (node.style or "", node.start_mark.index,
                                            node.value)
            return _scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(child, (*loc, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc)
        raise AssertionError(f"unexpected YAML node {node!r}")

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            pos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem(
                    self.source.file, *pos, dotted(loc),
                    "a key must be a plain name; a value that starts with '{' (such as "
                    "'{{ name }}') must be quoted, because YAML reads '{' as a mapping"))
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(Problem(self.source.file, *pos, dotted(loc),
                                             "YAML merge keys ('<<') are not supported"))
                continue
            key = str(_scalar(key_node)) if key_node.value else ""
            if key in out:
                first = self.source.key_positions[(*loc, key)]
                self.problems.append(Problem(
                    self.source.file, *pos, dotted((*loc, key)),
                    f"duplicate key (first given at line {first[0]})"))
                continue
            self.source.key_positions[(*loc, key)] = pos
            out[key] = self.value(value_node, (*loc, key))
        return out


def _block_position(text: str, index: int, value: str, offset: int) -> tuple[int, int] | None:
    """Line and column of character ``offset`` of a block scalar whose indicator (``|``,
    ``>``) is at ``index`` of ``text``: the value's lines are the raw lines after it, less
    their indentation (a folded scalar joins them with one character each)."""
    first = text.find("\n", index)
    if first < 0:
        return None
    raw = text[first + 1:].split("\n")
    indent = next((len(r) - len(r.lstrip(" ")) for r in raw if r.strip()), 0)
    line0 = text.count("\n", 0, first + 1) + 1
    consumed = 0
    for k, row in enumerate(raw):
        width = max(0, len(row) - indent)
        if offset <= consumed + width:
            return line0 + k, indent + offset - consumed + 1
        consumed += width + 1
    return None


def _syntax_problem(file: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    msg = exc.problem or "invalid YAML"
    if exc.context:
        msg = f"{msg} ({exc.context})"
    lines = text.splitlines()
    near = " ".join(lines[max(0, line - 2):line]) if lines else ""
    if "{{" in near or "${" in near:
        msg += ("; quote values that start with '{' or that contain '{{' or '${' inside a "
                "'{ ... }' mapping, e.g. command: \"{{ name }}\"")
    return Problem(file, line, col, "yaml", f"syntax error: {msg}")


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, Source]:
    """Load one YAML file into plain values and their positions; raise ProjectError."""
    display = display or path.name
    source = Source(display)
    try:
        text = path.read_text(encoding="utf-8")
        source.text = text
    except FileNotFoundError:
        raise ProjectError([Problem(display, 1, 1, "(file)", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ProjectError([Problem(display, 1, 1, "(file)", f"not UTF-8 text: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=_BaseLoader)
    except yaml.MarkedYAMLError as exc:
        raise ProjectError([_syntax_problem(display, text, exc)]) from None
    except yaml.YAMLError as exc:
        raise ProjectError([Problem(display, 1, 1, "yaml", f"syntax error: {exc}")]) from None
    if node is None:
        return None, source
    walker = _Walker(source)
    data = walker.value(node, ())
    if walker.problems:
        raise ProjectError(walker.problems)
    return data, source
