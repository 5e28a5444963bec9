"""Stand-in registry over the generators of the flat layout (replaced by the packages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plan import FileSpec, Group


def load(path: Path) -> Any:
    from ..validate import load_project

    return load_project(path)


def plan(loaded: Any) -> list[Group]:
    from ..base import Context
    from ..build_old import generators
    from ..bundle import plan as plan_md
    from ..bundle import secrets_example
    from ..paths import template_dirs
    from ..render import make_env

    ctx = Context(make_env(tuple(str(d) for d in template_dirs(loaded.root))),
                  Path(loaded.source.file).name)
    out = []
    for gen in generators():
        for g in gen.groups(loaded, ctx):
            out.append(Group(g.key, g.owner, tuple(
                FileSpec(a.path, None, {"text": a.text}, a.executable, a.lint)
                for a in g.render())))
    files = sorted(f.path for g in out for f in g.files)
    arts = [plan_md(loaded, ctx, files), secrets_example(loaded, ctx)]
    out.append(Group("bundle", (), tuple(FileSpec(a.path, None, {"text": a.text}) for a in arts)))
    return out
