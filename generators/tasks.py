"""doit task definitions, used by dodo.py and by the ``jobpack`` command.

Three tasks: ``render`` (validate + render changed groups into a stage), ``lint``
(shellcheck what was staged) and ``bundle`` (publish into out/). Importing this module is
cheap: a no-op build stats files and never loads the project.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter

from .paths import Paths, outputs_intact, step

# The last user-facing error raised inside a task, for the CLI's exit status and message.
LAST_ERROR: list[Any] = []


def _guard(name: str, paths: Paths) -> Callable[[], Any]:
    """An action running ``generators.build.<name>(paths)``; imported only when it runs."""
    def action() -> Any:
        from . import build
        from .errors import JobpackError

        step.begin(name)
        try:
            print(getattr(build, name)(paths))
            return None
        except JobpackError as exc:
            LAST_ERROR.append(exc)
            return TaskFailed(exc.render())
        except OSError as exc:  # a full disk, a permission: one line, no traceback
            from .publish import PublishError

            LAST_ERROR.append(PublishError(str(exc)))
            return TaskFailed(str(exc))
    action.__name__ = name
    return action


def make_tasks(project: Path, out: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    """``task_*`` functions for a project file and an output folder."""
    paths = Paths(Path(project), Path(out))

    def task_render() -> dict[str, Any]:
        """Validate the project and render what changed (out/ is not touched)."""
        deps = [paths.project, *paths.code_files()]
        return {"actions": [_guard("stage_render", paths)],
                "file_dep": [str(p) for p in deps if p.exists()],
                "uptodate": [lambda: outputs_intact(paths)],
                "clean": [_guard("clean", paths)], "verbosity": 2}

    def task_lint() -> dict[str, Any]:
        """shellcheck every staged script not checked before."""
        return {"actions": [_guard("stage_lint", paths)], "task_dep": ["render"],
                "uptodate": [lambda: not paths.pending.exists()], "verbosity": 2}

    def task_bundle() -> dict[str, Any]:
        """Publish staged files into out/ and write MANIFEST.sha256."""
        return {"actions": [_guard("publish", paths)], "task_dep": ["lint"],
                "uptodate": [lambda: not paths.pending.exists()], "verbosity": 2}

    return {"task_render": task_render, "task_lint": task_lint, "task_bundle": task_bundle}


class Reporter(ConsoleReporter):  # type: ignore[misc]  # doit ships no type hints
    """doit's console reporter, but a user error prints as itself, on stderr, nothing more."""

    def add_failure(self, task: Any, fail: Any) -> None:
        if isinstance(fail, TaskFailed) and LAST_ERROR:
            import sys

            self.failures.append({"task": task, "exception": fail})
            sys.stderr.write(LAST_ERROR[-1].render() + "\n")
            return
        super().add_failure(task, fail)

    def complete_run(self) -> None:
        if LAST_ERROR:
            self.failures: list[Any] = []
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
    return {"default_tasks": ["render", "lint", "bundle"], "backend": "json",
            "dep_file": str(paths.state / "doit.json"), "verbosity": 2,
            "reporter": reporter}


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
