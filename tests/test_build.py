"""What a user notices about builds: incremental, deterministic, gated, overridable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Installed, build, jobpack, read_tree, snapshot


def _changed(before: dict[str, tuple[bytes, int]], after: dict[str, tuple[bytes, int]]) -> set[str]:
    return {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def test_noop_build_renders_and_rewrites_nothing(project_copy, tmp_path: Path) -> None:
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    before = snapshot(out)
    again = build(project, out)
    assert again.code == 0
    assert again.stdout.endswith("task(s) up to date\n"), again.stdout
    assert ".  " not in again.stdout  # no task ran: nothing planned, rendered or linted
    assert snapshot(out) == before


def test_changing_one_job_rerenders_only_that_job(project_copy, tmp_path: Path) -> None:
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    before = snapshot(out)
    text = project.read_text().replace("python prepare.py", "python prepare2.py")
    project.write_text(text)
    result = build(project, out)
    assert result.code == 0
    ran = [line for line in result.stdout.splitlines() if line.startswith(".  render:")]
    assert ran == [".  render:slurm/hpc/prepare"], result.stdout
    assert _changed(before, snapshot(out)) == {"slurm/hpc/prepare.sbatch", "MANIFEST.sha256"}


def test_changing_one_sweep_point_rewrites_only_its_table(project_copy, tmp_path: Path) -> None:
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    before = snapshot(out)
    seqs = project.parent / "sequences.json"
    data = json.loads(seqs.read_text())
    data["seq-c"] = 301
    seqs.write_text(json.dumps(data))
    assert build(project, out).code == 0
    assert _changed(before, snapshot(out)) == {"slurm/hpc/train.params.tsv", "MANIFEST.sha256"}


_BUILD_TELLING_JINJA = """
import sys
from jobpack.cli import main
code = main(["build", "-p", sys.argv[1], "-o", sys.argv[2]])
print("jinja imported" if "jinja2" in sys.modules else "jinja not imported")
sys.exit(code)
"""


def test_a_changed_point_renders_no_template(project_copy, tmp_path: Path) -> None:
    """A render whose templated files have the inputs of their last render renders none
    of them again: only the point table is rewritten, and Jinja is not even imported."""
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    seqs = project.parent / "sequences.json"
    seqs.write_text(json.dumps({**json.loads(seqs.read_text()), "seq-c": 302}))

    def run() -> str:
        proc = subprocess.run([sys.executable, "-c", _BUILD_TELLING_JINJA, str(project),
                               str(out)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert ".  render:slurm/hpc/train" in proc.stdout
        return proc.stdout.splitlines()[-1]

    assert run() == "jinja not imported"
    assert "seq-c\t302" in (out / "slurm/hpc/train.params.tsv").read_text()
    # The same change with a template edited in place, its size kept: rendered again.
    override = project.parent / "templates" / "slurm" / "job.sbatch.j2"
    override.parent.mkdir(parents=True)
    builtin = (ROOT / "templates/slurm/job.sbatch.j2").read_text()
    assert "# Command\n" in builtin
    override.write_text(builtin.replace("# Command\n", "# COMMAND\n"))
    seqs.write_text(json.dumps({**json.loads(seqs.read_text()), "seq-c": 303}))
    assert run() == "jinja imported"
    assert "# COMMAND\n" in (out / "slurm/hpc/train.sbatch").read_text()
    override.write_text(builtin.replace("# Command\n", "# CoMMAND\n"))
    assert run() == "jinja imported"
    assert "# CoMMAND\n" in (out / "slurm/hpc/train.sbatch").read_text()


def test_a_new_jinja_release_renders_again(project_copy, tmp_path: Path) -> None:
    """Jinja's release is an input of every render: after an upgrade a changed point
    renders the templated files again instead of keeping the old release's text."""
    import jinja2

    jinja = tmp_path / "site" / "jinja2"
    shutil.copytree(Path(jinja2.__file__).parent, jinja)
    env = {**os.environ, "PYTHONPATH": str(jinja.parent)}
    project = project_copy("full")
    out = tmp_path / "out"
    seqs = project.parent / "sequences.json"

    def run(point: int) -> str:
        seqs.write_text(json.dumps({**json.loads(seqs.read_text()), "seq-c": point}))
        proc = subprocess.run([sys.executable, "-c", _BUILD_TELLING_JINJA, str(project),
                               str(out)], capture_output=True, text=True, check=False, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout.splitlines()[-1]

    assert run(301) == "jinja imported"
    assert run(302) == "jinja not imported"
    init = jinja / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{jinja2.__version__}"',
                                             '__version__ = "99.0.0"'))
    assert '"99.0.0"' in init.read_text()
    assert run(303) == "jinja imported"


def test_deleted_or_edited_output_is_restored_once(project_copy, tmp_path: Path) -> None:
    project = project_copy("minimal")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    want = read_tree(out)
    (out / "slurm/local/hello.sbatch").unlink()
    (out / "PLAN.md").write_text("edited by hand\n")
    assert build(project, out).code == 0
    assert read_tree(out) == want
    before = snapshot(out)
    assert build(project, out).code == 0
    assert snapshot(out) == before


def test_removed_job_files_are_removed(project_copy, tmp_path: Path) -> None:
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    text = project.read_text()
    project.write_text(text[:text.index("  evaluate:")] + text[text.index("\nstorage:"):])
    assert build(project, out).code == 0
    assert not (out / "slurm/hpc/evaluate.sbatch").exists()
    assert jobpack("check", "-p", project, "-o", out).code == 0


def test_template_override_beside_project(project_copy, tmp_path: Path) -> None:
    project = project_copy("minimal")
    override = project.parent / "templates" / "slurm" / "job.sbatch.j2"
    override.parent.mkdir(parents=True)
    builtin = (ROOT / "templates/slurm/job.sbatch.j2").read_text()
    override.write_text(builtin.replace("# Command\n", "# Command (site override)\n"))
    out = tmp_path / "out"
    assert build(project, out).code == 0
    assert "# Command (site override)" in (out / "slurm/local/hello.sbatch").read_text()
    override.write_text(builtin)  # a template is a dependency: editing it rebuilds
    assert build(project, out).code == 0
    assert "site override" not in (out / "slurm/local/hello.sbatch").read_text()


def test_shellcheck_finding_fails_build_and_leaves_out_alone(project_copy,
                                                            tmp_path: Path) -> None:
    project = project_copy("minimal")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    before = snapshot(out)
    override = project.parent / "templates" / "slurm" / "job.sbatch.j2"
    override.parent.mkdir(parents=True)
    builtin = (ROOT / "templates/slurm/job.sbatch.j2").read_text()
    # (Variables the scripts share with runtime.sh are not findings: it is checked apart.)
    override.write_text(builtin.replace("# Command\n", "# Command\njp_x=(a b)\necho ${jp_x[@]}\n"))
    result = build(project, out)
    assert result.code == 1
    assert "out/slurm/local/hello.sbatch:" in result.stderr and "SC2068" in result.stderr
    assert snapshot(out) == before
    assert build(project, out).code == 1, "a failed lint must not be forgotten on rebuild"


def test_check_names_stale_files(project_copy, tmp_path: Path) -> None:
    project = project_copy("minimal")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    assert jobpack("check", "-p", project, "-o", out).code == 0
    (out / "slurm/local/hello.sbatch").write_text("#!/bin/sh\n")
    (out / "stray.txt").write_text("x")
    result = jobpack("check", "-p", project, "-o", out)
    assert result.code == 1
    assert "changed: slurm/local/hello.sbatch" in result.stderr
    assert "extra:   stray.txt" in result.stderr


def test_plan_prints_cost_estimate(project_copy) -> None:
    result = jobpack("plan", "-p", project_copy("full"))
    assert result.code == 0
    assert "| train | hpc | none | 1 | 1 | 2:00:00 | 5 (≤ 2 at once) | prepare | 25 SU |" \
        in result.stdout
    assert "Estimated total: 1565 SU." in result.stdout  # 25 + 1 + 1536 + 3


def test_plan_cost_counts_retries_at_their_escalation_rungs(project_copy) -> None:
    project = project_copy("full")
    text = project.read_text()
    project.write_text(text.replace(
        "  train:\n",
        "  train:\n    retries: 2\n"
        "    escalate: [{time: \"4:00:00\"}, {gpus: 2}]\n", 1))
    result = jobpack("plan", "-p", project)
    assert result.code == 0, result.stderr
    # per point: 2 h at (2 + 1 × 0.5), then 4 h at the first rung, then 2 h with 2 GPUs
    assert "| prepare | 105 SU (3 attempts) |" in result.stdout
    assert "Estimated total: 1645 SU." in result.stdout


def test_two_clones_build_identical_bytes(tmp_path: Path) -> None:
    """Committed out/ equals what two clones at different paths build."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    trees = []
    for name in ("one", "two two"):
        dest = tmp_path / name / "jobpack"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
        for rel in ("generators", "templates", "project.yaml"):  # the working tree's state
            src, dst = ROOT / rel, dest / rel
            if src.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, dst)
        shutil.rmtree(dest / "out", ignore_errors=True)
        assert jobpack("build", cwd=dest).code == 0
        trees.append({p: (dest / "out" / p).read_bytes() for p in read_tree(dest / "out")})
    assert trees[0] == trees[1]
    assert trees[0] == {p: (ROOT / "out" / p).read_bytes() for p in read_tree(ROOT / "out")}


def test_every_generated_script_has_help_and_is_executable(project_copy, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert build(project_copy("full"), out).code == 0
    scripts = sorted(p for p in out.rglob("*") if p.suffix in (".sh", ".sbatch")
                     and p.name != "runtime.sh")
    assert len(scripts) == 12  # 4 jobs, submit_all.sh, ctl.sh, 6 syncs
    # Each folder's library is sourced, never run.
    libraries = sorted(p.parent for p in out.rglob("runtime.sh"))
    assert libraries == sorted({s.parent for s in scripts})
    assert not any(os.access(p / "runtime.sh", os.X_OK) for p in libraries)
    for script in scripts:
        assert os.access(script, os.X_OK)
        result = subprocess.run([str(script), "-h"], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and result.stdout.startswith("Usage: "), script
        bad = subprocess.run([str(script), "--bogus"], capture_output=True, text=True,
                             check=False)
        assert bad.returncode == 2 and "unknown option: --bogus" in bad.stderr


def test_installed_without_editable_finds_its_templates(installed: Installed,
                                                        tmp_path: Path) -> None:
    """A plain (non -e) install is the package ``jobpack`` with every module and template
    of the source tree (no top-level ``generators`` that could shadow a user's module),
    builds from any folder with ``python -m jobpack``, and packaging it gives no warning
    about the license or the template folders."""
    target, pip = installed.target, installed.pip_output
    package = target / "jobpack"
    assert not (target / "generators").exists()
    assert sorted(p.relative_to(package / "templates") for p in package.rglob("*.j2")) == \
        sorted(p.relative_to(ROOT / "templates") for p in (ROOT / "templates").rglob("*.j2"))
    assert sorted(p.relative_to(package) for p in package.rglob("*.py")) == \
        sorted(p.relative_to(ROOT / "generators") for p in (ROOT / "generators").rglob("*.py"))
    starters = ROOT / "generators" / "starters"
    assert sorted(p.relative_to(package / "starters") for p in (package / "starters").rglob("*")
                  if p.is_file() and p.suffix != ".pyc" and p.name != "__init__.py") == \
        sorted(p.relative_to(starters) for p in starters.rglob("*")
               if p.is_file() and p.suffix != ".pyc" and p.name != "__init__.py")
    for warning in ("absent from the `packages` configuration", "license` as a TOML table"):
        assert warning not in pip
    work = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "tests/projects/full", work)
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-m", "jobpack", "build"], cwd=work, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (work / "out/slurm/hpc/submit_all.sh").exists()


def test_dry_run_works_without_secrets_or_scheduler(project_copy, tmp_path: Path) -> None:
    """Reviewing a bundle on a laptop: every script's --dry-run runs with nothing set."""
    out = tmp_path / "out"
    assert build(project_copy("full"), out).code == 0
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    folder = out / "slurm/hpc"
    for script in [*sorted(folder.glob("*.sbatch")), folder / "submit_all.sh"]:
        proc = subprocess.run(["bash", str(script), "--dry-run"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (script.name, proc.stderr)
        if script.name in ("submit_all.sh", "train.sbatch"):  # they need HPC_ACCOUNT, WANDB_*
            assert "is not set; the dry run shows it as ${" in proc.stderr
    grid = subprocess.run(["bash", str(folder / "grid.sbatch"), "--dry-run", "--index", "1"],
                          env=env, capture_output=True, text=True, check=True).stdout
    assert "+ export WANDB_DIR=/scratch/zoo" in grid  # a later value refers to an earlier one
    # the point's values as written, then the command that refers to them
    assert "export jp_p_lr=0.10\nexport jp_p_seed=2\n" in grid and "export jp_p_opt=adam\n" in grid
    assert 'python grid.py --lr "${jp_p_lr}" --seed "${jp_p_seed}" --opt "${jp_p_opt}"' in grid
    assert not (folder / "ledger.tsv").exists() and not (folder / "logs").exists()
    ctl = subprocess.run(["bash", str(folder / "ctl.sh"), "status"], env=env,
                         capture_output=True, text=True, check=False)
    assert ctl.returncode == 1 and "run submit_all.sh first" in ctl.stderr
    sbatch = (folder / "grid.sbatch").read_text()
    assert "#SBATCH --exclusive\n" in sbatch and "overcommit" not in sbatch


def test_a_folder_no_longer_built_goes_but_what_scripts_wrote_there_stays(
        project_copy, tmp_path: Path) -> None:
    """Another project in the same place (a cluster renamed, a backend dropped): out/ holds
    exactly the new bundle, plus the ledger the old scripts wrote."""
    project = project_copy("ngc")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    (out / "ngc/ngc/ledger.tsv").write_text("history\n")
    minimal = project_copy("minimal")
    project.write_text(minimal.read_text())
    assert build(project, out).code == 0
    fresh = tmp_path / "fresh"
    assert build(minimal, fresh).code == 0
    assert read_tree(out) == {**read_tree(fresh), "ngc/ngc/ledger.tsv": "history\n"}
    assert jobpack("check", "-p", project, "-o", out).code == 0


def test_scripts_find_their_runtime_library_or_say_it_is_missing(project_copy,
                                                                 tmp_path: Path) -> None:
    """A folder copied anywhere works; a script copied alone keeps -h and stops with a clear
    message; a batch script run from elsewhere (as from Slurm's spool) finds its folder
    through SLURM_SUBMIT_DIR or JOBPACK_DIR."""
    out = tmp_path / "out"
    assert build(project_copy("minimal"), out).code == 0
    moved = tmp_path / "a b" / "local"
    shutil.copytree(out / "slurm" / "local", moved)
    env = {k: v for k, v in os.environ.items() if k not in ("JOBPACK_DIR", "SLURM_SUBMIT_DIR")}

    def run(script: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                              env={**env, **extra}, cwd=tmp_path, check=False)

    assert run(moved / "hello.sbatch", "--dry-run").returncode == 0
    alone = tmp_path / "spool"
    alone.mkdir()
    shutil.copy2(moved / "hello.sbatch", alone)
    shutil.copy2(moved / "submit_all.sh", alone)
    assert run(alone / "hello.sbatch", "-h").returncode == 0
    lost = run(alone / "hello.sbatch", "--dry-run")
    assert lost.returncode == 1 and "no folder with hello.sbatch and runtime.sh" in lost.stderr
    for where in ("SLURM_SUBMIT_DIR", "JOBPACK_DIR"):
        assert run(alone / "hello.sbatch", "--dry-run", **{where: str(moved)}).returncode == 0
    script = run(alone / "submit_all.sh", "--dry-run")
    assert script.returncode == 1
    assert f"error: {alone}/runtime.sh is missing: copy the whole folder" in script.stderr


def test_the_command_ends_with_its_status_and_all_its_output(project_copy,
                                                            tmp_path: Path) -> None:
    """``jobpack`` ends its process without tearing the interpreter down: what it printed
    is all there, in a file as in a pipe, and its exit status is main()'s, also when it
    was started with a standard stream closed."""
    project = project_copy("full")
    piped = jobpack("plan", "--format", "md", "-p", project)
    assert piped.code == 0 and piped.stdout.startswith("<!-- Generated by jobpack")
    into = tmp_path / "plan.md"

    def sh(line: str) -> int:
        return subprocess.run(["sh", "-c", line, "sh", sys.executable, str(project),
                               str(into)], cwd=ROOT, check=False).returncode

    assert sh('"$1" -m jobpack plan --format md -p "$2" > "$3"') == 0
    assert into.read_text() == piped.stdout  # block-buffered into a file, flushed at exit
    assert sh('"$1" -m jobpack plan --format md -p "$2" > "$3" 2>&-') == 0
    assert into.read_text() == piped.stdout
    assert sh('"$1" -m jobpack schema -p "$2" >&- 2>&-') == 0
    out = tmp_path / "out"
    assert sh(f'"$1" -m jobpack build -p "$2" -o {out} >&- 2>&- <&-') == 0
    assert jobpack("check", "-p", project, "-o", out).code == 0  # built whole
    project.write_text(project.read_text() + "\nbogus: 1\n")
    assert sh('"$1" -m jobpack check -p "$2" > "$3" 2>&-') == 2


def test_context_files_are_written_as_the_context_format_writes_them(tmp_path: Path) -> None:
    """Verbatim files' contexts take a shortcut past the walk for Safe strings: the text
    must be what dump_context writes, so that both read back alike."""
    from conftest import PROJECTS

    from generators.build import _contexts_text, _spec_json, plan_groups
    from generators.context import dump_context, load_context
    from generators.paths import Paths
    from generators.plan import FileSpec
    from generators.shell import Safe

    verbatim = 0
    for project in sorted(PROJECTS.glob("*/project.yaml")):
        _loaded, groups = plan_groups(Paths(project, tmp_path / project.parent.name))
        for group in groups:
            want = dump_context([_spec_json(s) for s in group.files])
            assert _contexts_text(group.files) == want, group.key
            verbatim += sum(s.verbatim for s in group.files)
    assert verbatim > 10  # the shortcut was taken
    # A Safe text keeps its tag: it takes the walk.
    safe = FileSpec("a.txt", None, {"text": Safe("'x'")})
    assert safe.verbatim
    assert type(load_context(_contexts_text([safe]))[0]["context"]["text"]) is Safe
