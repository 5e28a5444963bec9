"""What a user notices about where and when a build writes: one build at a time, only into
a folder jobpack owns, never through a symlink, and what scripts wrote in out/ survives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, build, jobpack, read_tree, snapshot

VENV_BIN = Path(sys.executable).parent
NO_DAC_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                   "--bounding-set=-dac_override,-dac_read_search"]
STATE_FILES = {"state.json", "plan.json", "ctx", "build", "rendered", "doit.json", "lock"}


def start_build(project: Path, out: Path, **env: str) -> subprocess.Popen[str]:
    """A build in the background, stderr readable line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobpack", "build", "-p", str(project), "-o", str(out)],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)


def wait_stopped(proc: subprocess.Popen[str]) -> None:
    """Block until the process stops itself (JOBPACK_TEST_STOP); fail if it exits."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the build ended (status {status}) before its stop point"


def manifest_ok(out: Path) -> bool:
    return subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=out,
                          capture_output=True, check=False).returncode == 0


def add_runtime_files(folder: Path) -> dict[str, bytes]:
    """What scripts leave beside themselves: a ledger, logs, a lock file and a lock dir."""
    files = {"ledger.tsv": b"run\tjob\tid\nr1\ttrain\t17\n", "logs/train_17_0.out": b"step 1\n",
             ".ledger.lock": b"", "secrets.env": b"HPC_ACCOUNT=abc\n",
             "submit.lock/pid": b"123\n"}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return files


def without(tree: dict[str, str], files: set[str]) -> dict[str, str]:
    return {rel: text for rel, text in tree.items() if rel not in files}


def inodes(folder: Path, rels: list[str]) -> dict[str, int]:
    return {rel: (folder / rel).stat().st_ino for rel in rels}


# --- one build at a time ---------------------------------------------------------------

def test_second_build_waits_for_the_first_or_refuses(project_copy, tmp_path: Path) -> None:
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    project.write_text(project.read_text().replace("python prepare.py", "python prep.py"))
    first = start_build(project, out, JOBPACK_TEST_STOP="publish:1")
    try:
        wait_stopped(first)  # it holds the lock, halfway through
        refused = jobpack("build", "-p", project, "-o", out, env={"JOBPACK_WAIT": "0"})
        assert refused.code == 75, refused.stderr
        assert f"another build of {out} is running (pid {first.pid})" in refused.stderr
        assert "Traceback" not in refused.stderr
        second = start_build(project, out)
        assert second.stderr is not None
        line = second.stderr.readline()  # blocks until the second build says it waits
        assert f"another build of {out} is running (pid {first.pid}); waiting" in line
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait() == 0
    assert second.wait() == 0, second.stderr.read()
    assert manifest_ok(out)
    assert jobpack("check", "-p", project, "-o", out).code == 0
    assert set(os.listdir(tmp_path / ".jobpack" / "out")) == STATE_FILES


def test_plain_doit_refuses_while_a_build_runs(project_copy, tmp_path: Path) -> None:
    project = project_copy("minimal")
    (project.parent / "dodo.py").write_text((ROOT / "dodo.py").read_text())
    out = project.parent / "out"
    assert build(project, out).code == 0
    before = snapshot(out)
    project.write_text(project.read_text().replace("hello from", "hi from"))
    first = start_build(project, out, JOBPACK_TEST_STOP="render:1")
    try:
        wait_stopped(first)
        doit = subprocess.run([str(VENV_BIN / "doit")], cwd=project.parent, capture_output=True,
                              text=True, env={**os.environ, "JOBPACK_WAIT": "0"}, check=False)
        assert doit.returncode == 75, doit.stdout + doit.stderr
        assert "another build of" in doit.stderr and "Traceback" not in doit.stderr
        assert snapshot(out) == before
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait() == 0
    doit = subprocess.run([str(VENV_BIN / "doit")], cwd=project.parent, capture_output=True,
                          text=True, check=False)
    assert doit.returncode == 0, doit.stderr
    assert manifest_ok(out)


def test_plain_doit_exits_2_on_an_invalid_project(project_copy) -> None:
    project = project_copy("minimal")
    (project.parent / "dodo.py").write_text((ROOT / "dodo.py").read_text())
    project.write_text(project.read_text().replace("cluster: local", "cluster: lokal"))
    doit = subprocess.run([str(VENV_BIN / "doit")], cwd=project.parent, capture_output=True,
                          text=True, check=False)
    assert doit.returncode == 2, doit.stdout + doit.stderr
    assert "jobs.hello.cluster: unknown cluster 'lokal'" in doit.stderr
    assert "Traceback" not in doit.stderr
    assert not (project.parent / "out").exists()


# --- out/ is a folder jobpack owns -----------------------------------------------------

def _refusal_cases(root: Path) -> dict[str, tuple[Path, list[str]]]:
    """Name -> (folder the command runs in, -o argument)."""
    foreign = root / "work" / "docs"
    foreign.mkdir(parents=True)
    (foreign / "notes.md").write_text("mine\n")
    (root / "work" / "a-file").write_text("not a folder\n")
    (root / "elsewhere").mkdir()
    (root / "work" / "linked").symlink_to(root / "elsewhere")
    return {".": (root / "work", ["-o", "."]), "..": (root / "work", ["-o", ".."]),
            "/": (root / "work", ["-o", "/"]), "foreign": (root / "work", ["-o", "docs"]),
            "symlink": (root / "work", ["-o", "linked"]),
            "file": (root / "work", ["-o", "a-file"])}


@pytest.mark.parametrize("case", [".", "..", "/", "foreign", "symlink", "file"])
@pytest.mark.parametrize("command", ["build", "clean"])
def test_output_folder_jobpack_does_not_own_is_refused(case: str, command: str,
                                                      tmp_path: Path) -> None:
    cwd, out_args = _refusal_cases(tmp_path)[case]
    (cwd / "project.yaml").write_text((ROOT / "tests/projects/minimal/project.yaml")
                                      .read_text())
    (cwd / "PLAN.md").write_text("my own plan\n")
    before = snapshot(tmp_path)
    had_root_state = Path("/.jobpack").exists()
    result = jobpack(command, *out_args, cwd=cwd)
    assert result.code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("jobpack: ") and result.stderr.count("\n") == 1, \
        result.stderr
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.rglob(".jobpack")) == []
    assert Path("/.jobpack").exists() == had_root_state


def test_output_folder_that_is_a_mount_point_is_refused(tmp_path: Path) -> None:
    """out/ cannot be replaced in one rename across file systems: say what to do instead."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("mounting a file system on out/ needs root and unshare")
    (tmp_path / "project.yaml").write_text((ROOT / "tests/projects/minimal/project.yaml")
                                           .read_text())
    (tmp_path / "out").mkdir()
    script = 'mount -t tmpfs none "$1/out" && cd "$1" && exec "$2" -m generators.cli build'
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(tmp_path),
                           sys.executable], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"jobpack: {tmp_path}/out: is on another file system than "
                           f"{tmp_path} (a mount point?); a build replaces out/ in one rename,"
                           " which cannot cross file systems: build into a folder inside it"
                           f" instead, e.g. -o {tmp_path}/out/out\n")
    assert sorted(os.listdir(tmp_path)) == ["out", "project.yaml"]


def test_half_written_record_of_doit_is_dropped(project_copy, tmp_path: Path) -> None:
    """doit rewrites its record in place; a build killed meanwhile leaves half of it."""
    project = project_copy("minimal")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    record = tmp_path / ".jobpack/out/doit.json"
    record.write_bytes(record.read_bytes()[:40])
    result = build(project, out)
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr and json.loads(record.read_text())
    assert jobpack("check", "-p", project, "-o", out).code == 0


def test_committed_out_of_a_fresh_clone_is_recognised(tmp_path: Path) -> None:
    """No build state, but out/ holds the MANIFEST.sha256 jobpack wrote: it is jobpack's,
    and building keeps every file's mtime."""
    work = tmp_path / "clone"
    work.mkdir()
    (work / "project.yaml").write_text((ROOT / "project.yaml").read_text())
    subprocess.run(["cp", "-a", str(ROOT / "out"), str(work / "out")], check=True)
    before = snapshot(work / "out")
    result = jobpack("build", cwd=work)
    assert result.code == 0, result.stderr
    assert snapshot(work / "out") == before


def test_clean_never_follows_a_symlink(project_copy, tmp_path: Path) -> None:
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    runtime = add_runtime_files(out / "slurm/hpc")
    outside = tmp_path / "outside"
    (outside / "sync").mkdir(parents=True)
    for script in (out / "sync").iterdir():  # same names as the recorded files
        (outside / "sync" / script.name).write_text("precious\n")
    (out / "sync").rename(tmp_path / "sync-moved")
    (out / "sync").symlink_to(outside / "sync")
    (out / "PLAN.md").unlink()
    (out / "PLAN.md").symlink_to(outside / "sync" / "datasets.sh")
    result = jobpack("clean", "-p", project, "-o", out)
    assert result.code == 0, result.stderr
    assert {p: t for p, t in read_tree(outside).items()} == {
        f"sync/{p.name}": "precious\n" for p in (tmp_path / "sync-moved").iterdir()}
    assert (out / "sync").is_symlink() and (out / "PLAN.md").is_symlink()
    assert not (out / "slurm/hpc/train.sbatch").exists()
    assert {rel: (out / "slurm/hpc" / rel).read_bytes() for rel in runtime} == runtime


def test_build_never_writes_through_a_symlink(project_copy, tmp_path: Path) -> None:
    project = project_copy("minimal")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hello.sbatch").write_text("precious\n")
    (out / "slurm/local").rename(tmp_path / "moved")
    (out / "slurm/local").symlink_to(outside)
    (out / "mine").symlink_to(outside)  # not in jobpack's way: carried over as it is
    result = build(project, out)
    assert result.code == 1 and "Traceback" not in result.stderr
    assert f"{out}/slurm/local is not a folder (a symlink or a file)" in result.stderr
    assert read_tree(outside) == {"hello.sbatch": "precious\n"}
    (out / "slurm/local").unlink()
    assert build(project, out).code == 0
    assert read_tree(outside) == {"hello.sbatch": "precious\n"}
    assert (out / "mine").is_symlink() and os.readlink(out / "mine") == str(outside)
    assert manifest_ok(out)


# --- files jobpack did not write -------------------------------------------------------

def test_runtime_files_survive_a_rebuild_that_changes_scripts(project_copy,
                                                             tmp_path: Path) -> None:
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    folder = out / "slurm/hpc"
    runtime = add_runtime_files(folder)
    ino = inodes(folder, list(runtime))
    old_script = (folder / "prepare.sbatch").read_text()
    project.write_text(project.read_text().replace("python prepare.py", "python prep.py"))
    assert build(project, out).code == 0
    assert (folder / "prepare.sbatch").read_text() != old_script
    assert {rel: (folder / rel).read_bytes() for rel in runtime} == runtime
    assert inodes(folder, list(runtime)) == ino  # the same files, not copies
    assert manifest_ok(out)
    text = project.read_text()  # the whole cluster goes: its ledger and logs stay
    project.write_text(text.replace("cluster: hpc", "cluster: gone").replace(
        "  hpc:\n", "  gone:\n"))
    assert build(project, out).code == 0
    assert not (folder / "prepare.sbatch").exists()
    assert {rel: (folder / rel).read_bytes() for rel in runtime} == runtime


def test_what_scripts_change_while_the_build_publishes_is_kept(project_copy,
                                                               tmp_path: Path) -> None:
    """The build is stopped after it linked the run-time files into the new tree and just
    before the switch; meanwhile a script appends to its ledger, writes a new log,
    releases its lock and replaces secrets.env. All of it is in out/ afterwards."""
    project = project_copy("full")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    folder = out / "slurm/hpc"
    add_runtime_files(folder)
    project.write_text(project.read_text().replace("python prepare.py", "python prep.py"))
    counted = jobpack("build", "-p", project, "-o", out, env={"JOBPACK_TEST_STOP": "count"})
    steps = int(counted.stderr.split("publish=")[1].split()[0])
    project.write_text(project.read_text().replace("python prep.py", "python prepare.py"))
    first = start_build(project, out, JOBPACK_TEST_STOP=f"publish:{steps - 6}")
    try:
        wait_stopped(first)
        journal = json.loads((tmp_path / ".jobpack/out/publish.json").read_text())
        assert out.stat().st_ino != journal["tree"], "stopped after the switch, not before"
        with open(folder / "ledger.tsv", "a") as ledger:
            ledger.write("r1\tgrid\t18\n")
        (folder / "logs/train_17_1.out").write_text("new log\n")
        (folder / ".ledger.lock").unlink()
        (folder / "secrets.env.new").write_text("HPC_ACCOUNT=def\n")
        (folder / "secrets.env.new").rename(folder / "secrets.env")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait() == 0
    assert "python prepare.py" in (folder / "prepare.sbatch").read_text()
    assert (folder / "ledger.tsv").read_text().endswith("r1\ttrain\t17\nr1\tgrid\t18\n")
    assert (folder / "logs/train_17_1.out").read_text() == "new log\n"
    assert not (folder / ".ledger.lock").exists()
    assert (folder / "secrets.env").read_text() == "HPC_ACCOUNT=def\n"
    assert (folder / "submit.lock/pid").read_text() == "123\n"
    assert set(os.listdir(tmp_path / ".jobpack" / "out")) == STATE_FILES


def test_check_and_build_agree_about_files_jobpack_did_not_write(project_copy,
                                                                tmp_path: Path) -> None:
    project = project_copy("minimal")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    add_runtime_files(out / "slurm/local")
    assert jobpack("check", "-p", project, "-o", out).code == 0  # run-time files: fine
    (out / "notes.txt").write_text("mine\n")
    result = jobpack("check", "-p", project, "-o", out)
    assert result.code == 1
    assert "holds files jobpack did not write; builds leave them alone, so remove them" \
        in result.stderr and "extra:   notes.txt" in result.stderr
    assert "rebuild" not in result.stderr  # a build would not change what check reports
    assert build(project, out).code == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert jobpack("check", "-p", project, "-o", out).stderr == result.stderr
    (out / "notes.txt").unlink()
    assert jobpack("check", "-p", project, "-o", out).code == 0


def test_temporary_files_of_earlier_versions_are_removed(project_copy, tmp_path: Path) -> None:
    """Builds of earlier versions, when killed, left .NAME.XXXXXXXX.tmp files in out/."""
    project = project_copy("minimal")
    out = tmp_path / "out"
    assert build(project, out).code == 0
    left = [".PLAN.md.k2j_9x0a.tmp", "slurm/local/.hello.sbatch.a1b2c3d4.tmp"]
    for rel in left:
        (out / rel).write_text("half a file")
    result = jobpack("check", "-p", project, "-o", out)
    assert result.code == 1 and "rebuild" in result.stderr
    assert all(f"old:     {rel}" in result.stderr for rel in left)
    assert jobpack("forget", "-p", project, "-o", out).code == 0  # as after an upgrade
    assert build(project, out).code == 0
    assert not any((out / rel).exists() for rel in left)
    assert jobpack("check", "-p", project, "-o", out).code == 0


# --- command-line errors ---------------------------------------------------------------

def test_missing_project_file_says_so_and_creates_nothing(tmp_path: Path) -> None:
    for command in ("build", "check", "plan", "clean", "list"):
        result = jobpack(command, cwd=tmp_path)
        assert result.code == 2
        assert result.stderr == ("project.yaml:1:1: (file): no project.yaml here (start one "
                                 "with `jobpack init`, or pass -p)\n"
                                 "1 problem found; out/ was not changed\n")
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["folder", "device", "missing", "unreadable"])
def test_project_that_is_not_a_readable_file_is_one_error(kind: str, tmp_path: Path) -> None:
    target = {"folder": tmp_path, "device": Path("/dev/null"),
              "missing": tmp_path / "nope.yaml", "unreadable": tmp_path / "secret.yaml"}[kind]
    name = target.name
    want = {"folder": "the project file is a folder, not a regular file",
            "device": "the project file is a character device, not a regular file",
            "missing": "no nope.yaml here (start one with `jobpack init`, or pass -p)",
            "unreadable": "the project file cannot be read (permission denied)"}[kind]
    cmd = [sys.executable, "-m", "jobpack", "build", "-p", str(target), "-o",
           str(tmp_path / "out")]
    if kind == "unreadable":
        target.write_text("project: x\n")
        target.chmod(0)
        if os.geteuid() == 0:  # root reads anything, unless it gives up that power
            cmd = [*NO_DAC_OVERRIDE, *cmd]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"{name}:1:1: (file): {want}"), proc.stderr
    assert proc.stderr.endswith("\n1 problem found; out/ was not changed\n"), proc.stderr
    assert proc.stderr.count("\n") == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / ".jobpack").exists()


@pytest.mark.parametrize("args", [["plan"], ["info", "plan"], ["list"], ["check"]])
def test_closed_pipe_is_quiet(args: list[str], project_copy, tmp_path: Path) -> None:
    project = project_copy("minimal")
    assert build(project, tmp_path / "out").code == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write fails
    try:
        proc = subprocess.run([sys.executable, "-m", "jobpack", *args, "-p",
                               str(project), "-o", str(tmp_path / "out")],
                              cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE, text=True,
                              check=False)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 0


# --- a kill at every step of the publish, where folders cannot be exchanged ------------

@pytest.mark.slow
def test_kill_at_every_publish_step_without_exchange(project_copy, tmp_path: Path) -> None:
    """With two renames instead of an exchange, a kill between them leaves no out/; the
    next build (itself killed once in its recovery) puts the new bundle in place."""
    project = project_copy("full")
    out = tmp_path / "out"
    texts = [project.read_text(), project.read_text().replace("python prepare.py", "p2")]
    bundles = []
    for text in texts:
        project.write_text(text)
        assert build(project, out).code == 0
        bundles.append(read_tree(out))
    runtime = add_runtime_files(out / "slurm/hpc")
    theirs = {f"slurm/hpc/{rel}" for rel in runtime}
    env = {"JOBPACK_TEST_EXCHANGE": "off"}
    project.write_text(texts[0])
    counted = jobpack("build", "-p", project, "-o", out, env={**env,
                                                              "JOBPACK_TEST_STOP": "count"})
    steps = int(counted.stderr.split("publish=")[1].split()[0])
    target, outcomes = 1, set()
    for n in range(1, steps + 1):
        project.write_text(texts[target])
        killed = start_build(project, out, JOBPACK_TEST_STOP=f"publish:{n}", **env)
        wait_stopped(killed)
        killed.kill()
        killed.wait()
        if out.exists():
            assert manifest_ok(out)
            outcomes.add(bundles.index(without(read_tree(out), theirs)) == target)
        else:
            outcomes.add(None)
            again = start_build(project, out, JOBPACK_TEST_STOP="recover:1")
            wait_stopped(again)  # out/ is missing: the recovery has work to do
            again.kill()
            again.wait()
        assert build(project, out).code == 0
        assert {rel: (out / "slurm/hpc" / rel).read_bytes() for rel in runtime} == runtime
        assert without(read_tree(out), theirs) == bundles[target]
        assert set(os.listdir(tmp_path / ".jobpack" / "out")) == STATE_FILES
        target = 1 - target
    assert outcomes == {False, None, True}  # old bundle, no out/ for a moment, new bundle
