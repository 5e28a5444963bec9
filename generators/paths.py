"""Where a build reads and writes, and the cheap checks a no-op build runs.

Only the standard library is imported here: a build with nothing to do loads this module,
doit and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

CODE_DIR = Path(__file__).resolve().parent
# Names of what the scripts create beside themselves at run time (a pattern matches any
# part of a path below out/): `jobpack check` never reports them, builds carry them over.
RUNTIME_PATTERNS = ("ledger.tsv*", ".ledger*", "ledger.lock", "secrets.env", "logs", "*.lock")
STATE_FORMAT = 2  # bump when state.json changes shape; older states are ignored


@dataclass(frozen=True)
class Paths:
    """Where a build reads and writes.

    Everything but out/ lives in the state folder ``.jobpack/<out name>/`` beside out/, on
    the same file system, so that a new tree built there can replace out/ in one rename.
    """

    project: Path
    out: Path

    @property
    def state(self) -> Path:
        return self.out.parent / ".jobpack" / self.out.name

    @property
    def stage(self) -> Path:
        """The new tree: rendered files, then the whole bundle that replaces out/."""
        return self.state / "stage"

    @property
    def pending(self) -> Path:
        """Present while the stage holds a complete render waiting to be published."""
        return self.state / "pending.json"

    @property
    def journal(self) -> Path:
        """Present from just before out/ is replaced until the publish is complete."""
        return self.state / "publish.json"

    @property
    def old(self) -> Path:
        """The replaced out/, until what scripts created in it meanwhile is carried over."""
        return self.state / "old"

    @property
    def trash(self) -> Path:
        """The replaced out/ once nothing in it is needed, until it is deleted."""
        return self.state / "trash"

    def code_files(self) -> list[Path]:
        """Generator code and every template a build may read: dependencies of the build."""
        files = sorted(CODE_DIR.rglob("*.py"))
        for d in template_dirs(self.project.parent):
            files += sorted(p for p in d.rglob("*.j2"))
        return files


def is_runtime(rel: str) -> bool:
    """Whether a path below out/ is something scripts create at run time.

    >>> [is_runtime(p) for p in ("k/a/ledger.tsv", "k/x/.ledger.lock", "a/logs/1.out",
    ...                          "k/a/run.sh", "notes.txt")]
    [True, True, True, False, False]
    """
    return any(fnmatchcase(part, pat) for part in rel.split("/") for pat in RUNTIME_PATTERNS)


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
        except (FileNotFoundError, NotADirectoryError):
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


class _Steps:
    """Test hook: with JOBPACK_TEST_STOP=STAGE:N in the environment, the build stops itself
    (SIGSTOP) just before the N-th change to the file system of STAGE (stage_render,
    stage_lint, publish, recover), so that a test can kill it at exactly that point. With
    JOBPACK_TEST_STOP=count it only counts, and prints the counts on exit."""

    def __init__(self) -> None:
        value = os.environ.get("JOBPACK_TEST_STOP", "")
        stage, _, n = value.partition(":")
        self.stop = (stage, int(n)) if n.isdigit() else None
        self.counts: dict[str, int] = {}
        self.stage = ""
        self.action: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGSTOP)
        if value == "count":
            import atexit

            atexit.register(self._report)
            self.stop = ("", 0)

    def begin(self, stage: str) -> None:
        self.stage = stage

    def __call__(self) -> None:
        if self.stop is None:
            return
        n = self.counts[self.stage] = self.counts.get(self.stage, 0) + 1
        if self.stop == (self.stage, n):
            sys.stdout.flush()
            self.action()

    def _report(self) -> None:
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        print(f"jobpack-test: {counts}", file=sys.stderr)


step = _Steps()


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages.

    >>> file_kind(stat.S_IFIFO), file_kind(stat.S_IFDIR)
    ('a FIFO (named pipe)', 'a folder')
    """
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket")]
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def project_file_problem(what: str, display: str) -> str:
    """The message for a project file that cannot be read: ``what`` is wrong with it.

    >>> project_file_problem("was not found", "project.yaml")
    'no project.yaml here (create one, or pass -p)'
    """
    if what == "was not found":
        return f"no {display} here (create one, or pass -p)"
    if what == "is a folder, not a regular file":
        return (f"the project file is a folder, not a regular file (name the file itself "
                f"with -p, e.g. -p {display}/project.yaml)")
    return f"the project file {what}"
