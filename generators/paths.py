"""Where a build reads and writes, and the cheap checks a no-op build runs.

Only the standard library is imported here: a build with nothing to do loads this module,
doit and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CODE_DIR = Path(__file__).resolve().parent
RUNTIME_FILES = ("ledger.tsv", "ledger.lock", "secrets.env", "logs")
STATE_FORMAT = 2  # bump when state.json changes shape; older states are ignored


@dataclass(frozen=True)
class Paths:
    """Where a build reads and writes."""

    project: Path
    out: Path

    @property
    def state(self) -> Path:
        return self.out.parent / ".jobpack" / self.out.name

    @property
    def stage(self) -> Path:
        return self.state / "stage"

    @property
    def pending(self) -> Path:
        return self.state / "pending.json"

    def code_files(self) -> list[Path]:
        """Generator code and every template a build may read: dependencies of the build."""
        files = sorted(CODE_DIR.glob("*.py"))
        for d in template_dirs(self.project.parent):
            files += sorted(p for p in d.rglob("*.j2"))
        return files


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def read_state(paths: Paths) -> dict[str, Any]:
    """The published build state, or {} when there is none or it is of another format."""
    state = read_json(paths.state / "state.json")
    return state if state.get("format") == STATE_FORMAT else {}


def files_intact(out: Path, files: dict[str, list[Any]]) -> bool:
    """Whether every recorded file is still on disk with the size and mtime we wrote."""
    for rel, (_sha, size, mtime) in files.items():
        try:
            st = (out / rel).stat()
        except FileNotFoundError:
            return False
        if st.st_size != size or st.st_mtime_ns != mtime:
            return False
    return True


def outputs_intact(paths: Paths) -> bool:
    """doit up-to-date check: nothing staged, every published file untouched, and every
    file the project read besides project.yaml (sequences files) unchanged."""
    if paths.pending.exists():
        return False
    state = read_state(paths)
    files: dict[str, list[Any]] = state.get("files", {})
    return bool(files) and files_intact(paths.out, files) and \
        files_intact(paths.project.parent, state.get("inputs", {}))


def stat_record(path: Path) -> list[Any]:
    st = path.stat()
    return ["", st.st_size, st.st_mtime_ns]


def builtin_templates() -> Path:
    """The templates shipped with jobpack: the source tree's, or the installed copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates", here / "templates"):
        if (candidate / "_base").is_dir():
            return candidate
    raise FileNotFoundError(f"jobpack's templates are missing (looked in {here.parent})")


def template_dirs(project_dir: Path) -> list[Path]:
    """Template search path: the project's own ``templates/`` overrides built-ins."""
    user = project_dir / "templates"
    return [user, builtin_templates()] if user.is_dir() else [builtin_templates()]
