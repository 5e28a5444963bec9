"""The one Jinja environment and its filters.

Every value a template prints passes a filter for its context: ``shquote``/``shvalue``
(a shell word), ``comment`` (a ``#`` comment), ``text`` (one line of a quoted
here-document), ``heredoc`` (paragraphs of one), ``md`` (a Markdown table cell). The
environment enforces it: each ``{{ ... }}`` of a template (built-in or a project's override)
is checked when it renders, and anything but the output of those filters, a number, or a
string of characters that are inert in every context fails the build with the template and
line. A value cannot reach a generated file any other way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

from .errors import RenderError, visible
from .shell import SAFE, Safe, assign, oneline, shquote, shvalue

_SEPARATOR = re.compile(r"[ ,:;|>-]*")


class Unfiltered(Exception):
    """A template printed a value that did not come through a context filter."""


def heredoc(value: object) -> Safe:
    r"""Paragraphs for a quoted here-document: each line indented by two spaces, so that no
    line can equal the document's delimiter; control characters but tabs shown as escapes.

    >>> print(heredoc("one\nUSAGE"))
      one
      USAGE
    """
    lines = visible(str(value).rstrip("\n"), keep="\n\t").split("\n")
    return Safe("\n".join("  " + line if line else "" for line in lines))


def heredoc_end(text: object, base: str = "USAGE") -> Safe:
    r"""The delimiter of a quoted here-document holding ``text``: ``base``, or ``base_N`` for
    the first N such that no line of the text, spaces and tabs aside, is the delimiter (so
    no line closes the document, nor reads to shellcheck as an indented delimiter).

    >>> print(heredoc_end("a\n  USAGE\nUSAGE_1\t"), heredoc_end("USAGED"))
    USAGE_2 USAGE
    """
    lines = {line.strip(" \t") for line in str(text).split("\n")}
    end, n = base, 0
    while end in lines:
        n += 1
        end = f"{base}_{n}"
    return Safe(end)


def md(value: object) -> Safe:
    r"""A Markdown table cell or code span: one line, ``|`` escaped, ``<``, ``>`` and backticks
    replaced so that no value opens HTML or closes a code span.

    >>> print(md("a|b <x> `c`"))
    a\|b &lt;x&gt; 'c'
    """
    text = oneline(value).replace("|", "\\|").replace("`", "'")
    return Safe(text.replace("<", "&lt;").replace(">", "&gt;"))


_MERMAID = {"&": "#amp;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;", "%": "#37;",
            "`": "#96;", "\\": "#92;"}


def mermaid(value: object) -> Safe:
    r"""Text inside a quoted Mermaid label: one line, every character that could end the
    label, open HTML, start a directive or close the code block written as an entity.

    >>> print(mermaid('a "b" <i>#1</i> 50% `x`'))
    a #quot;b#quot; #lt;i#gt;#35;1#lt;/i#gt; 50#37; #96;x#96;
    """
    return Safe("".join(_MERMAID.get(c, c) for c in oneline(value)))


def _allowed(value: object) -> bool:
    if isinstance(value, Safe | int | float):
        return True
    return isinstance(value, str) and bool(value == "" or SAFE.fullmatch(value))


def _join(items: Any, separator: str = "") -> Safe:
    """Jinja's ``join``, for items that may be printed (see ``_checked``)."""
    values = list(items)
    for item in values:
        if not _allowed(item):
            raise Unfiltered(f"join got {item!r:.80}")
    if not _SEPARATOR.fullmatch(separator):
        raise Unfiltered(f"join got the separator {separator!r:.40}")
    return Safe(separator.join(str(v) for v in values))


def _checked(value: Any, where: str) -> Any:
    if _allowed(value):
        return value
    raise Unfiltered(f"{where}: {value!r:.80} reaches the output without a context filter "
                     "(shquote, shvalue, comment, text, heredoc, md)")


def _guard(node: nodes.Expr, where: str, macros: set[str]) -> nodes.Expr:
    """``node`` wrapped in the output check, unless it is literal template text or output
    that was checked already (a macro call, super(), or those through indent)."""
    if isinstance(node, nodes.Const):
        return node
    if isinstance(node, nodes.CondExpr):
        return nodes.CondExpr(node.test, _guard(node.expr1, where, macros),
                              _guard(node.expr2, where, macros) if node.expr2 else None,
                              lineno=node.lineno)
    if _trusted(node, macros):
        return node
    return nodes.Filter(node, "_checked", [nodes.Const(f"{where}:{node.lineno}")], [],
                        None, None, lineno=node.lineno)


def _trusted(node: nodes.Expr, macros: set[str]) -> bool:
    if isinstance(node, nodes.Filter) and node.name == "indent" and node.node is not None:
        return _trusted(node.node, macros)
    if not isinstance(node, nodes.Call):
        return False
    callee = node.node
    if isinstance(callee, nodes.Name):
        return callee.name == "super"
    return isinstance(callee, nodes.Getattr) and isinstance(callee.node, nodes.Name) \
        and callee.node.name in macros


class _Environment(jinja2.Environment):
    """Jinja's environment with the output check put around every ``{{ ... }}``."""

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        macros = {n.target for n in tree.find_all(nodes.Import) if isinstance(n.target, str)}
        macros.add("sh")  # the base template imports _macros/shell.j2 as sh for every child
        where = name or "template"
        for output in tree.find_all(nodes.Output):
            output.nodes = [n if isinstance(n, nodes.TemplateData) else _guard(n, where, macros)
                            for n in output.nodes]
        return tree


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates, shared by builds: Jinja keys each by the template's source; the
    folder by this module's text (it rewrites templates as they compile) and Jinja's
    version."""
    from .paths import cache_dir

    key = hashlib.sha256(Path(__file__).read_bytes() + jinja2.__version__.encode()).hexdigest()
    folder = cache_dir() / "jinja" / key[:16]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable cache only costs time
    return jinja2.FileSystemBytecodeCache(str(folder))


@cache
def make_env(search_path: tuple[str, ...]) -> jinja2.Environment:
    """The one Jinja environment: strict, whitespace-controlled, with jobpack's filters."""
    env = _Environment(
        loader=jinja2.FileSystemLoader(list(search_path)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        # Bash's ${#name} would open a Jinja comment; template comments are {## ... ##}.
        comment_start_string="{##",
        comment_end_string="##}",
        auto_reload=False,
        bytecode_cache=_bytecode_cache(),
    )
    env.filters.update({"shquote": shquote, "shvalue": shvalue, "assign": assign,
                        "comment": oneline, "text": oneline, "heredoc": heredoc,
                        "heredoc_end": heredoc_end, "md": md, "mermaid": mermaid,
                        "join": _join, "_checked": _checked})
    return env


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render one template; template bugs become RenderError naming the template and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {name}: {exc.message}") from None
    except Unfiltered as exc:
        raise RenderError(f"template {name}: {exc}") from None


def render_spec(env: jinja2.Environment, template: str | None, context: Mapping[str, Any]) -> str:
    """The text of one planned file: its template rendered with its context, or the verbatim
    text of a file without template."""
    if template is None:
        return str(context["text"])
    return render(env, template, context)


def template_closure(env: jinja2.Environment, name: str) -> list[str] | None:
    """Files of every template rendering ``name`` loads (itself, includes, imports and
    extends, as the environment's loader resolves them), or None when one is chosen at
    render time (then a render may read any template)."""
    from jinja2 import meta

    seen: dict[str, str] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        assert env.loader is not None
        source, filename, _ = env.loader.get_source(env, current)
        seen[current] = filename or current
        for ref in meta.find_referenced_templates(env.parse(source)):
            if ref is None:
                return None
            todo.append(ref)
    return sorted(set(seen.values()))
