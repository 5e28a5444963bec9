"""The one checker: collects every problem of a project, in the words of its file."""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Problem, ProjectError
from ..loader import Loc, ReadError, Source, read_text
from . import model as m

BUILTINS = ("project", "user", "job", "run_id")
# The largest data file (sequences, config base) a project may name: far beyond real use.
MAX_DATA_BYTES = 64 * 1024 * 1024
# Variables every platform sets; each cluster kind adds the prefixes of its own.
PLATFORM_NAMES = ("USER", "HOME", "PATH", "TMPDIR", "HOSTNAME", "PWD", "LOGNAME", "RUN_ID",
                  "CUDA_VISIBLE_DEVICES")


def platform_vars(prefixes: typing.Iterable[str]) -> re.Pattern[str]:
    """The names a project may refer to without declaring them: PREFIX_* of every prefix,
    and the variables of every platform.

    >>> bool(platform_vars(["AB"]).fullmatch("AB_X")), bool(platform_vars([]).fullmatch("AB_X"))
    (True, False)
    """
    names = [rf"{re.escape(p)}_[A-Z0-9_]+" for p in sorted(prefixes)] + list(PLATFORM_NAMES)
    return re.compile("|".join(names))


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
    """A valid project with everything a backend needs that YAML alone does not say."""

    project: m.Project
    source: Source
    root: Path
    points: dict[str, Points] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)
    # Sections read by a backend (see ``kind.Section``), by key: what is valid of each.
    sections: dict[str, Any] = field(default_factory=dict)
    # The folder the bundle is written to (-o); None: out/ beside project.yaml.
    out: Path | None = None


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


NAME_RULE = ("uses at most 64 letters, digits, '_', '.' and '-', starting with a letter or "
             "digit (it names files and scheduler jobs)")
PATTERN_WORDS = {
    m.PROJECT: "is not a valid name: use at most 64 lowercase letters, digits and '-', starting "
               "with a letter or digit",
    m.NAME: "is not a valid name: use at most 64 letters, digits, '_', '.' and '-', starting "
            "with a letter or digit",
    m.INTERVAL: "is not an interval: a number and s, m or h (e.g. 15m)",
}


def _shown(value: Any) -> str:
    """A value as the file wrote it, for messages (numbers keep their text).

    >>> _shown("a b"), _shown(True), _shown(float("nan"))
    ("'a b'", 'true', 'nan')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(getattr(value, "text", value))
    return repr(value)


def describe(value: Any) -> str:
    """What a value is, for "expected ..., got ..." messages.

    >>> describe("x"), describe(0), describe([1]), describe(None)
    ("string 'x'", 'integer 0', 'list', 'nothing')
    """
    kinds = [(bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
             (list, "list"), (dict, "mapping"), (type(None), "nothing")]
    kind = next((word for cls, word in kinds if isinstance(value, cls)), type(value).__name__)
    shown = _shown(value)
    scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
    return f"{kind} {shown}" if scalar and len(shown) < 40 else kind


def _data_loc(data: Any, loc: tuple[Any, ...]) -> Loc:
    """The part of a pydantic error location that names keys and indexes of ``data``.

    pydantic adds the member of a union it tried (``'str'``, ``'int'``, ``'list[str]'``) and
    ``'[key]'`` for a bad mapping key; neither is a place in the file.

    >>> _data_loc({"mem": [1]}, ("mem", "str"))
    ('mem',)
    >>> _data_loc({"env": {"A B": 1}}, ("env", "A B", "[key]"))
    ('env', 'A B')
    """
    out: list[str | int] = []
    for part in loc:
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_list or (isinstance(data, dict) and part in data)):
            continue
        data = data[part]
        out.append(part)
    return tuple(out)


def _choices(expected: str) -> list[str]:
    """The values of a pydantic literal error's ``expected`` text.

    >>> _choices("'copy', 'sync' or 'move'")
    ['copy', 'sync', 'move']
    """
    return re.findall(r"'([^']*)'", expected)


def _bound_message(kind: str, err: Any) -> str | None:
    """Our words for pydantic's bound and enum errors (None for other kinds)."""
    ctx, got = err.get("ctx") or {}, err["input"]
    if kind == "literal_error":
        choices = _choices(str(ctx.get("expected", "")))
        near = suggest(got, choices) if isinstance(got, str) else ""
        return f"expected one of {', '.join(map(repr, choices))}{near}, got {describe(got)}"
    bounds = {"greater_than_equal": ("ge", "at least"), "less_than_equal": ("le", "at most"),
              "greater_than": ("gt", "more than"), "less_than": ("lt", "less than")}
    if isinstance(got, float) and not math.isfinite(got) or kind == "finite_number":
        return f"must be a finite number, got {_shown(got)}"
    if kind in bounds:
        key, words = bounds[kind]
        return f"must be {words} {ctx[key]}, got {_shown(got)}"
    if kind == "string_too_long":
        return f"is too long (at most {ctx['max_length']} characters)"
    return None


def _error_message(kind: str, err: Any) -> str:
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} {PATTERN_WORDS.get(err['ctx']['pattern'], 'is not valid')}"
    return _bound_message(kind, err) or str(err["msg"]).removeprefix("Value error, ")


def _pydantic_problems(exc: ValidationError, cls: type[BaseModel], prefix: Loc,
                       source: Source, data: Any) -> list[Problem]:
    problems = []
    expected: dict[Loc, list[str]] = {}  # type errors per place, joined: "a or b"
    for err in exc.errors():
        kind = err["type"]
        if kind == "missing":
            loc = (*_data_loc(data, err["loc"][:-1]), err["loc"][-1])
            msg = f"required key {loc[-1]!r} is missing"
            problems.append(source.problem((*prefix, *loc[:-1]), msg))
            continue
        loc = _data_loc(data, err["loc"])
        if kind == "extra_forbidden":
            owner = _model_at(cls, loc[:-1])
            allowed = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
            msg = f"unknown key {loc[-1]!r}{suggest(str(loc[-1]), allowed)}"
            problems.append(source.problem((*prefix, *loc), msg, key=True))
        elif kind in _TYPE_WORDS:
            words = expected.setdefault(loc, [])
            if _TYPE_WORDS[kind] not in words:
                words.append(_TYPE_WORDS[kind])
        else:
            problems.append(source.problem((*prefix, *loc), _error_message(kind, err)))
    for loc, words in expected.items():
        got = _value_at(data, loc)
        msg = f"expected {' or '.join(words)}, got {describe(got)}"
        if isinstance(got, dict) and any(isinstance(k, str) and k.startswith("{") for k in got):
            msg += "; quote values that start with '{{'"
        problems.append(source.problem((*prefix, *loc), msg))
    return problems


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


_CHAR_NAMES = {"\0": "a NUL byte", "\t": "a tab", "\n": "a newline",
               "\r": "a carriage return", "\x1b": "an escape character", "\x7f": "a DEL"}
_KIND_RULES = {
    m.STRICT: "names, keys, paths, patterns, hosts, image references and options take "
              "printable characters only",
    m.PROSE: "a description may hold newlines and tabs, no other control character",
    m.CODE: "shell code may hold newlines and tabs, no other control character (write others "
            "with printf escapes such as '\\r')",
}


def _bad_char(ch: str, kind: str) -> bool:
    cat = unicodedata.category(ch)
    if ch == "\0" or cat == "Cs":
        return True
    if kind == m.VALUE:
        return False
    if kind == m.STRICT:
        return cat in ("Cc", "Cf", "Zl", "Zp")
    return cat == "Cc" and ch not in "\t\n"


def _char_name(ch: str) -> str:
    cat = unicodedata.category(ch)
    named = {"Cf": "an invisible formatting character", "Zl": "a line separator",
             "Zp": "a paragraph separator", "Cs": "a lone surrogate"}
    return _CHAR_NAMES.get(ch) or named.get(cat, "a control character")


def text_problem(text: str, kind: str) -> str | None:
    r"""Why ``text`` cannot be used as a string of ``kind`` (None when it can).

    >>> text_problem("a\tb", "prose") is None, text_problem("a\0b", "value")
    (True, 'holds a NUL byte (U+0000), which no script or file can carry')
    >>> text_problem("train\n", "strict").split(";")[0]
    'holds a newline (U+000A)'
    """
    if text.isprintable():
        return None
    bad = next((ch for ch in text if _bad_char(ch, kind)), None)
    if bad is None:
        return None
    what = f"{_char_name(bad)} (U+{ord(bad):04X})"
    if bad == "\0":
        return f"holds {what}, which no script or file can carry"
    if unicodedata.category(bad) == "Cs":
        return f"holds {what}, which UTF-8 cannot encode"
    return f"holds {what}; {_KIND_RULES[kind]}"


def check_characters(ck: Checker, data: Any, loc: Loc = ()) -> None:
    """Report every string of ``data`` (keys included) holding a character its place refuses.

    One walk over the raw file, with the place's kind from ``model.TEXT_KINDS``: no field can
    forget the check, and a new field is strict until it is listed there.
    """
    if isinstance(data, dict):
        for key, value in data.items():
            if problem := text_problem(str(key), m.STRICT):
                ck.characters.append(ck.source.problem((*loc, key), f"this key {problem}",
                                                       key=True))
            check_characters(ck, value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            check_characters(ck, value, (*loc, i))
    elif isinstance(data, str) and (
            problem := text_problem(data, m.text_kind(loc, ck.text_kinds))):
        ck.characters.append(ck.source.problem(loc, f"the value {problem}"))


DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def is_number(value: Any) -> bool:
    """Whether a value is a finite number written in decimal, so that a config may hold it as
    a number (``0x1F``, ``.inf`` and ``.nan`` stay text).

    >>> from generators.loader import parse_yaml
    >>> [is_number(v) for v in parse_yaml("[1, 0.5, 1e3, 0x1F, .nan, 1e999, true, '2']", "f")[0]]
    [True, True, True, False, False, False, False, False]
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    finite = isinstance(value, int) or math.isfinite(value)  # no float() of a huge int
    return finite and bool(DECIMAL.fullmatch(m._scalar_text(value)))


class Checker:
    """Collects problems while building the Project piece by piece, so all are reported.

    ``platform`` matches the variables a project may use undeclared; ``text_kinds`` says
    which strings may hold which characters (see ``model.TEXT_KINDS``).
    """

    def __init__(self, source: Source, root: Path, platform: re.Pattern[str],
                 text_kinds: tuple[tuple[tuple[str, ...], str], ...] = m.TEXT_KINDS) -> None:
        self.source = source
        self.root = root
        self.platform = platform
        self.text_kinds = text_kinds
        self.problems: list[Problem] = []
        self.inputs: list[Path] = []
        # Names declared in each section, valid or not (so that a reference to an invalid
        # entry is not also called unknown).
        self.declared: dict[str, set[str]] = {}
        self.characters: list[Problem] = []  # strings holding a character their place refuses

    def all_problems(self) -> list[Problem]:
        """Every problem; where a string holds a refused character, that is the one problem
        reported at its place (what else is wrong there follows from it)."""
        places = {(p.line, p.col, p.path) for p in self.characters}
        return self.characters + [p for p in self.problems
                                  if (p.line, p.col, p.path) not in places]

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.problems.append(self.source.problem(loc, message, key=key))

    def data_file(self, loc: Loc, rel: str, what: str, parse: Callable[[str, str], Any],
                  limit: int = MAX_DATA_BYTES) -> tuple[bool, Any]:
        """(True, value) of a file the project names at ``loc`` (relative to the project
        file), parsed by ``parse``; else (False, None) after reporting why: a file that is
        missing or not a regular file at ``loc``, bad content at its own line and column."""
        path = self.root / rel
        try:
            value = parse(read_text(path, limit), rel)
        except ReadError as exc:
            if exc.line:
                self.problems.append(Problem(rel, exc.line, exc.col, "(file)", exc.message))
            else:
                hint = " (paths are relative to the project file)" if "found" in exc.message else ""
                self.add(loc, f"{what} {exc.message}{hint}")
            return False, None
        except ProjectError as exc:
            self.problems += exc.problems
            return False, None
        self.inputs.append(path)
        return True, value

    def model(self, cls: type[BaseModel], data: Any, loc: Loc) -> Any:
        """Validate ``data``; on errors, report them and return the model without the bad
        keys (when that validates) so that later checks still see the rest."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            self.problems += _pydantic_problems(exc, cls, loc, self.source, data)
            bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
            if not isinstance(data, dict) or not bad:
                return None
            try:
                return cls.model_validate({k: v for k, v in data.items() if k not in bad})
            except ValidationError:
                return None


