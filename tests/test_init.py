"""``jobpack init``: from an install to a project that builds, is checked by an editor's
schema and is guarded by a pre-commit hook.

The starting points run from a plain (non -e) install, as after ``pip install jobpack``;
the hooks run under the real pre-commit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import ROOT, Installed
from test_schema import plain

from generators.init import workflows
from generators.loader import parse_yaml

WORKFLOWS = workflows()


def run(installed: Installed, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobpack", *map(str, args)], cwd=cwd,
                          env=installed.env(), capture_output=True, text=True, check=False)


def test_the_documented_workflows_are_offered() -> None:
    assert set(WORKFLOWS) == {"slurm", "ngc", "runai", "azureml", "dev"}


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_init_then_jobpack_builds(workflow: str, installed: Installed, tmp_path: Path) -> None:
    made = run(installed, "init", "--from", workflow, "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    demo = tmp_path / "demo"
    assert {".gitignore", ".pre-commit-config.yaml", "dodo.py", "jobpack.schema.json",
            "project.yaml"} <= set(os.listdir(demo))
    text = (demo / "project.yaml").read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=jobpack.schema.json\n")
    assert "FILL IN" in text  # the placeholders are marked
    built = run(installed, cwd=demo)
    assert built.returncode == 0, built.stderr
    assert (demo / "out" / "PLAN.md").is_file() and (demo / "out" / "MANIFEST.sha256").is_file()
    assert run(installed, "check", cwd=demo).returncode == 0
    # The schema beside it accepts it, as an editor would check it.
    schema = json.loads((demo / "jobpack.schema.json").read_text(encoding="utf-8"))
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(
        plain(parse_yaml(text, "project.yaml")[0])))
    # plain doit with the dodo.py it wrote builds the same, from the installed package
    doit = subprocess.run([sys.executable, "-m", "doit", "-n", "1"], cwd=demo,
                          env=installed.env(), capture_output=True, text=True, check=False)
    assert doit.returncode == 0, doit.stderr


def test_init_never_overwrites(installed: Installed, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / ".gitignore").write_text("mine\n")
    refused = run(installed, "init", "--from", "ngc", cwd=demo)
    assert refused.returncode == 2
    assert ".gitignore" in refused.stderr and "nothing was written" in refused.stderr
    assert os.listdir(demo) == [".gitignore"]
    assert (demo / ".gitignore").read_text() == "mine\n"
    bad = run(installed, "init", "--from", "nope", "x", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_an_empty_folder_points_at_init(installed: Installed, tmp_path: Path) -> None:
    result = run(installed, cwd=tmp_path)
    assert result.returncode == 2 and "jobpack init" in result.stderr


def test_gitignore_keeps_run_time_files_and_build_state_out_of_git(
        installed: Installed, tmp_path: Path) -> None:
    assert run(installed, "init", "--from", "slurm", cwd=tmp_path).returncode == 0
    assert run(installed, cwd=tmp_path).returncode == 0
    git(tmp_path, "init", "-q")
    for made in ("out/slurm/hpc/ledger.tsv", "out/slurm/hpc/secrets.env",
                 "out/slurm/hpc/logs/1.out", "secrets.env"):
        (tmp_path / made).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / made).write_text("x\n")
    listed = git(tmp_path, "status", "--porcelain", "--untracked-files=all").splitlines()
    files = {line[3:] for line in listed}
    assert "out/slurm/hpc/submit_all.sh" in files and "project.yaml" in files
    assert "out/secrets.env.example" in files  # the example is part of the bundle
    assert not {f for f in files if f.startswith(".jobpack/") or "ledger" in f
                or f.endswith("secrets.env") or "/logs/" in f}


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t",
                           *args], cwd=folder, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def pre_commit_env(tmp_path: Path) -> dict[str, str]:
    """pre-commit with its own cache, and jobpack's command on PATH."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "pre-commit").exists():
        pytest.fail("pre-commit is not installed (the test extra installs it)")
    return {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_generated_hook_refuses_a_commit_with_a_stale_out(
        tmp_path: Path, pre_commit_env: dict[str, str]) -> None:
    """`pre-commit install` in a project from init: a commit whose out/ is stale is
    refused with the stale files named; after `jobpack`, it goes through."""
    project = tmp_path / "p"
    env = pre_commit_env
    subprocess.run([sys.executable, "-m", "jobpack", "init", "--from", "slurm", str(project)],
                   check=True, env=env, capture_output=True)
    subprocess.run([sys.executable, "-m", "jobpack", "build"], cwd=project, check=True,
                   env=env, capture_output=True)
    git(project, "init", "-q")
    subprocess.run(["pre-commit", "install"], cwd=project, env=env, check=True,
                   capture_output=True)
    git(project, "add", "-A")
    commit = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm"]
    first = subprocess.run([*commit, "built"], cwd=project, env=env, capture_output=True,
                           text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    text = (project / "project.yaml").read_text(encoding="utf-8")
    (project / "project.yaml").write_text(text.replace("time: \"30:00\"", "time: \"45:00\""),
                                          encoding="utf-8")
    git(project, "add", "project.yaml")
    stale = subprocess.run([*commit, "longer checks"], cwd=project, env=env,
                           capture_output=True, text=True)
    assert stale.returncode != 0
    assert "changed: slurm/hpc/check.sbatch" in stale.stdout + stale.stderr
    assert git(project, "log", "--oneline").count("\n") == 1  # not committed
    subprocess.run([sys.executable, "-m", "jobpack"], cwd=project, check=True, env=env,
                   capture_output=True)
    git(project, "add", "-A")
    fresh = subprocess.run([*commit, "longer checks"], cwd=project, env=env,
                           capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr


def test_this_repository_offers_the_hook_to_pre_commit(
        tmp_path: Path, pre_commit_env: dict[str, str]) -> None:
    """`pre-commit try-repo` of this repository's `jobpack-check` hook (installed by
    pre-commit from the source, as for any user of the hook): stale out/ fails, current
    out/ passes."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert [h["id"] for h in hooks] == ["jobpack-check"]
    # The repository as a commit (try-repo reads a commit, and the working tree of a
    # checkout may differ from HEAD).
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(
        "build", ".venv", "*.egg-info", ".jobpack", ".git", "bench", "tests", "examples",
        ".*_cache", ".hypothesis", "__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "jobpack")
    project = tmp_path / "p"
    shutil.copytree(ROOT / "tests/projects/minimal", project)
    subprocess.run([sys.executable, "-m", "jobpack", "build"], cwd=project, check=True,
                   env=pre_commit_env, capture_output=True)
    git(project, "init", "-q")
    git(project, "add", "-A")
    config = {"repos": [{"repo": str(repo), "rev": git(repo, "rev-parse", "HEAD").strip(),
                         "hooks": [{"id": "jobpack-check"}]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    env = {**pre_commit_env, "PATH": "/usr/bin:/bin"}  # the hook's own install, not ours
    pre_commit = str(Path(sys.executable).parent / "pre-commit")

    def hook() -> subprocess.CompletedProcess[str]:
        return subprocess.run([pre_commit, "run", "--all-files"], cwd=project, env=env,
                              capture_output=True, text=True, check=False)

    current = hook()
    assert current.returncode == 0, current.stdout + current.stderr
    (project / "out" / "PLAN.md").write_text("edited by hand\n")
    stale = hook()
    assert stale.returncode == 1
    assert "changed: PLAN.md" in stale.stdout
