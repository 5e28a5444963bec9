"""Shell quoting: the one filter every YAML value passes through on its way to a shell line.

Strings from project.yaml may hold ``{{ name }}`` (sweep parameters and built-ins) and
``${NAME}`` (secrets and platform variables, left for the shell). ``parse_text`` splits a
string into parts; ``word_code`` turns a value into one shell word; ``shell_code`` splices
parameters into shell code the user wrote, closing and reopening whatever quotes surround
each placeholder so the value arrives byte-exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARREF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_TEMPLATE = re.compile(r"\{\{|\{%|\{#")


def shquote(value: str) -> str:
    """Quote ``value`` so bash reads it back as exactly that string, on one line.

    >>> shquote("plain-1.0")
    'plain-1.0'
    >>> shquote("a b'$(rm -rf ~)")
    "'a b'\\\\''$(rm -rf ~)'"
    >>> shquote("two\\nlines")
    "$'two\\\\nlines'"
    >>> shquote("")
    "''"
    """
    if "\x00" in value:
        raise ValueError("a shell value cannot contain a NUL byte")
    if _SAFE.fullmatch(value):
        return value
    if not _CONTROL.search(value):
        return "'" + value.replace("'", "'\\''") + "'"
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _CONTROL.fullmatch(ch):
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def assign(code: str) -> str:
    """A shell word for the right side of an assignment: never bare, so that a value such as
    ``fold`` or ``test`` cannot read as a command name (shellcheck SC2209).

    >>> assign("fold"), assign("'a b'"), assign('"${HOME}"/x')
    ("'fold'", "'a b'", '"${HOME}"/x')
    """
    return f"'{code}'" if _SAFE.fullmatch(code) else code


def shvalue(value: str) -> str:
    """``shquote`` for the right side of an assignment (see ``assign``)."""
    return assign(shquote(value))


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Param:
    name: str
    start: int


@dataclass(frozen=True)
class Var:
    name: str


Part = Lit | Param | Var


def parse_text(text: str, *, vars_in_code: bool = False) -> tuple[list[Part], list[str]]:
    """Split ``text`` into literal, ``{{ param }}`` and ``${VAR}`` parts; also return errors.

    In shell code (``vars_in_code``) ``${VAR}`` stays part of the code.

    >>> parse_text("run {{ seq }} in ${HOME}")[0]
    [Lit(text='run '), Param(name='seq', start=4), Lit(text=' in '), Var(name='HOME')]
    >>> parse_text("{{ x | upper }}")[1]
    ["unsupported template syntax near '{{ x | upper }}': only {{ name }} is allowed"]
    """
    parts: list[Part] = []
    errors: list[str] = []
    pos = 0
    pattern = PLACEHOLDER if vars_in_code else re.compile(f"{PLACEHOLDER.pattern}|{VARREF.pattern}")
    for m in pattern.finditer(text):
        _literal(text[pos:m.start()], parts, errors)
        if m.group(1):
            parts.append(Param(m.group(1), m.start()))
        else:
            parts.append(Var(m.group(2)))
        pos = m.end()
    _literal(text[pos:], parts, errors)
    return parts, errors


def _literal(text: str, parts: list[Part], errors: list[str]) -> None:
    if not text:
        return
    bad = _ANY_TEMPLATE.search(text)
    if bad:
        snippet = text[bad.start():bad.start() + 20]
        errors.append(f"unsupported template syntax near {snippet!r}: "
                      "only {{ name }} is allowed")
    if parts and isinstance(parts[-1], Lit):
        parts[-1] = Lit(parts[-1].text + text)
    else:
        parts.append(Lit(text))


def var_refs(text: str) -> list[str]:
    """Names referenced as ``${NAME}`` in ``text``.

    >>> var_refs("${A}/x/${B_2} $C ${D:-x}")
    ['A', 'B_2']
    """
    return VARREF.findall(text)


# A piece of generated code: a constant string, or the code of sweep column N (read at run time).
Segment = str | int


def _join(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for seg in segments:
        if isinstance(seg, str) and out and isinstance(out[-1], str):
            out[-1] += seg
        elif seg != "":
            out.append(seg)
    return out


def value_segment(part: Param, static: dict[str, str], columns: dict[str, int]) -> Segment:
    """Code for one parameter in an unquoted position: quoted text now, or a column later."""
    if part.name in columns:
        return columns[part.name]
    if part.name == "run_id":
        return '"${RUN_ID}"'
    return shquote(static[part.name])


def word_code(parts: list[Part], static: dict[str, str],
              columns: dict[str, int] | None = None) -> list[Segment]:
    """Code for one shell word holding the value ``parts`` stand for.

    >>> word_code(parse_text("${HOME}/a b/{{ job }}")[0], {"job": "x y"})
    ['"${HOME}"\\'/a b/\\'\\'x y\\'']
    """
    out: list[Segment] = []
    for part in parts:
        if isinstance(part, Lit):
            out.append(shquote(part.text))
        elif isinstance(part, Var):
            out.append('"${' + part.name + '}"')
        else:
            out.append(value_segment(part, static, columns or {}))
    return _join(out) or ["''"]


def word(parts: list[Part], static: dict[str, str]) -> str:
    """Like ``word_code`` for values that do not depend on a sweep point."""
    segs = word_code(parts, static)
    assert len(segs) == 1 and isinstance(segs[0], str)
    return segs[0]


_CLOSE = {"S": ("'", "'"), "D": ('"', '"'), "A": ("'", "$'"), "N": ("", ""), "C": ("", ""),
          "B": ("", "")}


def quote_states(code: str, offsets: list[int]) -> list[str]:
    """The quoting state of bash code at each offset: N(one), S(ingle), D(ouble), A(NSI-C)...

    >>> quote_states("a 'b' \\"c\\" $'d' $(e \\"f\\")", [0, 3, 7, 12, 20])
    ['N', 'S', 'D', 'A', 'D']
    """
    wanted = sorted(set(offsets))
    found: dict[int, str] = {}
    stack = ["N"]
    i = 0
    while i < len(code) and wanted:
        while wanted and wanted[0] <= i:
            found[wanted.pop(0)] = stack[-1]
        i = _step(code, i, stack)
    for off in wanted:
        found[off] = stack[-1]
    return [found[o] for o in offsets]


_OPENERS = {"'": "S", '"': "D", "`": "B"}


def _step(code: str, i: int, stack: list[str]) -> int:
    """Advance the quote-state machine by one token; return the next offset."""
    top = stack[-1]
    if top in "SA":
        return _step_quoted(code, i, stack)
    ch = code[i]
    if ch == "\\":
        return i + 2
    if code.startswith("$(", i):
        stack.append("C")
        return i + 2
    if top == "D":
        if ch == '"':
            stack.pop()
        elif ch == "`":
            stack.append("B")
        return i + 1
    if (top, ch) in (("C", ")"), ("B", "`")):
        stack.pop()
        return i + 1
    if code.startswith("$'", i):
        stack.append("A")
        return i + 2
    if ch in _OPENERS:
        stack.append(_OPENERS[ch])
    return i + 1


def _step_quoted(code: str, i: int, stack: list[str]) -> int:
    """Inside '...' nothing escapes; inside $'...' a backslash escapes the next character."""
    if stack[-1] == "A" and code[i] == "\\":
        return i + 2
    if code[i] == "'":
        stack.pop()
    return i + 1


def shell_code(code: str, parts: list[Part], static: dict[str, str],
               columns: dict[str, int] | None = None) -> list[Segment]:
    """Splice parameter values into shell code, closing and reopening surrounding quotes.

    >>> code = "echo '<{{ x }}>' {{ x }}"
    >>> shell_code(code, parse_text(code, vars_in_code=True)[0], {"x": "a b"})
    ["echo '<''a b''>' 'a b'"]
    """
    params = [p for p in parts if isinstance(p, Param)]
    states = quote_states(code, [p.start for p in params])
    out: list[Segment] = []
    pos = 0
    for part, state in zip(params, states, strict=True):
        out.append(code[pos:part.start])
        close, reopen = _CLOSE[state]
        out += [close, value_segment(part, static, columns or {}), reopen]
        pos = PLACEHOLDER.match(code, part.start).end()  # type: ignore[union-attr]
    out.append(code[pos:])
    return _join(out)
