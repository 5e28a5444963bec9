"""doit task definitions, used by dodo.py and by the ``jobpack`` command.

``plan`` validates the project and writes each group's contexts; ``render:<group>`` renders
one group from its contexts and templates; ``lint:<file>`` checks one rendered script;
``bundle`` publishes everything into out/. doit decides what is up to date from the files
each task declares; render and lint tasks exist once the plan says which groups and scripts
there are (``create_after``). Importing this module is cheap: a no-op build stats files
and never loads the project.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from doit import create_after as _create_after
from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter
from doit.tools import config_changed

from . import __version__
from .paths import (
    RENDER_CODE,
    Paths,
    inputs_intact,
    outputs_intact,
    read_json,
    rendered_intact,
    signature,
)

# doit ships no type hints: typed here, once.
after_plan: Callable[[Callable[[], Any]], Callable[[], Any]] = _create_after(executed="plan")

# The last user-facing error raised inside a task, for the CLI's exit status and message.
LAST_ERROR: list[Any] = []


def run_action(name: str, paths: Paths, *args: Any) -> Any:
    """Run ``generators.build.<name>(paths, *args)``; a user error fails the task with
    jobpack's message (imported only when a task runs, so a no-op build never loads it)."""
    from . import build
    from .errors import JobpackError

    try:
        print(getattr(build, name)(paths, *args))
        return None
    except JobpackError as exc:
        LAST_ERROR.append(exc)
        return TaskFailed(exc.render())
    except OSError as exc:  # a full disk, a permission: one line, no traceback
        from .publish import PublishError

        LAST_ERROR.append(PublishError(str(exc)))
        return TaskFailed(str(exc))


_PLANS: dict[Paths, tuple[Any, list[dict[str, Any]]]] = {}


def current_plan(paths: Paths) -> list[dict[str, Any]]:
    """The groups of the plan, planning first when plan.json does not match the sources
    (``doit list`` and ``doit clean`` create tasks without running ``plan``). An invalid
    project has no groups; the ``plan`` task reports why. Read once per plan.json."""
    try:
        st = paths.plan.stat()
        stamp: Any = (st.st_size, st.st_mtime_ns, st.st_ino)
    except FileNotFoundError:
        stamp = None
    if paths in _PLANS and _PLANS[paths][0] == stamp and stamp is not None:
        return _PLANS[paths][1]
    groups = _fresh_plan(paths)
    try:
        st = paths.plan.stat()
        _PLANS[paths] = ((st.st_size, st.st_mtime_ns, st.st_ino), groups)
    except FileNotFoundError:
        pass
    return groups


def _fresh_plan(paths: Paths) -> list[dict[str, Any]]:
    plan = read_json(paths.plan)
    if plan.get("sources") != signature(paths) or not inputs_intact(paths):
        from . import build
        from .errors import JobpackError

        try:
            build.run_plan(paths)
        except JobpackError:
            return []
        plan = read_json(paths.plan)
    groups: list[dict[str, Any]] = plan.get("groups", [])
    return groups


def make_tasks(project: Path, out: Path) -> dict[str, Callable[[], Any]]:
    """``task_*`` functions for a project file and an output folder."""
    paths = Paths(Path(project), Path(out))

    def task_plan() -> dict[str, Any]:
        """Validate the project and write the contexts of every group that changed."""
        sources = paths.plan_sources()
        return {"actions": [(run_action, ["run_plan", paths])],
                "file_dep": [str(p) for p in sources if p.exists()],
                "targets": [str(paths.plan)],
                "uptodate": [config_changed({"sources": [str(p) for p in sources],
                                             "version": __version__}),
                             (inputs_intact, [paths])],
                "clean": True, "verbosity": 2}

    @after_plan
    def task_render() -> Iterator[dict[str, Any]]:
        """Render one group of files from its contexts and templates."""
        build = str(paths.build)
        for entry in current_plan(paths):
            yield {"name": entry["key"],
                   "actions": [(run_action, ["render_group", paths, entry["key"],
                                             entry["file"], entry["templates"]])],
                   "file_dep": [str(paths.contexts / entry["file"]), *entry["templates"],
                                *RENDER_CODE],
                   "targets": [str(paths.rendered / entry["file"]),
                               *(f"{build}/{p}" for p, _exe, _lint, verbatim in entry["files"]
                                 if not verbatim)],
                   "uptodate": [(rendered_intact, [paths, entry["file"]])],
                   "clean": True, "verbosity": 2}

    @after_plan
    def task_lint() -> Iterator[dict[str, Any]]:
        """Check one rendered script with its linter."""
        for entry in current_plan(paths):
            for rel, _exe, linter, _verbatim in entry["files"]:
                if linter:
                    yield {"name": rel, "actions": [(run_action, ["lint_file", paths, rel,
                                                                  linter])],
                           "file_dep": [str(paths.build / rel)],
                           "task_dep": [f"render:{entry['key']}"], "verbosity": 2}

    @after_plan
    def task_bundle() -> dict[str, Any]:
        """Publish the rendered files into out/ with MANIFEST.sha256, in one step."""
        groups = current_plan(paths)
        files = sorted({p for e in groups for p, *_ in e["files"]} | {"MANIFEST.sha256"})
        out = str(paths.out)  # no Path per file: a sweep may have one file per point
        return {"actions": [(run_action, ["publish", paths])],
                "file_dep": [str(paths.plan),
                             *(str(paths.rendered / e["file"]) for e in groups)],
                "task_dep": ["render", "lint"],
                "targets": [f"{out}/{p}" for p in files],
                "uptodate": [(outputs_intact, [paths])],
                "clean": [(_clean_out, [paths])], "verbosity": 2}

    return {"task_plan": task_plan, "task_render": task_render, "task_lint": task_lint,
            "task_bundle": task_bundle}


def _clean_out(paths: Paths, dryrun: bool = False) -> None:
    from .build import clean_out

    clean_out(paths, dryrun)


class Reporter(ConsoleReporter):  # type: ignore[misc]  # doit ships no type hints
    """doit's console reporter, but a user error prints as itself, on stderr, nothing more,
    and tasks found up to date are counted on one line instead of one line each. On a
    terminal, a build that runs longer than a second (JOBPACK_PROGRESS_AFTER seconds) shows
    how many groups are rendered and scripts linted, on one line of stderr that it redraws
    and clears at the end; nothing of it is written when stderr is not a terminal."""

    paths: Paths | None = None  # set by ``config``: where the plan tells the totals

    def __init__(self, outstream: Any, options: Any) -> None:
        import sys
        import time

        super().__init__(outstream, options)
        self.uptodate = 0
        self.clock = time.monotonic
        self.start = self.clock()
        self.done = {"render": 0, "lint": 0}
        self.totals: dict[str, int] | None = None
        self.shown = False
        term = os.environ.get("TERM", "")
        self.tty = sys.stderr if sys.stderr.isatty() and term not in ("", "dumb") else None
        try:
            self.after = float(os.environ.get("JOBPACK_PROGRESS_AFTER", "1"))
        except ValueError:
            self.after = 1.0

    def execute_task(self, task: Any) -> None:
        self._clear()  # the task's own lines start on a clean line
        super().execute_task(task)

    def add_success(self, task: Any) -> None:
        super().add_success(task)
        self._count(task)

    def skip_uptodate(self, task: Any) -> None:
        if task.subtask_of or task.actions:  # not a group of subtasks
            self.uptodate += 1
            self._count(task)

    def _count(self, task: Any) -> None:
        kind = task.name.partition(":")[0]
        if kind == "plan":
            self.totals = None  # planned again: read the totals anew
        if kind in self.done and task.actions:
            self.done[kind] += 1
        self._draw()

    def _draw(self) -> None:
        if self.tty is None or self.paths is None or self.clock() - self.start < self.after:
            return
        if self.totals is None:
            from .build import plan_entries

            entries = plan_entries(self.paths)
            self.totals = {"render": len(entries),
                           "lint": sum(1 for e in entries for f in e["files"] if f[2])}
        self.tty.write(f"\r\033[Kjobpack: rendered {self.done['render']} of "
                       f"{self.totals['render']} groups, linted {self.done['lint']} of "
                       f"{self.totals['lint']} scripts")
        self.tty.flush()
        self.shown = True

    def _clear(self) -> None:
        if self.shown and self.tty is not None:
            self.tty.write("\r\033[K")
            self.tty.flush()
            self.shown = False

    def add_failure(self, task: Any, fail: Any) -> None:
        if isinstance(fail, TaskFailed) and LAST_ERROR:
            import sys

            self.failures.append({"task": task, "exception": fail})
            sys.stderr.write(LAST_ERROR[-1].render() + "\n")
            return
        super().add_failure(task, fail)

    def complete_run(self) -> None:
        self._clear()
        if LAST_ERROR:
            self.failures: list[Any] = []
        if self.uptodate:
            self.write(f"-- {self.uptodate} task(s) up to date\n")
        super().complete_run()


class DodoReporter(Reporter):
    """For plain ``doit``: a user error ends the process with jobpack's exit status (2 for
    an invalid project) instead of doit's 1, once doit has saved its record."""

    def complete_run(self) -> None:
        super().complete_run()
        if LAST_ERROR:
            raise SystemExit(LAST_ERROR[-1].exit_status)


def config(paths: Paths, reporter: type[Reporter] = Reporter) -> dict[str, Any]:
    """DOIT_CONFIG for a build whose checks and lock were taken care of by the caller."""
    bound = type(reporter.__name__, (reporter,), {"paths": paths})
    return {"default_tasks": ["plan", "render", "lint", "bundle"], "backend": "json",
            "dep_file": str(paths.state / "doit.json"), "verbosity": 2,
            "reporter": bound}


def doit_config(paths: Paths) -> dict[str, Any]:
    """DOIT_CONFIG for a dodo.py: checks the project and out/, holds the build lock of out/
    until the process ends and completes a build that was killed. A problem is printed
    and ends the process with status 2 (75 when another build keeps the lock)."""
    import sys

    from .errors import JobpackError
    from .guard import prepare

    try:
        prepare(paths)
    except JobpackError as exc:
        print(exc.render(), file=sys.stderr)
        raise SystemExit(exc.exit_status) from None
    except OSError as exc:
        print(f"jobpack: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return config(paths, DodoReporter)
