"""Shell quoting: the one filter every YAML value passes through on its way to a shell line.

Strings from project.yaml may hold ``{{ name }}`` (sweep parameters and built-ins) and
``${NAME}`` (secrets and platform variables, left for the shell). ``parse_text`` splits a
string into parts; ``word`` and ``word_ref`` turn a value into one shell word; shell code the
user wrote gets its placeholders replaced by variable references (see ``placeholders``).
What these functions return is ``Safe``: text fit for a shell line, which templates may print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import visible

# Characters that no shell, comment, here-document or table cell reads as anything but
# themselves: a word of only these needs no quoting anywhere.
SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NEEDS_ESCAPE = re.compile(r"[\x00-\x1f\x7f\\]")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARREF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Template syntax that is not a placeholder: a '{{' that does not open one, a '{% tag', a
# '{# comment #}'. Bash's own ${#x}, ${x%y} and printf '{%s}' are none of these.
_ANY_TEMPLATE = re.compile(r"\{\{|\{%-?\s*(if|elif|else|endif|for|endfor|set|macro|block|raw"
                           r"|include|import|extends|with|call|filter)\b|\{#[^}]*#\}")


class Safe(str):
    """Text that one of the context filters produced for its context (a shell word, a
    comment, a here-document line, a Markdown cell): templates print only such text, plain
    numbers, and strings of characters that are inert everywhere (see ``render``)."""

    __slots__ = ()


def oneline(value: object) -> Safe:
    r"""One line of prose for a ``#`` comment or a line of a quoted here-document: line breaks
    and other control characters are shown as escapes, so nothing can start a new line.

    >>> print(oneline("a\nUSAGE\ntouch x"), oneline(["two", "parts"]))
    a\nUSAGE\ntouch x two parts
    """
    if isinstance(value, list | tuple):
        value = " ".join(map(str, value))
    return Safe(visible(str(value)))


def shquote(value: str) -> Safe:
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
    if SAFE.fullmatch(value):
        return Safe(value)
    if not _CONTROL.search(value):
        return Safe("'" + value.replace("'", "'\\''") + "'")
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _CONTROL.fullmatch(ch):
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return Safe("$'" + "".join(out) + "'")


def assign(code: str) -> Safe:
    """A shell word for the right side of an assignment: never bare, so that a value such as
    ``fold`` or ``test`` cannot read as a command name (shellcheck SC2209).

    >>> assign("fold"), assign(shquote("a b"))
    ("'fold'", "'a b'")
    """
    if SAFE.fullmatch(code):
        return Safe(f"'{code}'")
    if not isinstance(code, Safe):
        raise ValueError(f"not shell code from a quoting filter: {code!r}")
    return code


def shvalue(value: str) -> Safe:
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


def variable(name: str) -> str:
    """The shell variable that holds the value of placeholder ``name`` at run time.

    >>> variable("lr"), variable("run_id")
    ('jp_p_lr', 'RUN_ID')
    """
    return "RUN_ID" if name == "run_id" else f"jp_p_{name}"


def word_ref(parts: list[Part]) -> Safe:
    """Code for one shell word: literal text quoted, ``${NAME}`` and every placeholder as a
    quoted expansion of its variable, so no value is ever part of the code.

    >>> print(word_ref(parse_text("${HOME}/a b/{{ job }}")[0]))
    "${HOME}"'/a b/'"${jp_p_job}"
    """
    out: list[str] = []
    for part in parts:
        if isinstance(part, Lit):
            out.append(shquote(part.text))
        elif isinstance(part, Var):
            out.append('"${' + part.name + '}"')
        else:
            out.append('"${' + variable(part.name) + '}"')
    return Safe("".join(out) or "''")


def word(parts: list[Part], static: dict[str, str]) -> Safe:
    """Code for one shell word whose placeholders are all known when the bundle is built
    (their values are quoted into the word; ``run_id`` stays ``"${RUN_ID}"``).

    >>> print(word(parse_text("${HOME}/a b/{{ job }}")[0], {"job": "x y"}))
    "${HOME}"'/a b/x y'
    """
    out: list[Part] = []
    for part in parts:
        if isinstance(part, Param) and part.name != "run_id":
            text = static[part.name]
            if out and isinstance(out[-1], Lit):
                out[-1] = Lit(out[-1].text + text)
            else:
                out.append(Lit(text))
        else:
            out.append(part)
    return word_ref(out)


def needs_escape(value: str) -> bool:
    """Whether ``value`` is not a TSV cell as it is (``tsv_cell`` would change it); asked of
    a whole table's text at once, it spares a call per cell of a table that needs none."""
    return _NEEDS_ESCAPE.search(value) is not None


def tsv_cell(value: str) -> str:
    r"""A value as one cell of a table the scripts read without ``eval``: backslash, tab, line
    breaks and other control characters escaped as ``printf %b`` reads them back.

    >>> print(tsv_cell("a b" + chr(9) + "c" + chr(10) + "d" + chr(92) + "e" + chr(1)))
    a b\tc\nd\\e\x01
    """
    if not needs_escape(value):
        return value  # most cells: nothing to escape
    out = []
    for ch in value:
        if ch in _ESCAPES and ch != "'":
            out.append(_ESCAPES[ch])
        elif _CONTROL.fullmatch(ch):
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)
