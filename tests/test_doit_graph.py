"""Plain doit drives the build: its tasks, dependencies, clean, forget and parallel runs are
the real ones, not a facade over a private engine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import ROOT, read_tree

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def doit(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "doit"), *args], cwd=folder, capture_output=True,
                          text=True, check=False)


def with_dodo(project: Path) -> Path:
    (project.parent / "dodo.py").write_text((ROOT / "dodo.py").read_text())
    return project.parent


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          cwd=folder, capture_output=True, text=True, check=True).stdout


def planned(folder: Path) -> list[dict[str, object]]:
    plan = json.loads((folder / ".jobpack" / "out" / "plan.json").read_text())
    groups: list[dict[str, object]] = plan["groups"]
    return groups


def test_list_shows_a_render_task_per_group_and_a_lint_task_per_script(project_copy) -> None:
    folder = with_dodo(project_copy("full"))
    assert doit(folder).returncode == 0
    listed = doit(folder, "list", "--all", "--quiet").stdout.split()
    groups = planned(folder)
    assert sorted(n for n in listed if n.startswith("render:")) == \
        sorted(f"render:{g['key']}" for g in groups)
    scripts = sorted(p for g in groups for p, _exe, lint, _v in g["files"] if lint)  # type: ignore
    assert sorted(n for n in listed if n.startswith("lint:")) == [f"lint:{p}" for p in scripts]
    assert {"plan", "bundle"} <= set(listed)
    assert len(groups) > 5 and "slurm/hpc/submit_all.sh" in scripts


def test_info_shows_real_dependencies_and_targets(project_copy) -> None:
    folder = with_dodo(project_copy("full"))
    assert doit(folder).returncode == 0
    info = doit(folder, "info", "render:slurm/hpc/train").stdout
    assert "ctx/slurm%2Fhpc%2Ftrain.json" in info
    assert "build/slurm/hpc/train.sbatch" in info
    # A verbatim file (its text is in the context) is not written to build/.
    assert "train.params.tsv" not in info
    assert "status     : up-to-date" in info


def test_clean_removes_exactly_the_built_files_and_dry_run_says_which(project_copy) -> None:
    project = project_copy("full")
    folder = with_dodo(project)
    assert doit(folder).returncode == 0
    (folder / "out" / "slurm" / "hpc" / "ledger.tsv").write_text("kept\n")  # the scripts'
    (folder / "notes.txt").write_text("mine\n")
    git(folder, "init", "-q", ".")
    (folder / ".gitignore").write_text(".jobpack/\n__pycache__/\n.doit.db*\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "built")
    built = sorted(p for p in read_tree(folder / "out") if not p.endswith("ledger.tsv"))
    dry = doit(folder, "clean", "-n")
    assert dry.returncode == 0, dry.stderr
    assert git(folder, "status", "--short") == ""  # nothing removed
    for rel in built:
        assert f"out/{rel}" in dry.stdout
    assert doit(folder, "clean").returncode == 0
    deleted = sorted(line[3:].removeprefix("out/") for line in
                     git(folder, "status", "--short").splitlines())
    assert deleted == built
    assert (folder / "out" / "slurm" / "hpc" / "ledger.tsv").read_text() == "kept\n"


def test_forget_then_doit_renders_again_to_the_same_bytes(project_copy) -> None:
    folder = with_dodo(project_copy("full"))
    assert doit(folder).returncode == 0
    before = read_tree(folder / "out")
    assert doit(folder, "forget").returncode == 0
    again = doit(folder)
    assert again.returncode == 0
    assert again.stdout.count(".  render:") == len(planned(folder)), again.stdout
    assert read_tree(folder / "out") == before


def test_parallel_doit_builds_the_same_bytes(project_copy, tmp_path: Path) -> None:
    serial = with_dodo(project_copy("full"))
    assert doit(serial).returncode == 0
    parallel = with_dodo(project_copy("ngc"))
    assert doit(parallel, "-n", "2").returncode == 0
    (parallel / "project.yaml").write_text((serial / "project.yaml").read_text())
    for data in serial.iterdir():
        if data.is_file() and data.name not in ("project.yaml", "dodo.py"):
            (parallel / data.name).write_bytes(data.read_bytes())
    result = doit(parallel, "-n", "2")
    assert result.returncode == 0, result.stderr
    assert read_tree(parallel / "out") == read_tree(serial / "out")
