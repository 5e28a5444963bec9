"""The one Jinja environment and its filters."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from .errors import RenderError
from .shell import assign, shquote, shvalue


def _lines(value: str) -> list[str]:
    return value.splitlines()


@cache
def make_env(search_path: tuple[str, ...]) -> jinja2.Environment:
    """The one Jinja environment: strict, whitespace-controlled, with jobpack's filters."""
    env = jinja2.Environment(
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
    )
    env.filters["shquote"] = shquote
    env.filters["shvalue"] = shvalue
    env.filters["assign"] = assign
    env.filters["lines"] = _lines
    return env


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render one template; template bugs become RenderError naming the template and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {name}: {exc.message}") from None


def digest_files(paths: Iterable[Path], roots: Iterable[Path] = ()) -> str:
    """One sha256 over the contents of ``paths`` and their names relative to ``roots``, so
    the same files at another place digest the same."""
    h = hashlib.sha256()
    bases = list(roots)
    for p in sorted(paths):
        base = next((r for r in bases if p.is_relative_to(r)), p.parent)
        h.update(p.relative_to(base).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
