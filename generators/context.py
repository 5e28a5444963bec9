"""Template contexts as files: JSON that keeps which strings are ``shell.Safe``.

The plan writes each group's contexts with ``dump_context``; render and publish read them
back with ``load_context``. Neither needs Jinja.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .shell import Safe


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# The key of a JSON object that stands for a shell.Safe string: no project name can hold a
# NUL, so no context dict of the project's own can look like it.
_SAFE_KEY = "\0safe"


_PLAIN = frozenset((str, int, float, bool, type(None)))


def _tagged(value: Any) -> Any:
    if type(value) in _PLAIN:  # most values: checked first
        return value
    if isinstance(value, Safe):
        return {_SAFE_KEY: str(value)}
    if isinstance(value, dict):
        return {str(k): _tagged(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tagged(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a template context holds {type(value).__name__}, not JSON data")


def _untagged(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _SAFE_KEY in obj:
        return Safe(obj[_SAFE_KEY])
    return obj


def dump_context(value: Any) -> str:
    r"""JSON for template contexts, keeping which strings are shell.Safe; key-sorted, so
    the same context is the same text.

    >>> text = dump_context({"b": Safe("'x y'"), "a": [1, "z"]})
    >>> text
    '{"a":[1,"z"],"b":{"\\u0000safe":"\'x y\'"}}'
    >>> type(load_context(text)["b"]).__name__
    'Safe'
    """
    return json.dumps(_tagged(value), sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                      allow_nan=False)


def load_context(text: str) -> Any:
    """The value dump_context wrote, Safe strings included."""
    return json.loads(text, object_hook=_untagged)
