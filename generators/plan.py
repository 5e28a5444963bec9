"""What a backend hands the engine: groups of files, each file a template and its context.

A plan says everything a file's text depends on: the engine renders a file from its
template and context alone (see render.render_spec), so it can decide what to render again
by comparing contexts, never by guessing which part of the project a template reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FileSpec:
    """One file of the bundle, relative to out/.

    ``context`` holds only dict, list, str (a ``shell.Safe`` is kept as such), int, float,
    bool and None. With ``template`` None the file is verbatim: ``context`` is
    ``{"text": ...}``.
    """

    path: str
    template: str | None
    context: dict[str, Any]
    executable: bool = False
    lint: str | None = None  # "shellcheck" for shell scripts


@dataclass(frozen=True)
class Group:
    """Files rendered together; ``key`` is unique and path-like ("slurm/delta/merge"),
    ``owner`` the place in project.yaml the group comes from (for messages)."""

    key: str
    owner: tuple[str | int, ...]
    files: tuple[FileSpec, ...]
