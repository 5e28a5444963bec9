"""YAML -> plain Python values, remembering FILE:LINE:COL of every key and value.

The project file is parsed into events with PyYAML's C parser and composed into nodes by our
own loop, then turned into values by our own walk, so that:
- every mapping key and value keeps its position (``Source.where(path)``);
- scalars resolve as YAML 1.2 does: ``24:00:00`` stays a string (YAML 1.1 would read it as
  the integer 86400) and ``no``/``on`` stay strings;
- duplicate keys are errors instead of silently keeping the last one;
- hostile files end in an error, never a hang or a traceback: the file is read only when it is
  a regular file of bounded size, nesting is bounded, an alias may not contain itself, and
  aliases may not expand the document beyond a fixed number of values (a "billion laughs"
  file is refused within a fraction of a second);
- only the standard tags (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!seq``, ``!!map``) are accepted, so that ``!!python/...`` never turns into a value.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, ProjectError
from .paths import file_kind, project_file_problem

Loc = tuple[str | int, ...]

try:
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _BaseLoader = yaml.SafeLoader

# Limits on what a file may ask of the loader. A project file is written by hand; these are
# orders of magnitude above any real one and far below what would exhaust time or memory.
MAX_PROJECT_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000  # keys, items and scalars, counting each time an alias repeats them

_INT = re.compile(r"[-+]?[0-9]+$|0o[0-7]+$|0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"),
                  ".nan": float("nan")}
_BOOL = {"true": True, "false": False}
_NULL = {"", "~", "null"}
_TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null")}
COLLECTION_TAGS: dict[type, str] = {yaml.SequenceNode: f"{_TAG}seq",
                                     yaml.MappingNode: f"{_TAG}map"}


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


class ReadError(Exception):
    """A file could not be read as text; ``line``/``col`` are set when the content is at fault
    (a byte that is not UTF-8), and are 0 when the file itself is (missing, a FIFO, ...)."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


def _read_bytes(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    The file is opened without blocking and checked with fstat before anything is read, so a
    FIFO, a device (/dev/zero) or a folder is refused at once instead of hanging.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ReadError("was not found") from None
    except PermissionError:
        raise ReadError("cannot be read (permission denied)") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ReadError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReadError(f"is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise ReadError(f"is too large ({info.st_size} bytes; at most {limit} are read)")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise ReadError(f"is too large (more than {limit} bytes)")
        return b"".join(chunks)
    except OSError as exc:
        raise ReadError(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_text(path: Path, limit: int) -> str:
    """The UTF-8 text of the regular file ``path``; raise ReadError otherwise.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".yaml") as f:
    ...     _ = f.write(b"a: 1\\nb: \\xff\\n"); f.flush()
    ...     try:
    ...         read_text(Path(f.name), 100)
    ...     except ReadError as exc:
    ...         print(exc.line, exc.col, exc.message)
    2 4 not UTF-8 text: byte 0xff at byte offset 8 (line 2, byte 4 of the line)
    """
    data = _read_bytes(path, limit)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a byte order mark is no text
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ReadError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset "
                        f"{exc.start} (line {line}, byte {col} of the line)", line, col) from None


def dotted(loc: Loc) -> str:
    """Render a value path the way error messages show it.

    A key that is not printable text (a newline, a tab, ...) is shown quoted, so that an error
    line never breaks.

    >>> dotted(("jobs", "train", "after", 0))
    'jobs.train.after[0]'
    >>> dotted(())
    '(top)'
    >>> dotted(("jobs", "a\\nb"))
    "jobs['a\\\\nb']"
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).isprintable() or not str(part):
            out += f"[{str(part)!r}]"
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


class _Refused(Exception):
    """A node the loader will not turn into a value; becomes one Problem."""

    def __init__(self, mark: Any, path: str, message: str) -> None:
        super().__init__(message)
        self.mark, self.path, self.message = mark, path, message


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _explicit(node: yaml.ScalarNode) -> Any:
    """The value of a scalar with an explicit standard tag (``!!str 5`` is the text '5')."""
    kind, text, low = node.tag.removeprefix(_TAG), node.value, node.value.lower()
    if kind == "str":
        return text
    if kind == "null" and low in _NULL:
        return None
    if kind == "bool" and low in _BOOL:
        return _BOOL[low]
    if kind in ("int", "float") and _INT.match(text):
        return _int(text) if kind == "int" else _number(Float, float(_int(text)), text)
    if kind == "float" and (_FLOAT.match(text) or low in _SPECIAL_FLOAT):
        value = _SPECIAL_FLOAT[low] if low in _SPECIAL_FLOAT else float(text)
        return _number(Float, value, text)
    raise _Refused(node.start_mark, "", f"{text!r} is not a valid {_short_tag(node.tag)}")


def _int(text: str) -> Int:
    try:
        value = int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)
    except ValueError:  # beyond Python's limit on digits converted at once
        raise ValueError(f"a number of {len(text)} digits is too large (quote it if it is "
                         "text)") from None
    return _number(Int, value, text)  # type: ignore[return-value]


def _scalar(node: yaml.ScalarNode) -> Any:
    """A scalar's value: YAML 1.2 rules for plain scalars, text for quoted and block ones."""
    if node.tag not in ("", "!"):
        return _explicit(node)
    text = node.value
    if node.style or node.tag == "!":
        return text  # quoted or block scalars are strings
    if text[:1].isalpha() and text[:1] not in "nNtTfF":
        return text  # a word: no number, boolean or null starts with these letters
    low = text.lower()
    if low in _NULL:
        return None
    if low in _BOOL:
        return _BOOL[low]
    if _INT.match(text):
        return _int(text)
    if _FLOAT.match(text):
        return _number(Float, float(text), text)
    if low in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[low]
    return text


class _Composer:
    """Events -> nodes, with a bounded depth, checked tags and no alias inside itself.

    PyYAML's own composer recurses once per level and accepts recursive aliases; this loop
    keeps its own stack, so a hostile file can neither exhaust the Python stack nor build a
    value that contains itself.
    """

    def __init__(self, any_tag: bool) -> None:
        self.any_tag = any_tag
        self.anchors: dict[str, yaml.Node] = {}
        self.open: set[str] = set()  # anchors of collections not yet closed
        self.stack: list[list[Any]] = []  # [node, anchor, pending mapping key]
        self.root: yaml.Node | None = None
        self.documents = 0
        self.count = 0
        self.handlers: dict[type, Callable[[Any], None]] = {
            yaml.ScalarEvent: self.scalar, yaml.AliasEvent: self.alias,
            yaml.SequenceStartEvent: self.start, yaml.MappingStartEvent: self.start,
            yaml.SequenceEndEvent: self.end, yaml.MappingEndEvent: self.end,
            yaml.DocumentStartEvent: self.document}

    def compose(self, text: str) -> yaml.Node | None:
        handlers = self.handlers
        for event in yaml.parse(text, Loader=_BaseLoader):
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
        return self.root

    def document(self, ev: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise _Refused(ev.start_mark, "yaml", "a second YAML document ('---') is not "
                           "supported: the file holds one mapping")

    def scalar(self, ev: Any) -> None:
        tag = self.tag(ev, yaml.ScalarNode) if ev.tag else ""
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
        if ev.anchor is not None:
            self.anchors[ev.anchor] = node
        self.attach(node)

    def start(self, ev: Any) -> None:
        cls = yaml.SequenceNode if isinstance(ev, yaml.SequenceStartEvent) else yaml.MappingNode
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused(ev.start_mark, "yaml", f"nested more than {MAX_DEPTH} levels deep")
        tag = self.tag(ev, cls) if ev.tag else ""
        node = cls(tag, [], ev.start_mark, ev.end_mark, flow_style=ev.flow_style)
        if ev.anchor is not None:
            self.anchors[ev.anchor] = node
            self.open.add(ev.anchor)
        self.stack.append([node, ev.anchor, None])

    def end(self, ev: Any) -> None:
        node, anchor, _ = self.stack.pop()
        node.end_mark = ev.end_mark
        self.open.discard(anchor)
        self.attach(node)

    def tag(self, ev: Any, cls: type) -> str:
        tag = ev.tag or ""
        if tag in ("", "!") or self.any_tag:
            return tag if tag == "!" else ""
        if tag in (SCALAR_TAGS if cls is yaml.ScalarNode else {COLLECTION_TAGS[cls]}):
            return str(tag)
        raise _Refused(ev.start_mark, "", f"the YAML tag {_short_tag(tag)!r} is not supported; "
                       "only the standard tags !!str, !!int, !!float, !!bool, !!null, !!seq and "
                       "!!map are (quote the value if it is text)")

    def alias(self, ev: Any) -> None:
        if ev.anchor not in self.anchors:
            raise _Refused(ev.start_mark, "yaml", f"alias '*{ev.anchor}' names no anchor "
                           f"'&{ev.anchor}' given before it")
        if ev.anchor in self.open:
            raise _Refused(ev.start_mark, "yaml", f"alias '*{ev.anchor}' is inside the value "
                           f"it refers to (a value cannot contain itself)")
        self.attach(self.anchors[ev.anchor])

    def attach(self, node: yaml.Node) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Refused(node.start_mark, "yaml", f"the file holds more than {MAX_VALUES} "
                           "values (keys, list items and scalars); split the project or move "
                           "long lists into a sequences file")
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        if top[0].__class__ is yaml.SequenceNode:
            top[0].value.append(node)
        elif top[2] is None:
            top[2] = node
        else:
            top[0].value.append((top[2], node))
            top[2] = None


class _Walker:
    """Nodes -> values, recording positions; bounded in depth and in alias expansion."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.budget = MAX_VALUES  # values left to visit, aliases expanded

    def value(self, node: yaml.Node, loc: Loc) -> Any:
        self.budget -= 1
        if self.budget < 0 or len(loc) > MAX_DEPTH:
            raise _Refused(node.start_mark, dotted(loc[:1]), (
                f"YAML aliases expand this file to more than {MAX_VALUES} values; refused "
                "as an alias bomb") if self.budget < 0 else (
                f"nested more than {MAX_DEPTH} levels deep (through aliases)"))
        mark = node.start_mark
        self.source.positions[loc] = (mark.line + 1, mark.column + 1)
        if len(loc) <= 2:
            self.source.spans[loc] = (mark.index, node.end_mark.index)
        cls = node.__class__
        if cls is yaml.ScalarNode:
            if "{{" in node.value:  # where its placeholders stand, for error messages
                style = getattr(node, "style", None) or ""
                self.source.scalars[loc] = (style, mark.index, node.value)
            try:
                return _scalar(node)  # type: ignore[arg-type]
            except ValueError as exc:
                raise _Refused(mark, dotted(loc), str(exc)) from None
            except _Refused as exc:
                raise _Refused(exc.mark, dotted(loc), exc.message) from None
        if cls is yaml.SequenceNode:
            return [self.value(child, (*loc, i)) for i, child in enumerate(node.value)]
        return self.mapping(node, loc)  # type: ignore[arg-type]

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            pos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            problem = _key_problem(key_node)
            if problem:
                self.problems.append(Problem(self.source.file, *pos, dotted(loc), problem))
                continue
            key = str(key_node.value)
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


def _key_problem(node: yaml.Node) -> str | None:
    """Why a mapping key is refused (None when it is a plain scalar key)."""
    if isinstance(node, yaml.MappingNode) and node.flow_style:
        return ("a key must be a plain name; a value that starts with '{' (such as "
                "'{{ name }}') must be quoted, because YAML reads '{' as a mapping")
    if not isinstance(node, yaml.ScalarNode):
        return "a key must be a plain name, not a list or a mapping"
    if node.value == "<<" and not node.style:
        return "YAML merge keys ('<<') are not supported"
    return None


def _syntax_problem(file: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    msg = exc.problem or "invalid YAML"
    if exc.context:
        msg = f"{msg} ({exc.context})"
    return Problem(file, line, col, "yaml", f"syntax error: {msg}{_hint(text, mark, msg)}")


def _hint(text: str, mark: Any, msg: str) -> str:
    """The fix for the two syntax errors people make most: tabs, and unquoted '{'.

    >>> class M: index, line = 3, 1
    >>> _hint("a:\\n\\tb: 1", M(), "found character that cannot start any token")
    '; YAML does not allow tabs for indentation: indent with spaces'
    """
    if mark is None:
        return ""
    lines = text.splitlines()
    here = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in text[mark.index:mark.index + 1] or "\t" in here[:len(here) - len(here.lstrip())]:
        return "; YAML does not allow tabs for indentation: indent with spaces"
    near = " ".join(lines[max(0, mark.line - 1):mark.line + 1])
    about_brace = "flow" in msg or "'{'" in msg or "'}'" in msg
    if about_brace and ("{{" in near or "${" in near):
        return ("; quote values that start with '{' or that contain '{{' or '${' inside a "
                "'{ ... }' mapping, e.g. command: \"{{ name }}\"")
    return ""


def parse_yaml(text: str, display: str, *, any_tag: bool = False) -> tuple[Any, Source]:
    """YAML text -> plain values and their positions; raise ProjectError.

    ``any_tag`` accepts every tag (for config bases, which PyYAML's safe loader reads later);
    the bounds on depth and aliases hold either way.
    """
    source = Source(display, text)
    composer = _Composer(any_tag)
    try:
        node = composer.compose(text)
        if node is None:
            return None, source
        walker = _Walker(source)
        data = walker.value(node, ())
    except _Refused as exc:
        mark = exc.mark
        raise ProjectError([Problem(display, mark.line + 1, mark.column + 1, exc.path or "yaml",
                                    exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        raise ProjectError([_syntax_problem(display, text, exc)]) from None
    except (yaml.YAMLError, RecursionError, MemoryError) as exc:
        raise ProjectError([Problem(display, 1, 1, "yaml", "too large or too deeply nested "
                                    f"to read ({type(exc).__name__})")]) from None
    if walker.problems:
        raise ProjectError(walker.problems)
    return data, source


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, Source]:
    """Load one YAML file into plain values and their positions; raise ProjectError."""
    display = display or path.name
    try:
        text = read_text(path, MAX_PROJECT_BYTES)
    except ReadError as exc:
        message = exc.message if exc.line else project_file_problem(exc.message, display)
        raise ProjectError([Problem(display, exc.line or 1, exc.col or 1, "(file)",
                                    message)]) from None
    return parse_yaml(text, display)


def nesting(value: Any) -> int:
    """How deeply lists and mappings nest in ``value`` (without recursion).

    >>> nesting(1), nesting([1, {"a": [2]}])
    (0, 3)
    """
    depth, level = 0, [value]
    while level:
        level = [v for x in level if isinstance(x, dict | list)
                 for v in (x.values() if isinstance(x, dict) else x)]
        depth += 1
    return depth - 1


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json keeps the last silently).

    >>> _no_duplicates([("a", 1), ("a", 2)])
    Traceback (most recent call last):
    ValueError: the key 'a' is given twice
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            shown = repr(key) if len(key) < 60 else repr(key[:60]) + "..."
            raise ValueError(f"the key {shown} is given twice")
        out[key] = value
    return out


def parse_json(text: str, display: str) -> Any:
    """JSON text -> values; raise ProjectError at the line and column at fault.

    Duplicate keys, numbers too long to convert and nesting beyond MAX_DEPTH are errors too.
    """
    def fail(line: int, col: int, why: str) -> ProjectError:
        return ProjectError([Problem(display, line, col, "(json)", f"invalid JSON: {why}")])

    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise fail(exc.lineno, exc.colno, exc.msg) from None
    except RecursionError:
        raise fail(1, 1, f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # a duplicate key, or a number beyond Python's digit limit
        why = str(exc) if "given twice" in str(exc) else "a number has too many digits"
        raise fail(1, 1, why) from None
    if nesting(data) > MAX_DEPTH:
        raise fail(1, 1, f"nested more than {MAX_DEPTH} levels deep")
    return data
