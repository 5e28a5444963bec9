"""The ``jobpack`` command: build, check and plan a project from any folder."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .paths import Paths

DOIT_COMMANDS = ("list", "info", "clean", "forget")
DEFAULT_PROJECT = Path("project.yaml")


def _options(defaults: bool) -> argparse.ArgumentParser:
    """-p/-o, accepted before and after the command (given twice, the later one wins)."""
    p = argparse.ArgumentParser(add_help=False)
    keep = argparse.SUPPRESS
    p.add_argument("-p", "--project", type=Path, default=None if defaults else keep,
                   help="project file (default: ./project.yaml)")
    p.add_argument("-o", "--out", type=Path, default=Path("out") if defaults else keep,
                   help="output folder (default: ./out)")
    return p


def _standard_streams() -> None:
    """Started with a standard stream closed (``2>&-``), the command opens it on /dev/null:
    what it prints there goes nowhere, and no file the build opens takes its number (a
    linter's messages, written to its stderr, would land in it)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
    # The process's own streams, open until it ends (no context manager).
    if sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                          closefd=False)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jobpack", parents=[_options(True)],
        description="Compile project.yaml into a bundle of portable job scripts in out/.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    later = [_options(False)]
    sub.add_parser("build", parents=later,
                   help="render, lint and write what changed into out/ (default)")
    sub.add_parser("check", parents=later, help="exit 1 and name the files when out/ is stale")
    plan = sub.add_parser("plan", parents=later,
                          help="print the plan: a table on a terminal, else PLAN.md")
    plan.add_argument("--format", choices=("auto", "table", "md"), default="auto",
                      help="table (aligned columns), md (PLAN.md as the build writes it); "
                           "auto: table on a terminal, else md")
    init = sub.add_parser("init", help="start a project: a commented project.yaml for one "
                          "workflow, its schema, dodo.py, .gitignore and a pre-commit hook")
    from .init import default_workflow, workflows

    init.add_argument("--from", dest="workflow", default=default_workflow(),
                      choices=workflows(), metavar="WORKFLOW",
                      help=f"the workflow to start from: {', '.join(workflows())} "
                           f"(default: {default_workflow()})")
    init.add_argument("folder", nargs="?", type=Path, default=Path("."),
                      help="where to write (created if missing; default: here)")
    sub.add_parser("schema", parents=later,
                   help="print the JSON Schema of project.yaml (for editors)")
    diff = sub.add_parser("diff", parents=later,
                          help="show what a build would change in out/ as a unified diff; "
                               "exit 1 when it would change anything")
    diff.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colour the diff (auto: on a terminal, unless NO_COLOR is set)")
    for name in DOIT_COMMANDS:
        sub.add_parser(name, parents=later, help=f"doit {name}")
    return p


def _paths(args: argparse.Namespace) -> Paths:
    from .paths import Paths

    # abspath, not resolve: `-o ..` names the parent folder, a symlink stays a symlink
    return Paths(Path(os.path.abspath(args.project or DEFAULT_PROJECT)),
                 Path(os.path.abspath(args.out)))


def main(argv: list[str] | None = None) -> int:
    with _QuietPipe():
        return _main(argv)


def run() -> NoReturn:
    """The ``jobpack`` command: ``main()``, then the process ends at once.

    Tearing the interpreter down (freeing every module and object: about 70 ms once doit
    and pydantic are loaded, a fifth of a one-point rebuild) does nothing for a command
    that has finished: every file it wrote is closed, the build lock goes with the process.
    Exit handlers still run and the standard streams are flushed first.

    pydantic looks for plugins in the entry points of every installed distribution when a
    model first validates (15 ms among a hundred distributions): this process's models are
    jobpack's own, and no plugin has a say in them. (Set here, for this process only: a
    dodo.py loads jobpack into the user's own doit process, whose plugins stay theirs.)"""
    _standard_streams()
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):  # never None: _standard_streams() opened them
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or file
            stream.flush()
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    args, rest = _parser().parse_known_args(argv)
    command = args.command or "build"
    if rest and command not in DOIT_COMMANDS:
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    from .errors import JobpackError

    paths = _paths(args)
    try:
        if command == "diff":
            return _diff(paths, args.color)
        if command == "schema":
            return _schema()
        if command == "init":
            return _init(args.folder, args.workflow)
        return _run(command, paths, rest, getattr(args, "format", "auto"))
    except JobpackError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_status
    except OSError as exc:  # a full disk, a permission: one line, no traceback
        print(f"jobpack: {exc}", file=sys.stderr)
        return 1


def _run(command: str, paths: Paths, rest: list[str], fmt: str = "auto") -> int:
    from . import guard

    if command in ("check", "plan"):
        guard.check_project(paths.project)
        return _check(paths) if command == "check" else _plan(paths, fmt)
    guard.prepare(paths)
    try:
        return _doit(paths, ["run"] if command == "build" else [command, *rest])
    finally:
        guard.release(paths)


def _doit(paths: Paths, argv: list[str]) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain
    from doit.plugin import PluginDict

    # The build is jobpack's tasks and reporter only: doit plugins that other packages
    # register (for plain `doit`) are not looked for, which would read the entry points of
    # every installed distribution on each build.
    PluginDict._from_entry_points = lambda self, category: {}

    from .tasks import LAST_ERROR, config, make_tasks

    LAST_ERROR.clear()
    namespace: dict[str, object] = dict(make_tasks(paths.project, paths.out))
    namespace["DOIT_CONFIG"] = config(paths)
    code = DoitMain(ModuleTaskLoader(namespace)).run(argv)
    if code and LAST_ERROR:
        return int(LAST_ERROR[-1].exit_status)
    return 3 if code else 0  # not a problem of the project: doit's usage errors, or a bug


def _check(paths: Paths) -> int:
    from .build import stale_files

    stale, extra = stale_files(paths)
    if stale:
        print(f"{paths.out} is stale; rebuild with `jobpack build`:",
              *("  " + s for s in stale), sep="\n", file=sys.stderr)
    if extra:
        print(f"{paths.out} holds files jobpack did not write; builds leave them alone, "
              "so remove them (or move them out of it):",
              *("  " + s for s in extra), sep="\n", file=sys.stderr)
    if stale or extra:
        return 1
    print(f"{paths.out} is up to date")
    return 0


def _diff(paths: Paths, color: str) -> int:
    from . import guard
    from .diff import bundle_diff, coloured

    guard.check_project(paths.project)
    lines = bundle_diff(paths)
    if color == "always" or (color == "auto" and sys.stdout.isatty()
                             and not os.environ.get("NO_COLOR")):
        lines = list(coloured(lines))
    for line in lines:
        sys.stdout.write(line + "\n")
    return 1 if lines else 0


def _schema() -> int:
    from .init import schema_text

    sys.stdout.write(schema_text())
    return 0


def _init(folder: Path, workflow: str) -> int:
    from .init import init, schema_text

    names = init(folder, workflow, schema_text())
    where = "here" if folder == Path(".") else str(folder)
    print(f"wrote {', '.join(names)} {'' if where == 'here' else 'in '}{where}")
    print("next: replace the FILL IN values of project.yaml, then run `jobpack` "
          f"{'' if where == 'here' else f'in {where} '}to build out/ (`jobpack plan` shows "
          "what it will do)")
    return 0


def _plan(paths: Paths, fmt: str) -> int:
    if fmt == "table" or (fmt == "auto" and sys.stdout.isatty()):
        return _plan_table(paths)
    from .build import expected_files

    sys.stdout.write(expected_files(paths)["PLAN.md"].text)
    return 0


COLUMNS = (("job", "name"), ("cluster", "cluster"), ("launcher", "launcher"),
           ("nodes", "nodes"), ("GPUs", "gpus"), ("time", "time"), ("points", "points"),
           ("after", "after"), ("cost", "cost"))


def _plan_table(paths: Paths) -> int:
    """The jobs of PLAN.md as aligned columns, then the estimated total."""
    from .registry import load, plan_rows
    from .shell import oneline

    rows, totals = plan_rows(load(paths.project))
    cells = [[title for title, _key in COLUMNS]]
    cells += [[str(oneline(row.get(key, ""))) for _title, key in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    if totals:
        print("estimated total (an upper bound): " +
              ", ".join(f"{v:.2f}".rstrip("0").rstrip(".") + f" {u}"
                        for u, v in sorted(totals.items())))
    return 0


class _QuietPipe:
    """Output into a closed pipe (``jobpack plan | head -1``) is dropped, without a
    traceback: the command still runs to its end (a build is never cut short by it)."""

    def __enter__(self) -> None:
        self.real = sys.stdout
        sys.stdout = _PipeWriter(self.real)

    def __exit__(self, *exc: object) -> None:
        try:
            sys.stdout.flush()
        finally:
            sys.stdout = self.real


class _PipeWriter:
    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, text: str) -> int:
        try:
            return int(self.real.write(text))
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self.real.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        """Point stdout at /dev/null, so that later writes and the final flush succeed."""
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self.real.fileno())
        os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


if __name__ == "__main__":
    sys.exit(main())
