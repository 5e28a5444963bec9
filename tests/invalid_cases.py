"""The corpus of invalid projects: one folder per case under tests/projects/invalid, plus the
cases git cannot hold (FIFOs, devices, symlinks, unreadable or huge files), made at run time.

Every case has its whole error text in tests/golden/errors/<case>/<case>.txt. A case is run
in-process (fast: the whole corpus takes seconds) or through the real ``jobpack`` command;
both must print the same text.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROJECTS, ROOT, Result

STATIC = PROJECTS / "invalid"
# FILE:LINE:COL: path: message (the path may be "(top)", "(file)", "yaml", "(json)").
ERROR_LINE = re.compile(r"[^\n:]+:[0-9]+:[0-9]+: [^\n]+?: [^\n]+")
SUMMARY = re.compile(r"[0-9]+ problems? found; out/ was not changed")
HANG = 30  # seconds after which a case is stopped and reported as a hang
SLOW = 5.0  # every case must finish within this many seconds

NGC_HEAD = ("project: p\nclusters:\n  g: {kind: ngc, instance: dgx1v.16g.1.norm, "
            "configs: /ws/configs}\njobs:\n")
SLURM_SWEEP = ("project: p\nclusters:\n  c: {kind: slurm}\njobs:\n"
               "  j: {cluster: c, command: 'echo {{ sequence }}', sweep: {sequences: %s}}\n")


def _ngc_config(base: str) -> str:
    return NGC_HEAD + ("  t: {cluster: g, image: nvcr.io/nv/x:1, command: "
                       f"'python t.py {{{{ config_path }}}}', config: {{base: {base}}}}}\n")


def _sparse(path: Path, size: int, head: bytes = b"") -> None:
    """A file of ``size`` bytes that takes no room on disk (only its size is ever read)."""
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)


def _project(folder: Path, text: str) -> Path:
    (folder / "project.yaml").write_text(text)
    return folder / "project.yaml"


def _dev_zero(folder: Path, name: str) -> None:
    (folder / name).symlink_to("/dev/zero")


def _fifo(folder: Path, name: str) -> None:
    os.mkfifo(folder / name)


def _unreadable(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)
    (folder / name).chmod(0)


MINIMAL = "project: p\nclusters:\n  c: {kind: slurm}\njobs:\n  j: {cluster: c, command: echo}\n"


def _make_project_is_folder(folder: Path) -> Path:
    (folder / "myproject").mkdir()
    return folder / "myproject"


def _make_project_fifo(folder: Path) -> Path:
    _fifo(folder, "project.yaml")
    return folder / "project.yaml"


def _make_project_dev_zero(folder: Path) -> Path:
    _dev_zero(folder, "project.yaml")
    return folder / "project.yaml"


def _make_project_missing(folder: Path) -> Path:
    return folder / "project.yaml"


def _make_project_dangling_symlink(folder: Path) -> Path:
    (folder / "project.yaml").symlink_to(folder / "gone.yaml")
    return folder / "project.yaml"


def _make_project_symlink_loop(folder: Path) -> Path:
    (folder / "project.yaml").symlink_to("project.yaml")
    return folder / "project.yaml"


def _make_project_too_large(folder: Path) -> Path:
    _sparse(folder / "project.yaml", 5 * 1024 * 1024, MINIMAL.encode())
    return folder / "project.yaml"


def _make_project_unreadable(folder: Path) -> Path:
    _unreadable(folder, "project.yaml", MINIMAL)
    return folder / "project.yaml"


def _make_project_too_many_values(folder: Path) -> Path:
    items = ", ".join(str(i) for i in range(120_000))
    return _project(folder, MINIMAL + f"env: {{}}\nx: [{items}]\n")


def _make_project_alias_bomb_billion(folder: Path) -> Path:
    lines = ["project: p", "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return _project(folder, "\n".join(lines) + "\n")


def _make_sequences_fifo(folder: Path) -> Path:
    _fifo(folder, "seq.json")
    return _project(folder, SLURM_SWEEP % "seq.json")


def _make_sequences_dev_zero(folder: Path) -> Path:
    _dev_zero(folder, "seq.json")
    return _project(folder, SLURM_SWEEP % "seq.json")


def _make_sequences_too_large(folder: Path) -> Path:
    _sparse(folder / "seq.json", 65 * 1024 * 1024, b'{"a": 1}')
    return _project(folder, SLURM_SWEEP % "seq.json")


def _make_sequences_unreadable(folder: Path) -> Path:
    _unreadable(folder, "seq.json", '{"a": 1}')
    return _project(folder, SLURM_SWEEP % "seq.json")


def _make_sequences_too_many_points(folder: Path) -> Path:
    (folder / "seq.json").write_text(json.dumps({f"s{i:06d}": i for i in range(100_001)}))
    return _project(folder, SLURM_SWEEP % "seq.json")


def _make_sequences_symlink_to_folder(folder: Path) -> Path:
    (folder / "seq.json").symlink_to(folder)
    return _project(folder, SLURM_SWEEP % "seq.json")


def _make_ngc_config_base_symlink_out(folder: Path) -> Path:
    project = folder / "project"
    project.mkdir()
    (folder / "outside.yaml").write_text("lr: 1\n")
    (project / "base.yaml").symlink_to(folder / "outside.yaml")
    return _project(project, _ngc_config("base.yaml"))


def _make_ngc_config_base_outside_exists(folder: Path) -> Path:
    project = folder / "project"
    project.mkdir()
    (folder / "base.yaml").write_text("lr: 1\n")
    return _project(project, _ngc_config("../base.yaml"))


def _make_ngc_config_base_fifo(folder: Path) -> Path:
    _fifo(folder, "base.yaml")
    return _project(folder, _ngc_config("base.yaml"))


def _make_ngc_config_base_dev_zero(folder: Path) -> Path:
    _dev_zero(folder, "base.json")
    return _project(folder, _ngc_config("base.json"))


def _make_ngc_config_base_too_large(folder: Path) -> Path:
    _sparse(folder / "base.yaml", 5 * 1024 * 1024, b"lr: 1\n")
    return _project(folder, _ngc_config("base.yaml"))


def _make_ngc_config_json_very_deep(folder: Path) -> Path:
    (folder / "base.json").write_text("[" * 100_000 + "]" * 100_000)
    return _project(folder, _ngc_config("base.json"))


def _make_ngc_config_output_too_large(folder: Path) -> Path:
    (folder / "base.yaml").write_text("pad: " + "x" * (3 * 1024 * 1024) + "\n")
    points = ", ".join(str(i) for i in range(100))
    text = _ngc_config("base.yaml").replace("config: {base: base.yaml}",
                                            f"config: {{base: base.yaml}}, sweep: {{matrix: "
                                            f"{{i: [{points}]}}}}")
    return _project(folder, text)


IMAGE = ("project: p\nimages:\n  app:\n    tags: [registry.example.com/p/app:1]\n"
         "    dockerfile: {from: 'debian:12', %s}\n")


def _make_image_copy_symlink_out(folder: Path) -> Path:
    project = folder / "project"
    project.mkdir()
    (folder / "secrets").mkdir()
    (project / "data").symlink_to(folder / "secrets")
    return _project(project, IMAGE % "copy: [{from: data, to: /data}]")


def _make_image_requirements_fifo(folder: Path) -> Path:
    _fifo(folder, "requirements.txt")
    return _project(folder, IMAGE % "requirements: requirements.txt")


def _make_image_copy_name_too_long(folder: Path) -> Path:
    return _project(folder, IMAGE % f"copy: [{{from: {'x' * 300}, to: /x}}]")


@dataclass(frozen=True)
class Case:
    """One invalid project: ``make`` lays it out in a fresh folder and returns the path that
    ``-p`` names; ``unreadable`` cases must run without root's power to read any file."""

    name: str
    make: Callable[[Path], Path]
    unreadable: bool = False


DYNAMIC: dict[str, Case] = {
    name.removeprefix("_make_"): Case(name.removeprefix("_make_"), func,
                                      unreadable="unreadable" in name)
    for name, func in sorted(globals().items()) if name.startswith("_make_")
}


def _static(name: str) -> Case:
    return Case(name, lambda _folder: STATIC / name / "project.yaml")


CASES: dict[str, Case] = {
    **{p.name: _static(p.name) for p in sorted(STATIC.iterdir()) if p.is_dir()},
    **DYNAMIC,
}
assert not set(DYNAMIC) & {p.name for p in STATIC.iterdir()}, "a case is both static and made"

# The cases that also go through the real `jobpack` command (a process each): one or more of
# every class, and every case that involves the file system's special files.
SAMPLE = ("yaml_syntax", "unknown_key", "wrong_type", "ngc", "alias_bomb", "deep_flow_nesting",
          "python_tag", "huge_integer", "not_utf8", "tab_indent", "nul_in_sweep_value",
          "newline_in_job_name", "job_name_300", "nodes_1e30", "rates_nan",
          "sbatch_abbreviations", "ngc_team_one_letter", "ngc_config_yaml_syntax",
          "storage_unknown_key_used_by_sync", "enum_typos", "project_fifo", "project_dev_zero",
          "project_is_folder", "project_missing", "project_unreadable", "sequences_fifo",
          "sequences_dev_zero", "ngc_config_base_symlink_out", "project_alias_bomb_billion",
          "image_build_refs", "image_copy_symlink_out")


def _drop_read_override() -> list[str]:
    """A command prefix that runs without the capabilities that let root read any file, so
    that an unreadable file is unreadable (empty when not root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root reads every file, and setpriv (util-linux) is not here to stop that")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def run_command(case: Case, project: Path, out: Path) -> tuple[Result, float]:
    """Run ``jobpack build`` as a user would, in its own process; returns the result and the
    seconds it took."""
    argv = [*(_drop_read_override() if case.unreadable else []), sys.executable, "-m",
            "jobpack", "build", "-p", str(project), "-o", str(out)]
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=HANG,
                              check=False)
    except subprocess.TimeoutExpired:
        return Result(-1, "", f"hang: no answer after {HANG} s"), float(HANG)
    return Result(proc.returncode, proc.stdout, proc.stderr), time.monotonic() - start


class _Hang(Exception):
    pass


@contextmanager
def _watchdog(seconds: int) -> Iterator[None]:
    def stop(_signum: int, _frame: object) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(case: Case, project: Path, out: Path) -> tuple[Result, float]:
    """What ``jobpack build`` prints and returns, run in this process (the command's own
    ``main``, so doit, the loader and the checks are the real ones)."""
    if case.unreadable and _drop_read_override():
        return run_command(case, project, out)  # root reads everything in this process
    from generators import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    start = time.monotonic()
    try:
        with _watchdog(HANG), redirect_stdout(stdout), redirect_stderr(stderr):
            code = cli.main(["build", "-p", str(project), "-o", str(out)])
    except _Hang:
        return Result(-1, stdout.getvalue(), f"hang: no answer after {HANG} s"), float(HANG)
    except BaseException:  # noqa: BLE001 - a traceback is exactly what the test looks for
        code = 3
        stderr.write(traceback.format_exc())
    return Result(code, stdout.getvalue(), stderr.getvalue()), time.monotonic() - start


def problems_in(result: Result) -> list[str]:
    """The error lines of a failed build; raises AssertionError when the output is not
    FILE:LINE:COL: path: message lines followed by the summary line."""
    assert result.code == 2, f"exit {result.code}, not 2:\n{result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.rstrip("\n").split("\n")
    assert SUMMARY.fullmatch(lines[-1]), f"last line is not the summary: {lines[-1]!r}"
    for line in lines[:-1]:
        assert ERROR_LINE.fullmatch(line), f"not FILE:LINE:COL: path: message: {line!r}"
    return lines[:-1]
