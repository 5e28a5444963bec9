"""The Run:ai workflow of tests/projects/runai against the runai test double, with its data
moved by lftp to a real FTP server (pyftpdlib) on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECTS, ROOT, build

sys.path.insert(0, str(ROOT / "tests" / "doubles"))
from runai_double import RunaiDouble, run  # noqa: E402

FTP_USER, FTP_PASS = "j3 soon", "pa ss'\"w,rd"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ftp(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An FTP server whose root holds the user's folder on the storage node."""
    if shutil.which("lftp") is None:
        reason = "lftp is not installed; tests/install-deps.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path / "ftproot"
    (root / "j3soon").mkdir(parents=True)
    port = _port()
    base = 30000 + port % 1000 * 20
    server = subprocess.Popen([sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p",
                               str(port), "-w", "-d", str(root), "-u", FTP_USER, "-P",
                               FTP_PASS, "-r", f"{base}-{base + 19}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield root / "j3soon", port
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def work(tmp_path: Path, ftp) -> tuple[Path, Path, dict[str, str], RunaiDouble]:  # type: ignore[no-untyped-def]
    """The seed's project built, its code and data beside it; the double's environment."""
    served, port = ftp
    work = tmp_path / "work"
    work.mkdir()
    text = (PROJECTS / "runai" / "project.yaml").read_text()
    text = text.replace("path: /mnt/nfs/j3soon}", f"path: /j3soon, port: {port}}}")
    (work / "project.yaml").write_text(text)
    assert build(work / "project.yaml", work / "out").code == 0
    (work / "mnist").mkdir()
    (work / "mnist" / "main.py").write_text("print('train')\n")
    (work / "data" / "MNIST" / "raw").mkdir(parents=True)
    (work / "data" / "MNIST" / "raw" / "train-images.gz").write_bytes(b"\x1f\x8b" * 500)
    double = RunaiDouble(tmp_path / "runai")
    env = {**os.environ, **double.env, "FTP_USER": FTP_USER, "FTP_PASS": FTP_PASS,
           "STORAGE_NODE_IP": "127.0.0.1", "WANDB_API_KEY": "wandb-secret-1234"}
    return work, served, env, double


def sh(work: Path, script: str, *args: str, env: dict[str, str], code: int = 0,
       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", f"out/{script}", *args], cwd=work, env=env, text=True,
                          capture_output=True, timeout=300, check=False, input=stdin)
    assert proc.returncode == code, f"{script} {args}: {proc.returncode}\n{proc.stderr[-3000:]}"
    for secret in (FTP_PASS, "wandb-secret-1234"):
        assert secret not in proc.stdout + proc.stderr, "a secret was shown"
    return proc


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".jobpack-")}


def flags(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag and "--" not in argv[:i]]


TRAIN = [f"j3soon-mnist-train-{lr}-{seed}" for lr in ("1p0", "0p5", "0p1") for seed in (1, 2)]


def test_seed_workflow(work: tuple[Path, Path, dict[str, str], RunaiDouble]) -> None:
    folder, served, env, double = work
    env = {**env, "RUN_ID": "v1"}
    runai = "runai/lab/"

    # Code and data go into folders of the run on the storage node.
    sh(folder, "sync/upload_code.sh", env=env)
    sh(folder, "sync/upload_data.sh", env=env)
    assert tree(served / "code" / "v1") == tree(folder / "mnist")
    assert tree(served / "data" / "v1") == tree(folder / "data")

    sh(folder, runai + "submit_all.sh", env=env)
    submits = double.submits()
    assert [c[:3] for c in submits] == [["workspace", "submit", "j3soon-mnist-notebook"],
                                        *(["training", "submit", n] for n in TRAIN)]
    notebook = submits[0]
    assert flags(notebook, "--external-url") == ["container=8888"]
    assert "--preemptible" in notebook and flags(notebook, "--gpu-portion-request") == ["0.5"]
    assert "CODE=/mnt/nfs/j3soon/code/v1" in flags(notebook, "-e")
    assert "WANDB_API_KEY=wandb-secret-1234" in flags(notebook, "-e")
    assert notebook[notebook.index("--"):][:3] == ["--", "bash", "-c"]
    assert notebook[-1].endswith("--NotebookApp.base_url=/${RUNAI_PROJECT}/${RUNAI_JOB_NAME}"
                                 " --NotebookApp.token=")
    train = submits[1]
    assert flags(train, "--nfs") == ["path=/mnt/nfs,server=10.0.0.5,mountpath=/mnt/nfs,readwrite"]
    assert flags(train, "--gpu-memory-request") == ["20G"] and "RUN_ID=v1" in flags(train, "-e")
    assert "NOTE=lr 1.0: it's \"fine\" $(not run)" in flags(train, "-e")
    assert train[-1].startswith('python code/"${RUN_ID}"/main.py --lr "${jp_p_lr}"')
    assert flags(train, "--label") == ["jobpack-project=mnist", "jobpack-run=v1"]
    assert {w["labels"]["jobpack-run"] for w in double.workloads()} == {"v1"}

    sh(folder, runai + "submit_all.sh", env=env)
    assert len(double.submits()) == 7, "a second submit_all.sh submits nothing"

    failing = [TRAIN[1], TRAIN[4]]
    double.fail(*failing)
    sh(folder, runai + "ctl.sh", "monitor", "--interval", "0", env=env)
    assert [c[2] for c in double.submits()[7:]] == failing, "exactly the failed ones again"
    deletes = [c for c in double.calls() if c[:2] == ["workload", "delete"]]
    assert [c[2] for c in deletes] == failing
    status = sh(folder, runai + "ctl.sh", "status", env=env).stdout
    assert status.splitlines()[-1] == "total: Running 1 Succeeded 6"

    logs = sh(folder, runai + "ctl.sh", "logs", "0p5-1", "--tail", "3", env=env).stdout
    assert logs.splitlines() == [f"{TRAIN[2]}: log line {i}" for i in (8, 9, 10)]
    ambiguous = sh(folder, runai + "ctl.sh", "logs", "1", env=env, code=1).stderr
    assert "matches 3 workloads" in ambiguous
    assert all(f"  {n}\n" in ambiguous for n in TRAIN[::2])
    # describe shows the workload's environment: the secrets in it are scrubbed (sh checks)
    described = sh(folder, runai + "ctl.sh", "describe", "notebook", env=env).stdout
    assert "WANDB_API_KEY=${WANDB_API_KEY}" in described
    sh(folder, runai + "ctl.sh", "delete", "notebook", env=env)
    assert "j3soon-mnist-notebook" not in {w["name"] for w in double.workloads()}

    # Results written on the storage node come back into a folder of the run.
    (served / "results" / "v1" / "train").mkdir(parents=True)
    (served / "results" / "v1" / "train" / "mnist_cnn.pt").write_bytes(b"\0weights" * 100)
    sh(folder, "sync/download_results.sh", env=env)
    assert tree(folder / "results" / "v1") == tree(served / "results" / "v1")

    refused = sh(folder, runai + "delete_all.sh", env=env, code=1, stdin="")
    assert "--yes" in refused.stderr and len(double.workloads()) == 6
    sh(folder, runai + "delete_all.sh", "--yes", env=env)
    assert double.workloads() == []
    sh(folder, runai + "submit_all.sh", env=env)
    assert len(double.submits()) == 9, "deleted workloads are not submitted again"


def test_a_new_version_leaves_the_old_one_alone(
        work: tuple[Path, Path, dict[str, str], RunaiDouble]) -> None:
    folder, served, env, double = work
    sh(folder, "sync/upload_code.sh", env={**env, "RUN_ID": "v1"})
    (folder / "mnist" / "main.py").write_text("print('v2')\n")
    sh(folder, "sync/upload_code.sh", env={**env, "RUN_ID": "v2"})
    assert (served / "code" / "v1" / "main.py").read_text() == "print('train')\n"
    assert (served / "code" / "v2" / "main.py").read_text() == "print('v2')\n"
    sh(folder, "runai/lab/submit_all.sh", "--job", "train", env={**env, "RUN_ID": "v1"})
    # A new run's names are those of the old run's workloads: it waits for their deletion.
    taken = sh(folder, "runai/lab/submit_all.sh", "--new", "--job", "train",
               env={**env, "RUN_ID": "v2"}, code=1).stderr
    assert "6 name(s) taken" in taken and len(double.submits()) == 6
    sh(folder, "runai/lab/delete_all.sh", "--yes", "--run", "v1", env=env)
    sh(folder, "runai/lab/submit_all.sh", "--job", "train", env={**env, "RUN_ID": "v2"})
    assert {f for c in double.submits()[6:] for f in flags(c, "-e")} >= {"RUN_ID=v2"}

    # The old run's names are the new run's: its scripts never delete the new workloads.
    deletes = len([c for c in double.calls() if c[:2] == ["workload", "delete"]])
    old = sh(folder, "runai/lab/delete_all.sh", "--yes", "--run", "v1", env=env).stderr
    assert "not a workload of run v1 (its run: v2)" in old
    refused = sh(folder, "runai/lab/ctl.sh", "--run", "v1", "delete", "0p5-1", env=env, code=1)
    assert "its run: v2" in refused.stderr
    assert len([c for c in double.calls() if c[:2] == ["workload", "delete"]]) == deletes
    assert len(double.workloads()) == 6


def test_an_old_runs_status_ignores_the_new_runs_workloads(
        work: tuple[Path, Path, dict[str, str], RunaiDouble]) -> None:
    folder, _served, env, double = work
    sh(folder, "runai/lab/submit_all.sh", "--job", "train", env={**env, "RUN_ID": "v1"})
    names = [w["name"] for w in double.workloads()]
    assert run(double.state.folder, ["workload", "delete", *names, "-p", "lab-project",
                                      "--type", "training"])[0] == 0  # outside the scripts
    sh(folder, "runai/lab/submit_all.sh", "--new", "--job", "train",
       env={**env, "RUN_ID": "v2"})
    old = sh(folder, "runai/lab/ctl.sh", "--run", "v1", "status", env=env).stdout
    assert state_of(old, TRAIN[0]) == "MISSING (the name is run v2's)"
    new = sh(folder, "runai/lab/ctl.sh", "status", env=env).stdout
    assert state_of(new, TRAIN[0]) in ("Pending", "Running", "Succeeded")


def ledger(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "out" / "runai" / "lab" / "ledger.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


def state_of(status: str, name: str) -> str:
    line = next(li for li in status.splitlines() if li.startswith(name + " "))
    return line.split(maxsplit=4)[4]


def test_a_refused_submission_fails_alone(
        work: tuple[Path, Path, dict[str, str], RunaiDouble]) -> None:
    folder, _served, env, double = work
    env = {**env, "RUN_ID": "v1"}
    ctl = "runai/lab/ctl.sh"
    double.refuse(TRAIN[0])
    first = sh(folder, "runai/lab/submit_all.sh", env=env, code=1).stderr
    assert "6 submitted, 0 already in the ledger, 1 failed" in first
    assert len(double.workloads()) == 6, "every other point is submitted"
    assert state_of(sh(folder, ctl, "status", env=env).stdout, TRAIN[0]) == "SUBMIT_FAILED"
    # Refused again: recorded with the tag of its own submission, never left unconfirmed.
    sh(folder, "runai/lab/submit_all.sh", env=env, code=1)
    assert state_of(sh(folder, ctl, "status", env=env).stdout, TRAIN[0]) == "SUBMIT_FAILED"
    rows = [r for r in ledger(folder) if r["name"] == TRAIN[0]]
    assert [r["event"] for r in rows] == ["submitting", "failed"] * 2
    assert rows[0]["tag"] == rows[1]["tag"] != rows[2]["tag"] == rows[3]["tag"]
    double.allow(TRAIN[0])
    sh(folder, "runai/lab/submit_all.sh", env=env)
    assert len(double.workloads()) == 7
    assert state_of(sh(folder, ctl, "status", env=env).stdout, TRAIN[0]) in (
        "Pending", "Running", "Succeeded")


def _wrapper(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


def test_monitor_killed_after_deleting_still_resubmits(
        work: tuple[Path, Path, dict[str, str], RunaiDouble], tmp_path: Path) -> None:
    folder, _served, env, double = work
    arm = tmp_path / "arm"
    killer = _wrapper(tmp_path, "killer", f"""runai "$@"; rc=$?
if [[ "$1 $2" == "workload delete" && -e {arm} ]]; then rm -f {arm}; kill -9 $PPID; fi
exit $rc
""")
    env = {**env, "RUN_ID": "v1", "RUNAI_CLI": str(killer)}
    sh(folder, "runai/lab/submit_all.sh", env=env)
    double.fail(TRAIN[3])
    arm.touch()
    sh(folder, "runai/lab/ctl.sh", "monitor", "--once", env=env, code=-9)
    assert not arm.exists() and TRAIN[3] not in {w["name"] for w in double.workloads()}
    sh(folder, "runai/lab/ctl.sh", "monitor", "--interval", "0", env=env)
    assert [c[2] for c in double.submits()[7:]] == [TRAIN[3]], "resubmitted once"
    assert flags(double.submits()[-1], "--label")[-1] == "jobpack-run=v1"


def test_runai_notices_and_traces_are_not_read_as_output(
        work: tuple[Path, Path, dict[str, str], RunaiDouble], tmp_path: Path) -> None:
    folder, _served, env, double = work
    warn = _wrapper(tmp_path, "warn", 'echo "A newer version of the CLI is available" >&2\n'
                    'exec runai "$@"\n')
    env = {**env, "RUN_ID": "v1", "RUNAI_CLI": str(warn)}
    sh(folder, "runai/lab/submit_all.sh", env=env)
    sh(folder, "runai/lab/submit_all.sh", env=env)
    assert len(double.submits()) == 7
    proc = subprocess.run(["bash", "-x", "out/runai/lab/ctl.sh", "status"], cwd=folder,
                          env=env, text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1].startswith("total:")
    assert "MISSING" not in proc.stdout and "NOT_SUBMITTED" not in proc.stdout
    proc = subprocess.run(["bash", "-x", "out/runai/lab/ctl.sh", "describe", "notebook"],
                          cwd=folder, env=env, text=True, capture_output=True, timeout=300,
                          check=False)
    assert proc.returncode == 0 and "WANDB_API_KEY=${WANDB_API_KEY}" in proc.stdout
    assert "wandb-secret-1234" not in proc.stdout + proc.stderr
    # Traced, deleting reads each workload's description, which holds its environment.
    proc = subprocess.run(["bash", "-x", "out/runai/lab/delete_all.sh", "--yes"], cwd=folder,
                          env=env, text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert double.workloads() == [] and "wandb-secret-1234" not in proc.stderr


def test_scripts_run_without_python(
        work: tuple[Path, Path, dict[str, str], RunaiDouble], tmp_path: Path) -> None:
    folder, _served, env, double = work
    used = tmp_path / "python-used"
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("python3", "python"):
        _wrapper(shims, name, f"touch {used}\nexit 127\n")
    cli = _wrapper(tmp_path, "runai-cli", f'exec {sys.executable} '
                   f'{ROOT / "tests" / "doubles" / "runai_double.py"} "$@"\n')
    env = {**env, "RUN_ID": "v1", "RUNAI_CLI": str(cli),
           "PATH": f"{shims}{os.pathsep}{env['PATH']}"}
    sh(folder, "runai/lab/submit_all.sh", env=env)
    double.fail(TRAIN[0])
    sh(folder, "runai/lab/ctl.sh", "monitor", "--interval", "0", env=env)
    sh(folder, "runai/lab/ctl.sh", "status", env=env)
    sh(folder, "runai/lab/delete_all.sh", "--yes", env=env)
    assert double.workloads() == [] and len(double.submits()) == 8
    assert not used.exists(), "a script ran python"


HOSTILE_PROJECT = """
project: h
user: u
secrets: [TOKEN]
clusters:
  c: {kind: runai, project: p}
jobs:
  t:
    cluster: c
    image: docker.io/x/y:1
    env: {E: %s, T: "${TOKEN}"}
    sweep: {list: [%s]}
    command: printf '%%s' "{{ v }}"
"""


def test_hostile_values_arrive_byte_exact(tmp_path: Path) -> None:
    import json

    from hostile import ATTACKS

    # each point a value (one with ',', which no repeated flag may split); names hash them
    values = [v for v in ATTACKS if v] + ["a,b=c,d"]
    points = ", ".join("{v: " + json.dumps(v) + "}" for v in values)
    env_value = "it's \"a\" $(touch PWNED) `x`\n\tnext line, X=y\\"
    (tmp_path / "project.yaml").write_text(HOSTILE_PROJECT % (json.dumps(env_value), points))
    result = build(tmp_path / "project.yaml", tmp_path / "out")
    assert result.code == 0, result.stderr
    double = RunaiDouble(tmp_path / "runai")
    token = "tok'en $(x)\nline"
    env: dict[str, Any] = {**os.environ, **double.env, "TOKEN": token}
    proc = subprocess.run(["bash", "out/runai/c/submit_all.sh"], cwd=tmp_path, env=env,
                          text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    submits = double.submits()
    assert len(submits) == len(values)
    got = [flags(c, "-e") for c in submits]
    assert [next(e for e in g if e.startswith("jp_p_v=")) for g in got] == \
        [f"jp_p_v={v}" for v in values]
    assert all(f"E={env_value}" in g and f"T={token}" in g for g in got)
    assert not list(tmp_path.rglob("PWNED"))


HELPER_PROJECT = """
project: zoo
user: u
images:
  zoo:
    dockerfile: {from: "docker.io/library/busybox:1.36", run_helper: true}
    tags: [localhost:5000/u/zoo:1, docker.io/u/zoo:1]
clusters:
  c: {kind: runai, project: p}
jobs:
  t:
    cluster: c
    image: zoo
    sweep: {list: [{v: "a b"}]}
    command: printf '%s' "{{ v }}" > "$OUT_FILE"
"""


def test_an_image_with_the_run_helper_runs_the_command_through_it(tmp_path: Path) -> None:
    (tmp_path / "project.yaml").write_text(HELPER_PROJECT)
    assert build(tmp_path / "project.yaml", tmp_path / "out").code == 0
    double = RunaiDouble(tmp_path / "runai")
    env = {**os.environ, **double.env}
    proc = subprocess.run(["bash", "out/runai/c/submit_all.sh"], cwd=tmp_path, env=env,
                          text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    (argv,) = double.submits()
    assert flags(argv, "-i") == ["localhost:5000/u/zoo:1"]
    helper, *codes = argv[argv.index("--") + 1:]
    assert helper == "/run.sh" and len(codes) == 1
    # What the workload would run: the image's /run.sh (the bundle's) with that argument, in
    # the environment runai was given.
    out = tmp_path / "result"
    workload_env = {**os.environ, "OUT_FILE": str(out),
                    **dict(e.split("=", 1) for e in flags(argv, "-e"))}
    subprocess.run(["bash", "out/images/zoo/run.sh", *codes], cwd=tmp_path, env=workload_env,
                   check=True, capture_output=True, timeout=60)
    assert out.read_text() == "a b"


JUPYTER_PROJECT = """
project: nb
user: u
secrets: [%s]
clusters:
  c: {kind: runai, project: p}
jobs:
  notebook:
    cluster: c
    workload: workspace
    image: docker.io/x/y:1
    jupyter: true
    command: jupyter lab --ip=0.0.0.0
"""


@pytest.mark.parametrize("secret", ["JUPYTER_TOKEN", "OTHER"])
def test_jupyter_asks_for_the_token_of_its_secret(tmp_path: Path, secret: str) -> None:
    (tmp_path / "project.yaml").write_text(JUPYTER_PROJECT % secret)
    assert build(tmp_path / "project.yaml", tmp_path / "out").code == 0
    double = RunaiDouble(tmp_path / "runai")
    env = {**os.environ, **double.env, secret: "t0ken-value"}
    usage = subprocess.run(["bash", "out/runai/c/submit_all.sh", "-h"], cwd=tmp_path,
                           env=env, text=True, capture_output=True, check=True).stdout
    proc = subprocess.run(["bash", "out/runai/c/submit_all.sh"], cwd=tmp_path, env=env,
                          text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    (argv,) = double.submits()
    if secret == "JUPYTER_TOKEN":
        assert "token: secret JUPYTER_TOKEN" in usage
        assert "JUPYTER_TOKEN=t0ken-value" in flags(argv, "-e")
        assert argv[-1].endswith(' --NotebookApp.token="${JUPYTER_TOKEN}"')
    else:  # said where it cannot be missed
        assert "NO TOKEN" in usage and argv[-1].endswith(" --NotebookApp.token=")


def test_status_formats_agree_with_the_table(
        work: tuple[Path, Path, dict[str, str], RunaiDouble]) -> None:
    folder, _served, env, double = work
    ctl = "runai/lab/ctl.sh"
    sh(folder, "runai/lab/submit_all.sh", "--job", "train", env={**env, "RUN_ID": "v1"})
    for _ in range(3):  # the double plays Pending, Running, Succeeded: all final then
        sh(folder, ctl, "status", env=env)
    table = sh(folder, ctl, "status", env=env)
    lines = table.stdout.splitlines()
    assert lines[0] == "run v1 (Run:ai project lab-project)" and lines[-1].startswith("total:")
    rows = [line.split(maxsplit=4) for line in lines[2:-1]]
    assert [r[0] for r in rows if r[0] in TRAIN] == TRAIN
    assert {r[4] for r in rows if r[0] in TRAIN} == {"Succeeded"}
    as_json = sh(folder, ctl, "status", "--format", "json", env=env)
    workloads = json.loads(as_json.stdout)
    assert [list(w.values()) for w in workloads] == rows
    assert list(workloads[0]) == ["workload", "job", "point", "attempt", "state"]
    assert as_json.stderr.startswith("run v1 (Run:ai project lab-project)\ntotal:")
    tsv = sh(folder, ctl, "status", "--format", "tsv", env=env).stdout.splitlines()
    assert tsv[0] == "workload\tjob\tpoint\tattempt\tstate"
    assert [line.split("\t") for line in tsv[1:]] == rows
    bad = sh(folder, ctl, "--format", "x", "status", env=env, code=2)
    assert bad.stdout == "" and "--format takes table, tsv or json" in bad.stderr
