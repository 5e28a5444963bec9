"""Generated bundles run with hostile sweep values: nothing executes, every value arrives.

A project sweeps over hostile values (a sequences file, so that only the table changes from
one build to the next) with a command that places the value in every context where bash
expands (``hostile.SHAPES``) and in the job's environment. Each point's batch script runs
under a fake scheduler (bash with the array task's variables), and what the command printed
is compared with what each context must deliver. The same values go to NGC through the ngc
double, and into sync endpoints run for real; a sample goes to the loopback Slurm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, build
from hostile import SHAPES, hostile_values, tally
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

POINTS = 400
ROUNDS = 25  # 10,000 values through the Slurm bundle per run

COMMAND = "\n".join(shape.code.replace("{{ v }}", "{{ sequence }}") for shape in SHAPES)
PROJECT = {
    "project": "shapes",
    "clusters": {"c": {"kind": "slurm"}},
    "jobs": {"shapes": {"cluster": "c", "sweep": {"sequences": "values.json"},
                        "env": {"HOSTILE": "{{ sequence }}"},
                        "command": COMMAND + "\nprintf '%s\\0' \"$HOSTILE\""}},
}


def expected(value: str) -> list[str]:
    return [field for shape in SHAPES for field in shape.expected(value)] + [value]


def _fields(out: bytes) -> list[str]:
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    (folder / "project.yaml").write_text(json.dumps(PROJECT, indent=1))
    return folder


def _build(folder: Path, values: list[str]) -> Path:
    (folder / "values.json").write_text(json.dumps({v: i for i, v in enumerate(values)}))
    result = build(folder / "project.yaml", folder / "out")
    assert result.code == 0, result.stderr
    return folder / "out" / "slurm" / "c"


def _run_point(script: Path, index: int, sandbox: Path) -> tuple[int, bytes, str]:
    """One array task under a fake scheduler: bash with Slurm's variables for the task."""
    env = {"PATH": os.environ["PATH"], "HOME": str(sandbox), "RUN_ID": "r1",
           "SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_JOB_ID": "77", "SLURM_JOB_ID": "78",
           "SLURM_SUBMIT_DIR": str(script.parent)}
    proc = subprocess.run(["bash", str(script)], env=env, cwd=sandbox, capture_output=True,
                          timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


@settings(max_examples=ROUNDS, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True, phases=[Phase.explicit, Phase.generate])
@given(st.lists(hostile_values(), min_size=POINTS, max_size=POINTS, unique=True))
def test_every_value_arrives_exactly_through_the_slurm_bundle(shapes: Path,
                                                              values: list[str]) -> None:
    folder = _build(shapes, values)
    sandbox = shapes / "sandbox"
    shutil.rmtree(sandbox, ignore_errors=True)
    sandbox.mkdir()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda i: _run_point(folder / "shapes.sbatch", i, sandbox),
                                range(len(values))))
    for value, (code, out, err) in zip(values, results, strict=True):
        assert code == 0, (value, err)
        assert _fields(out) == expected(value), value
    assert not list(shapes.rglob("PWNED"))
    tally("Slurm bundle: array tasks run", len(values))


@pytest.mark.slurm
def test_hostile_values_arrive_on_a_real_slurm(slurm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    values = ["a b", "$(touch PWNED)", "`touch PWNED`", "a[$(touch PWNED)]", "x\nEOF\ny",
              "it's \"q\"", "ünï ✓", "", "-n", "\\", "*", "~", "#x", "}{", "'; touch PWNED; '"]
    (tmp_path / "project.yaml").write_text(json.dumps(PROJECT, indent=1))
    folder = _build(tmp_path, values)
    env = {**slurm.env, "RUN_ID": "hostile1"}
    subprocess.run(["bash", str(folder / "submit_all.sh")], env=env, check=True,
                   capture_output=True, timeout=120)
    deadline = time.monotonic() + 180
    while slurm.squeue("-h", "-o", "%i") and time.monotonic() < deadline:
        time.sleep(0.5)  # polls the queue; the assertions below say what went wrong
    outs = sorted((folder / "logs").glob("*.out"), key=lambda p: int(p.stem.rsplit("_")[-1]))
    assert len(outs) == len(values)
    for value, out in zip(values, outs, strict=True):
        assert _fields(out.read_bytes()) == expected(value), value
    assert not list(tmp_path.rglob("PWNED"))
    tally("loopback Slurm: array tasks run", len(values))


sys.path.insert(0, str(ROOT / "tests" / "doubles"))
NGC_POINTS = 150
NGC_PROJECT = """
project: shapes
clusters:
  ngc: {kind: ngc, team: ab, ace: nv-us-west-2, instance: dgx1v.16g.1.norm}
jobs:
  shapes:
    cluster: ngc
    image: nvcr.io/nvidia/pytorch:24.01-py3
    sweep: {sequences: values.json}
    env: {HOSTILE: "{{ sequence }}"}
    command: |
"""


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True, phases=[Phase.explicit, Phase.generate])
@given(st.lists(hostile_values().filter(lambda v: "\n" not in v and len(v) <= 2048),
                min_size=NGC_POINTS, max_size=NGC_POINTS, unique=True))
def test_every_value_arrives_exactly_through_ngc(tmp_path_factory: pytest.TempPathFactory,
                                                 values: list[str]) -> None:
    """Launched with the ngc double (ngcsdk's parser); each job's command then runs as NGC
    runs it: by bash, with the job's --env-var variables."""
    ngc_double = pytest.importorskip("ngc_double", reason="needs ngcsdk")
    folder = tmp_path_factory.mktemp("ngc")
    body = "".join(f"      {line}\n" for line in COMMAND.splitlines())
    (folder / "project.yaml").write_text(NGC_PROJECT + body)
    (folder / "values.json").write_text(json.dumps({v: i for i, v in enumerate(values)}))
    result = build(folder / "project.yaml", folder / "out")
    assert result.code == 0, result.stderr
    double = ngc_double.NgcDouble(folder / "ngc.sock")
    server = double.serve()
    try:
        subprocess.run(["bash", str(folder / "out/ngc/ngc/launch_all.sh")], check=True,
                       env={**os.environ, **double.env}, capture_output=True, timeout=600)
    finally:
        server.shutdown()
        server.server_close()
    jobs = list(double.jobs.values())
    assert len(jobs) == len(values)
    assert len({job.body["command"] for job in jobs}) == 1, "values are not part of the code"
    by_value = {}
    for job in jobs:
        envs = {e["name"]: e["value"] for e in job.body["envs"]}
        proc = subprocess.run(["bash", "-c", job.body["command"]], cwd=folder,
                              env={"PATH": os.environ["PATH"], **envs}, capture_output=True,
                              timeout=60, check=True)
        by_value[envs["HOSTILE"]] = _fields(proc.stdout)
    for value in values:
        assert by_value[value] == expected(value)[:-1], value
    assert not list(folder.rglob("PWNED"))
    tally("NGC double: jobs launched and run", len(values))


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile_values().filter(lambda v: v.strip() and not any(
    c in v for c in "\x00\n\r/") and len(v) < 200 and v not in (".", "..")))
def test_hostile_folder_names_sync_exactly(tmp_path_factory: pytest.TempPathFactory,
                                           name: str) -> None:
    """A sync between local folders with a hostile name: files arrive, nothing runs."""
    folder = tmp_path_factory.mktemp("sync")
    source = folder / "in" / name
    source.mkdir(parents=True)
    (source / f"{name}.txt").write_text(name)
    project = {"project": "sy", "syncs": {"s": {"from": f"./in/{name}",
                                                "to": f"./to/{name}"}}}
    (folder / "project.yaml").write_text(json.dumps(project))
    result = build(folder / "project.yaml", folder / "out")
    if result.code == 2:  # refused with a message: a name the schema does not take
        assert "Traceback" not in result.stderr and ":" in result.stderr
        return
    assert result.code == 0, result.stderr
    for args in (["-h"], ["--dry-run"], [], ["status"]):
        subprocess.run(["bash", str(folder / "out/sync/s.sh"), *args], cwd=folder,
                       check=True, capture_output=True, timeout=60)
    assert (folder / "to" / name / f"{name}.txt").read_text() == name
    assert not list(folder.rglob("PWNED"))
    tally("sync: local transfers", 1)
