"""The ``jobpack`` command: build, check and plan a project from any folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .paths import Paths

DOIT_COMMANDS = ("list", "info", "clean", "forget")


def _options(defaults: bool) -> argparse.ArgumentParser:
    """-p/-o, accepted before and after the command (given twice, the later one wins)."""
    p = argparse.ArgumentParser(add_help=False)
    keep = argparse.SUPPRESS
    p.add_argument("-p", "--project", type=Path,
                   default=Path("project.yaml") if defaults else keep,
                   help="project file (default: ./project.yaml)")
    p.add_argument("-o", "--out", type=Path, default=Path("out") if defaults else keep,
                   help="output folder (default: ./out)")
    return p


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jobpack", parents=[_options(True)],
        description="Compile project.yaml into a bundle of portable job scripts in out/.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    later = [_options(False)]
    sub.add_parser("build", parents=later,
                   help="render, lint and write what changed into out/ (default)")
    sub.add_parser("check", parents=later, help="exit 1 and name the files when out/ is stale")
    sub.add_parser("plan", parents=later, help="print PLAN.md")
    for name in DOIT_COMMANDS:
        sub.add_parser(name, parents=later, help=f"doit {name}")
    return p


def _paths(args: argparse.Namespace) -> Paths:
    from .paths import Paths

    return Paths(args.project.absolute(), args.out.absolute())


def main(argv: list[str] | None = None) -> int:
    args, rest = _parser().parse_known_args(argv)
    command = args.command or "build"
    if rest and command not in DOIT_COMMANDS:
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    from .errors import JobpackError

    paths = _paths(args)
    try:
        if command == "check":
            return _check(paths)
        if command == "plan":
            return _plan(paths)
        return _doit(paths, ["run"] if command == "build" else [command, *rest])
    except JobpackError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_status


def _doit(paths: Paths, argv: list[str]) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from .tasks import LAST_ERROR, doit_config, make_tasks

    LAST_ERROR.clear()
    namespace: dict[str, object] = dict(make_tasks(paths.project, paths.out))
    namespace["DOIT_CONFIG"] = doit_config(paths)
    code = DoitMain(ModuleTaskLoader(namespace)).run(argv)
    if code and LAST_ERROR:
        return int(LAST_ERROR[-1].exit_status)
    return 3 if code else 0  # not a problem of the project: doit's usage errors, or a bug


def _check(paths: Paths) -> int:
    from .build import stale_files

    stale = stale_files(paths)
    if stale:
        print(f"{paths.out} is stale; rebuild with `jobpack build`:",
              *("  " + s for s in stale), sep="\n", file=sys.stderr)
        return 1
    print(f"{paths.out} is up to date")
    return 0


def _plan(paths: Paths) -> int:
    from .build import expected_files

    sys.stdout.write(expected_files(paths)["PLAN.md"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
