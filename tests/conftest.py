"""Shared fixtures: golden-file comparison (rewritten only with --update-golden) and builds."""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ROOT / "tests" / "projects"
GOLDEN = ROOT / "tests" / "golden"


def pytest_configure(config: pytest.Config) -> None:
    """Builds under test keep their linter and template caches in a folder of this run,
    not in the user's cache (subprocesses inherit the setting)."""
    if not os.environ.get("JOBPACK_CACHE"):
        os.environ["JOBPACK_CACHE"] = _CACHE[0] = tempfile.mkdtemp(prefix="jobpack-cache-")
    # A run stopped with SIGTERM (a CI time limit, kill) ends like one stopped with Ctrl-C:
    # fixtures tear down, so the Slurm daemons and servers they started are stopped too.
    signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE[0]:
        shutil.rmtree(_CACHE[0], ignore_errors=True)
        os.environ.pop("JOBPACK_CACHE", None)


_CACHE = [""]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden from the current output (review the diff!)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many hostile values went through generated code in this run, and where."""
    from hostile import TALLY

    if TALLY:
        terminalreporter.section("hostile values")
        for where, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{count:7d}  {where}")
        terminalreporter.write_line(f"{sum(TALLY.values()):7d}  in all")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def read_tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` by relative path, as text."""
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_golden(actual: dict[str, str], golden: Path, update: bool) -> None:
    """Compare whole files with the reviewed copies in ``golden``; rewrite them on request."""
    if update:
        shutil.rmtree(golden, ignore_errors=True)
        for rel, text in actual.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_text(text, encoding="utf-8")
        return
    assert golden.is_dir(), f"no golden files at {golden}; run pytest --update-golden and review"
    expected = read_tree(golden)
    assert sorted(actual) == sorted(expected), "the set of files differs from the golden set"
    for rel in expected:
        if actual[rel] != expected[rel]:
            diff = "".join(difflib.unified_diff(
                expected[rel].splitlines(True), actual[rel].splitlines(True),
                f"golden/{rel}", f"actual/{rel}"))
            pytest.fail(f"{rel} differs from its golden copy:\n{diff}")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def jobpack(*args: str | os.PathLike[str], cwd: Path | None = None,
            env: dict[str, str] | None = None) -> Result:
    """Run the jobpack command in a fresh interpreter, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "jobpack", *map(str, args)],
                          cwd=cwd or ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def build(project: Path, out: Path) -> Result:
    return jobpack("build", "-p", project, "-o", out)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mtime of every file below ``root`` (to prove nothing was touched)."""
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def copy_project(name: str, dest: Path) -> Path:
    """A private copy of tests/projects/NAME; returns its project.yaml."""
    shutil.copytree(PROJECTS / name, dest)
    return dest / "project.yaml"


@pytest.fixture
def project_copy(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(name: str) -> Path:
        return copy_project(name, tmp_path / name)
    return make


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real Slurm (slurmctld, two slurmd, munge) on loopback for the whole session."""
    from slurm_cluster import SlurmCluster, missing_binaries

    missing = missing_binaries()
    reason = (f"Slurm is not installed ({', '.join(missing)} missing); "
              "tests/install-deps.sh installs it") if missing else (
        "the loopback Slurm runs its daemons as root" if os.geteuid() != 0 else "")
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # munged wants every folder above its socket open to all, which pytest's tmp is not.
    root = Path(tempfile.mkdtemp(prefix="jobpack-slurm-"))
    root.chmod(0o755)
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Installed:
    """jobpack installed without -e into ``target`` (put it on PYTHONPATH to use it)."""

    target: Path
    pip_output: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.target)}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A plain install of this source tree, made once per test run from a copy of the
    source as a clean clone has it (setuptools builds in the source folder, and a build/
    left there by an earlier install would be packaged again)."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "build", ".venv", "*.egg-info", ".jobpack", ".git", "out", "bench", "tests", "examples",
        ".*_cache", ".hypothesis", "__pycache__"))
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-v", "--no-deps",
                          "--target", str(base / "site"), str(source)],
                         check=True, capture_output=True, text=True)
    return Installed(base / "site", pip.stdout + pip.stderr)
