"""Generated NGC bundles against the ngc test double (ngcsdk's own parser behind it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, build

sys.path.insert(0, str(ROOT / "tests" / "doubles"))
ngc_double = pytest.importorskip("ngc_double", reason="needs ngcsdk (tests/install-deps.sh)")

SIZE = 700
PROJECT = """
project: zoo
user: kv
images:
  zoo:
    source: kylevedder/zeroflow_bucketed:latest
    tags: [nvcr.io/nvidian/scene-flow-zoo:latest]
clusters:
  ngc:
    kind: ngc
    team: swaiinf
    ace: nv-us-west-2
    instance: dgx1v.16g.1.norm
    escalate: [dgx1v.32g.1.norm]
    workspaces:
      zhiding_intern_kyle: /workspace
      zhiding_intern_kyle_argoverse2: /workspace_argoverse2:RO
    configs: /workspace/launch/configs
    priority: NORMAL
    total_runtime: 8h
jobs:
  train:
    cluster: ngc
    image: zoo
    labels: [ml__gigachad]
    sweep: {sequences: train_sequence_lengths.json}
    env: {SEQ: "{{ sequence }}"}
    config:
      base: /workspace/code/configs/gigachad/train.py
      set:
        test_dataset.args.log_subset: "{{ sequence }}"
        test_dataset.args.length: "{{ length }}"
    command: python train.py {{ config_path }} --run "$RUN_ID"
  login:
    cluster: ngc
    image: zoo
    interactive: true
    ports: [6006]
    command: /workspace/entrypoint.sh
"""


def sequences(count: int) -> dict[str, int]:
    return {f"{i:08x}-{i * 7919 % 65536:04x}-seq": 150 + i % 10 for i in range(count)}


@pytest.fixture
def double(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = ngc_double.NgcDouble(tmp_path / "ngc.sock")
    server = d.serve()
    yield d
    server.shutdown()
    server.server_close()


def make_bundle(folder: Path, size: int) -> Path:
    (folder / "train_sequence_lengths.json").write_text(json.dumps(sequences(size)))
    (folder / "project.yaml").write_text(PROJECT)
    result = build(folder / "project.yaml", folder / "out")
    assert result.code == 0, result.stderr
    return folder / "out" / "ngc" / "ngc"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path, SIZE)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return make_bundle(tmp_path, 20)


def sh(folder: Path, script: str, *args: str, env: dict[str, str], code: int = 0,
       timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(folder / script), *args], cwd=folder, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=timeout,
                          check=False)
    assert proc.returncode == code, f"{script} {args}: {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def runs(double) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The launches the double accepted: name and instance of each."""
    return [{"name": j.name, "instance": j.instance} for j in double.jobs.values()]


def ledger(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "ledger.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


def test_sweep_launches_once_and_monitor_relaunches_failures_up_the_ladder(
        double, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    failing = {f"zoo-train-{s}" for i, s in enumerate(sequences(SIZE)) if i % 7 == 3}

    def script(name: str, instance: str) -> list[str]:
        if name in failing and instance == "dgx1v.16g.1.norm":
            return ["QUEUED", "RUNNING", "FAILED"]
        return ["QUEUED", "STARTING", "RUNNING", "RUNNING", "FINISHED_SUCCESS"]

    double.script = script
    sh(bundle, "launch_all.sh", env=double.env)
    assert len(double.calls) == SIZE and all(c[:2] == ["batch", "run"] for c in double.calls)
    assert len({j["name"] for j in runs(double)}) == SIZE, "one job, one unique name per point"
    first = sequences(1).popitem()[0]  # launches run side by side: found by name
    body = next(j.body for j in double.jobs.values() if j.name == f"zoo-train-{first}")
    assert body["dockerImageName"] == "nvidian/scene-flow-zoo:latest"
    assert {"name": "SEQ", "value": first} in body["envs"]
    assert body["runPolicy"]["totalRuntimeSeconds"] == 8 * 3600
    assert body["workspaceMounts"][1] == {"containerMountPoint": "/workspace_argoverse2",
                                          "id": "zhiding_intern_kyle_argoverse2",
                                          "mountMode": "RO"}
    launched = [r for r in ledger(bundle) if r["event"] == "launch"]
    assert len(launched) == SIZE and all(r["ngc_id"].isdigit() for r in launched)

    sh(bundle, "launch_all.sh", env=double.env)
    assert len(double.calls) == SIZE, "a second launch_all.sh launches nothing"

    # Some jobs drop out of NGC's 7-day history while they run: the monitor still follows
    # them by id.
    for job in list(double.jobs.values())[::20]:
        job.created -= ngc_double.HISTORY * 1.2
    sh(bundle, "monitor.sh", "--interval", "0", env=double.env, timeout=900)
    relaunched = [j for j in runs(double)][SIZE:]
    assert sorted(j["name"] for j in relaunched) == sorted(failing)
    assert {j["instance"] for j in relaunched} == {"dgx1v.32g.1.norm"}
    status = sh(bundle, "status.sh", "--cached", env=double.env).stdout
    # The interactive job shows too, never launched by launch_all.sh.
    assert status.splitlines()[-1] == f"total: FINISHED_SUCCESS {SIZE} NOT_LAUNCHED 1"
    attempts = [line.split()[3] for line in status.splitlines()[2:-1] if "-train-" in line]
    assert attempts.count("1") == len(failing) and attempts.count("0") == SIZE - len(failing)

    # Weeks later every job has left NGC's history: nothing is launched again.
    double.age(30)
    calls = len(double.calls)
    sh(bundle, "launch_all.sh", env=double.env)
    sh(bundle, "monitor.sh", "--once", env=double.env)
    assert [c for c in double.calls[calls:] if c[1] != "list"] == []
    assert len(double.jobs) == SIZE + len(failing)


def test_unreadable_state_is_never_relaunched(double, small: Path) -> None:  # type: ignore[no-untyped-def]
    double.script = lambda name, instance: ["RUNNING", "FAILED"]
    sh(small, "launch_all.sh", "--job", "train", env={**double.env, "RUN_ID": "r1"})
    ids = list(double.jobs)
    double.age(8)  # out of the list: states come from `batch info` only
    for ident in ids[:5]:
        del double.jobs[ident]  # NGC no longer answers for these
    sh(small, "monitor.sh", "--once", env=double.env, code=3)
    sh(small, "monitor.sh", "--once", env=double.env, code=3)
    relaunched = {j.name for j in double.jobs.values() if j.instance == "dgx1v.32g.1.norm"}
    assert len(relaunched) == 20 - 5
    lost = {r["name"] for r in ledger(small) if r["ngc_id"] in map(str, ids[:5])}
    assert not lost & relaunched


def test_interactive_job_launches_once_and_exec_finds_it(double, small: Path) -> None:  # type: ignore[no-untyped-def]
    double.script = lambda name, instance: ["RUNNING"]
    sh(small, "launch_all.sh", "--job", "login", env=double.env)
    sh(small, "launch_all.sh", "--job", "login", env=double.env)
    assert len(double.jobs) == 1
    job = next(iter(double.jobs.values()))
    assert job.body["portMappings"][0]["containerPort"] == 6006
    assert job.body["command"].endswith("\nsleep 167h")
    out = sh(small, "exec.sh", "--commandline", "nvidia-smi", env=double.env).stdout
    assert out == f"exec in job {job.id}: nvidia-smi\n"
    job.states = ["FINISHED_SUCCESS"]
    sh(small, "launch_all.sh", "--job", "login", env=double.env)
    assert len(double.jobs) == 2, "a new login job once the last one has ended"


def test_ctl_cancel_and_resubmit_by_suffix(double, small: Path) -> None:  # type: ignore[no-untyped-def]
    double.script = lambda name, instance: ["RUNNING"]
    sh(small, "launch_all.sh", env={**double.env, "RUN_ID": "r2"})
    target = list(double.jobs.values())[12]
    suffix = str(target.id)[-4:]
    sh(small, "ctl.sh", "cancel", suffix, env=double.env)
    assert target.status == "KILLED_BY_USER"
    ambiguous = sh(small, "ctl.sh", "cancel", "seq", env=double.env, code=1)
    assert "matches 20 points" in ambiguous.stderr
    sh(small, "ctl.sh", "resubmit", target.name[-12:], env=double.env)
    again = list(double.jobs.values())[-1]
    assert again.name == target.name and again.instance == "dgx1v.32g.1.norm"
    logs = sh(small, "ctl.sh", "logs", str(again.id), env=double.env).stdout
    assert logs == f"log of job {again.id} ({again.name})\n"


def _run_in_job(body: dict[str, Any], code: str, cwd: Path) -> str:
    """What ``code`` prints when run as NGC runs a job's command: by bash, with the job's
    environment variables (--env-var) set."""
    env = {**os.environ, "RUN_ID": "r1", **{e["name"]: e["value"] for e in body["envs"]}}
    env["RUN_ID"] = "r1"
    return subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True,
                          cwd=cwd, env=env).stdout


def test_every_feature_reaches_ngc_exactly(double, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """tests/projects/ngc through the real parser: each value arrives as it was written."""
    shutil.copytree(ROOT / "tests" / "projects" / "ngc", tmp_path / "p")
    assert build(tmp_path / "p" / "project.yaml", tmp_path / "out").code == 0
    folder = tmp_path / "out" / "ngc" / "ngc"
    env = {**double.env, "WANDB_API_KEY": "k3y"}
    sh(folder, "launch_all.sh", env=env)
    sh(folder, "launch_all.sh", "--job", "login", env=env)
    bodies = {j.name: j.body for j in double.jobs.values()}
    assert len(bodies) == 3 + 4 + 1
    login = bodies["zoo-login"]
    assert login["jobPriority"] == "HIGH" and login["runPolicy"]["totalRuntimeSeconds"] == 36 * 3600
    assert [p["containerPort"] for p in login["portMappings"]] == [6006, 8888]
    grid = [b for n, b in bodies.items() if n.startswith("zoo-grid-")]
    assert {b["aceInstance"] for b in grid} == {"dgxa100.40g.1.norm"}
    notes = set()
    for body in grid:  # the command, as the job's shell runs it with the job's environment
        code = body["command"].replace("python grid.py", "printf '%s\\n'", 1)
        words = _run_in_job(body, code, tmp_path).splitlines()
        assert words[:2] == ["--config", f"/workspace/launch/configs/grid/{words[1][31:]}"]
        notes.add(words[3])
    assert notes == {"it's", "a b"}
    hostile = next(b for n, b in bodies.items() if n.startswith("zoo-gigachad_train-p"))
    assert {"name": "SEQUENCE", "value": "$(touch pwned) 'q'"} in hostile["envs"]
    # the value reaches the command as a variable, never as its text
    assert "pwned" not in hostile["command"]
    code = hostile["command"].replace("python train.py", "printf '%s\\n'", 1)
    tag = _run_in_job(hostile, code, tmp_path).splitlines()[-1]
    assert tag == "run r1 of $(touch pwned) 'q'"
    assert {"name": "WANDB_API_KEY", "value": "k3y"} in hostile["envs"]
    assert not list(tmp_path.rglob("pwned"))


def test_bundle_travels_through_rclone_and_launches_from_there(double, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Push the NGC folder to a remote, pull it on 'the ngc machine', launch from the copy."""
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed")
    shutil.copytree(ROOT / "tests" / "projects" / "ngc", tmp_path / "p")
    assert build(tmp_path / "p" / "project.yaml", tmp_path / "p" / "out").code == 0
    (tmp_path / "remote").mkdir()
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[pbss-zhiding-intern-kyle]\ntype = alias\nremote = {tmp_path}/remote\n")
    env = {"RCLONE_CONFIG": str(conf)}
    sync = tmp_path / "p" / "out" / "sync"
    subprocess.run(["bash", str(sync / "launch_files.sh")], cwd=tmp_path / "p", check=True,
                   env={**os.environ, **env}, capture_output=True)
    machine = tmp_path / "machine"
    machine.mkdir()
    subprocess.run(["bash", str(sync / "launch_files_pull.sh")], cwd=machine, check=True,
                   env={**os.environ, **env}, capture_output=True)
    copy = machine / "launch" / "ngc"
    assert (copy / ".jobpack-done").exists()
    sh(copy, "launch_all.sh", env={**double.env, "WANDB_API_KEY": "k"})
    assert len(double.jobs) == 3 + 4
    assert (copy / "ledger.tsv").exists() and not (tmp_path / "p" / "out" / "ngc" / "ngc" /
                                                   "ledger.tsv").exists()


def test_a_refused_launch_is_tried_three_times_then_left(double, small: Path) -> None:  # type: ignore[no-untyped-def]
    double.script = lambda name, instance: ["FINISHED_SUCCESS"]
    refused = f"zoo-train-{list(sequences(20))[3]}"
    double.refuse = {refused}
    sh(small, "launch_all.sh", "--job", "train", env=double.env, code=1)
    sh(small, "monitor.sh", "--interval", "0", env=double.env)
    tries = [c for c in double.calls if c[1] == "run" and refused in c]
    assert len(tries) == 3 and len(double.jobs) == 19
    status = sh(small, "status.sh", env=double.env).stdout
    assert "LAUNCH_FAILED 1" in status.splitlines()[-1]
    double.refuse = set()  # the cause is fixed: resubmit launches it, still on its first rung
    sh(small, "ctl.sh", "resubmit", refused[-10:], env=double.env)
    assert [j.instance for j in double.jobs.values() if j.name == refused] == ["dgx1v.16g.1.norm"]


def test_only_launching_asks_for_secrets_and_exec_runs_under_bash_52(  # type: ignore[no-untyped-def]
        double, tmp_path: Path) -> None:
    """tests/projects/ngc needs WANDB_API_KEY to launch; looking at the run does not."""
    shutil.copytree(ROOT / "tests" / "projects" / "ngc", tmp_path / "p")
    assert build(tmp_path / "p" / "project.yaml", tmp_path / "out").code == 0
    folder = tmp_path / "out" / "ngc" / "ngc"
    double.script = lambda name, instance: ["RUNNING"]
    sh(folder, "launch_all.sh", "--job", "login", env={**double.env, "WANDB_API_KEY": "k"})
    login = next(iter(double.jobs.values()))
    env = {k: v for k, v in double.env.items() if k != "WANDB_API_KEY"}
    bare = {**env, "WANDB_API_KEY": ""}  # unset for the scripts, whatever the caller has
    for args in (["status.sh", "--cached"], ["status.sh"], ["ctl.sh", "status"],
                 ["ctl.sh", "logs", "login"], ["ctl.sh", "--dry-run", "cancel", "login"]):
        proc = sh(folder, *args, env=bare)
        assert "WANDB_API_KEY" not in proc.stderr, args
    dry = sh(folder, "exec.sh", "--dry-run", env=bare)
    assert dry.stdout == f"+ ngc batch exec {login.id}\n"
    assert "syntax error" not in dry.stderr
    out = sh(folder, "exec.sh", "--commandline", "hostname", env=bare).stdout
    assert out == f"exec in job {login.id}: hostname\n"
    wrong = sh(folder, "exec.sh", "grid", env=bare, code=1)
    assert wrong.stderr == "error: grid is not an interactive job of this cluster\n"
    refused = sh(folder, "ctl.sh", "resubmit", "login", env=bare, code=1)
    assert "WANDB_API_KEY is not set" in refused.stderr
    assert len(double.jobs) == 1


def table_rows(table: str) -> list[list[str]]:
    """The rows of a status table: the lines between its header and the totals, in words."""
    lines = table.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("total:"))
    return [line.split() for line in lines[2:end]]


def test_status_formats_agree_with_the_table(double, small: Path) -> None:  # type: ignore[no-untyped-def]
    double.script = lambda name, instance: ["RUNNING"]
    sh(small, "launch_all.sh", "--job", "train", env={**double.env, "RUN_ID": "r3"})
    table = sh(small, "status.sh", env=double.env)
    rows = table_rows(table.stdout)
    assert len(rows) == 21 and table.stderr == ""  # 20 points of train, the login job
    as_json = sh(small, "status.sh", "--format", "json", env=double.env)
    points = json.loads(as_json.stdout)
    assert [" ".join(p.values()).split() for p in points] == rows
    assert list(points[0]) == ["job", "point", "name", "attempt", "instance", "ngc_id", "state"]
    assert as_json.stderr.startswith("run r3\n") and "total: NOT_LAUNCHED 1 RUNNING 20" in \
        as_json.stderr
    tsv = sh(small, "ctl.sh", "status", "--format", "tsv", env=double.env).stdout.splitlines()
    assert tsv[0] == "job\tpoint\tname\tattempt\tinstance\tngc_id\tstate"
    assert [line.split("\t") for line in tsv[1:]] == rows
    for script in (["status.sh"], ["ctl.sh", "status"]):
        bad = sh(small, *script, "--format", "x", env=double.env, code=2)
        assert bad.stdout == "" and "--format takes table, tsv or json" in bad.stderr
