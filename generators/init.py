"""``jobpack init``: a new project folder that builds at once.

It holds a commented project.yaml for one of the workflows jobpack automates (its
placeholders marked ``FILL IN``), the JSON Schema an editor checks it with, a ``dodo.py``
for plain ``doit``, a ``.gitignore`` for what the scripts write at run time, and a
``.pre-commit-config.yaml`` whose hook refuses a commit with a stale out/. Nothing is
overwritten: when one of these files exists, nothing is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import JobpackError

STARTERS = Path(__file__).resolve().parent / "starters"
SCHEMA_FILE = "jobpack.schema.json"

DODO = '''\
"""`doit` in this folder builds project.yaml into out/ (the same as `jobpack build`)."""

from pathlib import Path

from jobpack.paths import Paths
from jobpack.tasks import doit_config, make_tasks

_HERE = Path(__file__).resolve().parent
_PATHS = Paths(_HERE / "project.yaml", _HERE / "out")

DOIT_CONFIG = doit_config(_PATHS)
globals().update(make_tasks(_PATHS.project, _PATHS.out))
'''

GITIGNORE = """\
# What the scripts of out/ write at run time: never commit it (secrets.env holds secrets).
secrets.env
ledger.tsv
ledger.lock/
logs/
*.lock
# jobpack's build state; out/ itself is committed and reviewed.
.jobpack/
.doit.db*
__pycache__/
"""

PRE_COMMIT = """\
# `pre-commit install` once; then a commit whose out/ does not match project.yaml (or
# templates/) is refused with the list of stale files: run `jobpack` and add out/.
repos:
  - repo: local
    hooks:
      - id: jobpack-check
        name: jobpack check (out/ matches project.yaml)
        entry: jobpack check
        language: system
        pass_filenames: false
        always_run: true
"""


class InitError(JobpackError):
    exit_status = 2

    def render(self) -> str:
        return f"jobpack init: {self}"


def workflows() -> list[str]:
    """The workflows ``--from`` offers (one starter file each)."""
    return sorted(p.stem for p in STARTERS.glob("*.yaml"))


def default_workflow() -> str:
    """The workflow ``init`` starts from when none is named (starters/DEFAULT)."""
    return (STARTERS / "DEFAULT").read_text(encoding="utf-8").strip()


def init(folder: Path, workflow: str, schema: str) -> list[str]:
    """Write the new project's files into ``folder`` (created if missing); return their
    names. ``schema`` is the text of the JSON Schema."""
    if workflow not in workflows():
        raise InitError(f"no starting point {workflow!r} (choose from {', '.join(workflows())})")
    files = {
        "project.yaml": (STARTERS / f"{workflow}.yaml").read_text(encoding="utf-8"),
        SCHEMA_FILE: schema,
        "dodo.py": DODO,
        ".gitignore": GITIGNORE,
        ".pre-commit-config.yaml": PRE_COMMIT,
    }
    # What the starting point needs besides (e.g. the code folder its jobs upload).
    extra = STARTERS / f"{workflow}.files"
    files |= {p.relative_to(extra).as_posix(): p.read_text(encoding="utf-8")
              for p in sorted(extra.rglob("*")) if p.is_file()}
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder} is not a folder")
    there = [name for name in files if os.path.lexists(folder / name)]
    if there:
        raise InitError(f"{folder} already has {', '.join(there)}; nothing was written "
                        "(init never overwrites a file)")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            with open(folder / name, "x", encoding="utf-8") as fh:
                written.append(folder / name)
                fh.write(text)
    except BaseException:
        for path in written:  # all or nothing
            path.unlink(missing_ok=True)
        raise
    return list(files)


def schema_text() -> str:
    from .registry import KINDS
    from .schema import project_schema

    return json.dumps(project_schema(KINDS), indent=2, sort_keys=True) + "\n"
