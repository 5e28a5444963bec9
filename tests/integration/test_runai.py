"""The Run:ai workflow of tests/projects/runai against the runai test double, with its data
moved by lftp to a real FTP server (pyftpdlib) on loopback."""

from __future__ import annotations

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
from runai_double import RunaiDouble  # noqa: E402

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

    values = [v for v in ATTACKS if v]  # each point a value; names are digests of them
    points = ", ".join("{v: " + json.dumps(v) + "}" for v in values)
    env_value = "it's \"a\" $(touch PWNED) `x`\n\tnext line\\"
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
