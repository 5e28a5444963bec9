"""Every string field of the schema, set to a hostile value, in turn: the build either refuses
it with FILE:LINE:COL errors, or writes a bundle whose scripts run nothing of it.

The example projects (tests/projects/full, ngc, images and dev) hold a value in every field
of the schema. Each string in them, and each name used as a key, is replaced in turn by a value
made to break out of any context (quotes, $( ), backticks, a newline followed by a
here-document delimiter and a command, a comment end). Every generated script that the value
reached then runs with -h and --dry-run, with the scheduler and transfer tools replaced by
stubs; the value must not run, and a description must show in -h as written. A Dockerfile
the value reached keeps the instructions it had without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECTS
from hostile import dockerfile_instructions, tally

from generators.build import expected_files
from generators.errors import ProjectError
from generators.paths import Paths

# Two values: one that breaks lines (most names and paths refuse it), one that does not.
HOSTILE = ("x'\"$(touch PWNED)`touch PWNED`\nUSAGE\ntouch PWNED #\\",
           "x'\"$(touch PWNED)`touch PWNED`;touch PWNED;#\\")
TOOLS = ("sbatch", "squeue", "scontrol", "sacct", "scancel", "srun", "module", "conda", "ngc",
         "rclone", "rsync", "lftp", "ssh", "docker", "podman", "python3", "python", "salloc",
         "tmux", "lz4")
Path_ = tuple[str | int, ...]


def _strings(data: Any, path: Path_ = ()) -> Iterator[tuple[Path_, bool]]:
    """Paths of every string of ``data`` (False) and of every mapping key (True)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*path, key), True
            yield from _strings(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*path, i))
    elif isinstance(data, str):
        yield path, False


def _replaced(data: Any, path: Path_, key: bool, value: str) -> Any:
    """A copy of ``data`` with the string (or key) at ``path`` replaced by ``value``."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, list):
        out = list(data)
        out[int(head)] = _replaced(out[int(head)], rest, key, value)
        return out
    out = {}
    for k, v in data.items():
        if k == head and key and not rest:
            out[value] = v
        elif k == head:
            out[k] = _replaced(v, rest, key, value)
        else:
            out[k] = v
    return out


def _cases() -> list[tuple[str, Path_, bool, int]]:
    cases = []
    for name in ("full", "ngc", "images", "dev"):
        data = yaml.safe_load((PROJECTS / name / "project.yaml").read_text())
        cases += [(name, path, key, n) for path, key in _strings(data)
                  for n in range(len(HOSTILE))]
    return cases


CASES = _cases()
# The instructions of each Dockerfile of the example projects, as written.
DOCKERFILES = {rel: dockerfile_instructions(built.text)
               for rel, built in expected_files(Paths(PROJECTS / "images" / "project.yaml",
                                                      PROJECTS / "images" / "out")).items()
               if rel.endswith("/Dockerfile")}


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stubs")
    for tool in TOOLS:
        (folder / tool).write_text("#!/bin/sh\nexit 0\n")
        (folder / tool).chmod(0o755)
    return folder


def _run_scripts(files: dict[str, str], folder: Path, stubs: Path) -> dict[str, str]:
    """Write the bundle, run every script the value reached with -h and --dry-run, and
    return each -h output."""
    out = folder / "out"
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    helps = {}
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "HOME": str(folder), "RUN_ID": "r1"}
    for rel, text in files.items():
        if not rel.endswith((".sh", ".sbatch")) or "PWNED" not in text:
            continue
        for args in (["-h"], ["--dry-run"]):
            proc = subprocess.run(["bash", str(out / rel), *args], cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=60, check=False)
            if args == ["-h"]:
                assert proc.returncode == 0, (rel, proc.stderr)
                helps[rel] = proc.stdout
    return helps


@pytest.mark.parametrize(("project", "path", "key", "which"), CASES,
                         ids=[f"{p}:{'.'.join(map(str, path))}{'(key)' if k else ''}:{n}"
                              for p, path, k, n in CASES])
def test_hostile_value_in_any_field_never_runs(project: str, path: Path_, key: bool,
                                               which: int, tmp_path: Path,
                                               stubs: Path) -> None:
    folder = tmp_path / "p"
    shutil.copytree(PROJECTS / project, folder)
    data = yaml.safe_load((folder / "project.yaml").read_text())
    value = HOSTILE[which]
    (folder / "project.yaml").write_text(yaml.safe_dump(_replaced(data, path, key, value)))
    try:
        files = {rel: art.text for rel, art in
                 expected_files(Paths(folder / "project.yaml", folder / "out")).items()}
    except ProjectError as exc:  # refused: every problem is FILE:LINE:COL: path: message
        assert exc.problems and all(p.line >= 1 and p.col >= 1 and p.message
                                    for p in exc.problems)
        return
    helps = _run_scripts(files, folder, stubs)
    assert not list(tmp_path.rglob("PWNED")), "a value ran as code"
    for rel, text in files.items():
        if rel.endswith("/Dockerfile"):
            assert dockerfile_instructions(text) == DOCKERFILES[rel], text
    if path[-1] == "description" and not key:  # shown in -h as written (indented)
        expected = "".join(f"  {line}\n" for line in value.split("\n"))
        assert all(expected in h for h in helps.values() if "PWNED" in h)
    tally("schema fields: hostile value built and run", 1)
