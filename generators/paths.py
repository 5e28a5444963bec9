"""Where a build reads and writes, and the cheap checks a no-op build runs.

Only the standard library is imported here: a build with nothing to do loads this module,
doit and nothing else.
"""

from __future__ import annotations

import importlib.util
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


def _jinja_version_file() -> list[str]:
    """Jinja's ``__init__.py``, which holds its version, found without importing Jinja."""
    spec = importlib.util.find_spec("jinja2")
    return [spec.origin] if spec is not None and spec.origin else []


# Code a render reads besides its templates and context: the environment, its filters, the
# context files' format, and the Jinja release (a new one may render a template otherwise).
RENDER_CODE = [*(str(CODE_DIR / n) for n in ("render.py", "context.py", "shell.py", "errors.py")),
               *_jinja_version_file()]
# Names of what the scripts create beside themselves at run time (a pattern matches any
# part of a path below out/): `jobpack check` never reports them, builds carry them over.
RUNTIME_PATTERNS = ("ledger.tsv*", ".ledger*", "ledger.lock", "secrets.env", "logs", "*.lock")
STATE_FORMAT = 4  # bump when state.json or plan.json change shape; older ones are ignored


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
    def plan(self) -> Path:
        """The last plan: groups, their files and templates, what the project read."""
        return self.state / "plan.json"

    @property
    def contexts(self) -> Path:
        """One JSON file per group: the templates and contexts of its files."""
        return self.state / "ctx"

    @property
    def build(self) -> Path:
        """Every rendered file, as render last wrote it (what lint checks)."""
        return self.state / "build"

    @property
    def rendered(self) -> Path:
        """One JSON file per group: sha256, mode and linter of each file render wrote."""
        return self.state / "rendered"

    @property
    def stage(self) -> Path:
        """The new tree while it is assembled, until it replaces out/."""
        return self.state / "stage"

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
        """jobpack's own code: a plan depends on all of it."""
        return sorted(CODE_DIR.rglob("*.py"))

    def plan_sources(self) -> list[Path]:
        """What a plan reads besides the files the project names: doit's dependencies of
        the ``plan`` task."""
        return [self.project, *self.code_files(), *self.template_files()]

    def template_files(self) -> list[Path]:
        """Every template of the search path (overrides first): a plan finds in them the
        templates each file loads."""
        return [p for d in template_dirs(self.project.parent) for p in sorted(d.rglob("*.j2"))]


def cache_dir() -> Path:
    """Where jobpack keeps what outlives one build and one project (linter results,
    compiled templates): JOBPACK_CACHE, else the user's cache folder. Every entry is keyed
    by the content it stands for, so a stale entry is never used."""
    if os.environ.get("JOBPACK_CACHE"):
        return Path(os.environ["JOBPACK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jobpack"


def signature(paths: Paths) -> list[list[Any]]:
    """Size and mtime of every source of a plan, as plan.json records them."""
    return stat_signature(paths.plan_sources())


def stat_signature(files: list[Path]) -> list[list[Any]]:
    """Path, size and mtime of each of ``files`` that exists."""
    out = []
    for p in files:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


def group_file(key: str) -> str:
    """A group's key as one file name (keys are path-like).

    >>> group_file("kind/cluster/job")
    'kind%2Fcluster%2Fjob.json'
    """
    from urllib.parse import quote

    return quote(key, safe="") + ".json"


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
    """doit up-to-date check of publishing: every published file is still on disk as it
    was written (same size and mtime)."""
    files: dict[str, list[Any]] = read_state(paths).get("files", {})
    return bool(files) and files_intact(paths.out, files)


def rendered_intact(paths: Paths, name: str) -> bool:
    """doit up-to-date check of a render: every file it wrote is in build/ as written (a
    file changed in place, e.g. through a hard link from out/, is rendered again)."""
    record = read_json(paths.rendered / name)
    build = str(paths.build)
    for rel, rec in record.items():
        if rec[3] is None:  # verbatim: not in build/
            continue
        try:
            st = os.lstat(f"{build}/{rel}")
        except (FileNotFoundError, NotADirectoryError):
            return False
        if [st.st_size, st.st_mtime_ns] != rec[3:5]:
            return False
    return bool(record)


def inputs_intact(paths: Paths) -> bool:
    """doit up-to-date check of the plan: every file the project read besides
    project.yaml (sequences files, config bases) is unchanged."""
    plan = read_json(paths.plan)
    return plan.get("format") == STATE_FORMAT and \
        files_intact(paths.project.parent, plan.get("inputs", {}))


def stat_record(path: Path) -> list[Any]:
    st = path.stat()
    return ["", st.st_size, st.st_mtime_ns]


def builtin_templates() -> Path:
    """The templates shipped with jobpack: the source tree's, or the installed copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "_base").is_dir():
            return candidate
    raise FileNotFoundError(f"jobpack's templates are missing (looked in {here.parent})")


def template_dirs(project_dir: Path) -> list[Path]:
    """Template search path: the project's own ``templates/`` overrides built-ins."""
    user = project_dir / "templates"
    return [user, builtin_templates()] if user.is_dir() else [builtin_templates()]


class _Steps:
    """Test hook: with JOBPACK_TEST_STOP=STAGE:N in the environment, the build stops itself
    (SIGSTOP) just before the N-th change to the file system of STAGE (plan, render, lint,
    publish, recover), so that a test can kill it at exactly that point. With
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
    'no project.yaml here (start one with `jobpack init`, or pass -p)'
    """
    if what == "was not found":
        return f"no {display} here (start one with `jobpack init`, or pass -p)"
    if what == "is a folder, not a regular file":
        return (f"the project file is a folder, not a regular file (name the file itself "
                f"with -p, e.g. -p {display}/project.yaml)")
    return f"the project file {what}"
