"""Generated Slurm bundles, submitted to a real Slurm on loopback, and what the user sees."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PROJECTS, build

pytestmark = pytest.mark.slurm


def run(script: Path, *args: str, env: dict[str, str], check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(script), *args], env=env, cwd="/", capture_output=True,
                          text=True, check=False, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{script.name} {args}: {proc.stdout}\n{proc.stderr}"
    return proc


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def queue_empty(slurm) -> bool:  # type: ignore[no-untyped-def]
    return slurm.squeue("-h", "-o", "%i") == ""


def ledger(folder: Path) -> list[list[str]]:
    path = folder / "ledger.tsv"
    return [row.split("\t") for row in path.read_text().splitlines()[1:]] if path.exists() else []


def submitted(folder: Path) -> list[list[str]]:
    """The ledger's rows of submissions Slurm accepted (not their intents)."""
    return [r for r in ledger(folder) if r[7] in ("submit", "resubmit")]


def status(folder: Path, env: dict[str, str]) -> dict[tuple[str, str], tuple[str, str]]:
    """ctl.sh status as {(job, point): (state, attempt)}."""
    out = run(folder / "ctl.sh", "status", env=env).stdout.splitlines()
    rows = {}
    for line in out[2:]:
        if line.startswith("total:"):
            break
        job, point, _id, state, *rest = line.split()
        rows[(job, point)] = (state, rest[-1])
    return rows


@pytest.fixture(scope="module")
def bundle(slurm, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("e2e") / "out"
    result = build(PROJECTS / "slurm" / "project.yaml", out)
    assert result.code == 0, result.stderr
    return out / "slurm"


@pytest.fixture(scope="module")
def basic(slurm, bundle: Path) -> Path:  # type: ignore[no-untyped-def]
    """Submit the basic cluster's bundle once and wait until every job has ended."""
    folder = bundle / "basic"
    run(folder / "submit_all.sh", env=slurm.env)
    wait_until(lambda: queue_empty(slurm), 180, "the basic jobs to end")
    return folder


def test_single_job_runs(basic: Path) -> None:
    run_id = ledger(basic)[0][0]
    assert (basic / "results/single.txt").read_text() == f"single {run_id}\n"


def test_sweep_is_one_throttled_array(basic: Path) -> None:
    rows = [r for r in submitted(basic) if r[1] == "sweep"]
    assert len(rows) == 1 and rows[0][3] == "0-19%3", "one array for 20 points, throttle 3"
    events = []
    for line in (basic / "results/sweep.log").read_text().splitlines():
        point, stamp, what = line.split()
        events.append((float(stamp), 1 if what == "start" else -1, int(point)))
    assert sorted(p for _, kind, p in events if kind == 1) == list(range(20))
    running = peak = 0
    for _, kind, _ in sorted(events):
        running += kind
        peak = max(peak, running)
    assert peak <= 3, f"{peak} points ran at once; the throttle is 3"
    assert peak >= 2, "the array never ran points side by side"


def test_chain_runs_in_order_with_one_run_id(basic: Path) -> None:
    texts = [(basic / f"results/chain_{s}.txt").read_text().split() for s in "abc"]
    assert {t[1] for t in texts} == {ledger(basic)[0][0]}, "every step sees the same RUN_ID"
    ids = [int(t[2]) for t in texts]
    assert ids == sorted(ids)
    deps = {r[1]: r for r in ledger(basic)}
    assert deps["step_b"][2] > deps["step_a"][2]


def test_two_node_job_reaches_both_nodes(basic: Path) -> None:
    lines = sorted((basic / "results/nodes.txt").read_text().splitlines())
    assert lines == ["node1 0", "node2 1"]


def test_gpu_job_gets_a_device(basic: Path) -> None:
    assert (basic / "results/gpu.txt").read_text().strip() in ("gpus=0", "gpus=1")


def test_status_shows_every_task_final(basic: Path, slurm) -> None:  # type: ignore[no-untyped-def]
    rows = status(basic, slurm.env)
    assert len(rows) == 4 + 20 + 2  # single, chain of 3, two_nodes, gpu; 20 sweep points
    assert {state for state, _ in rows.values()} == {"COMPLETED"}
    assert rows[("sweep", "19")] == ("COMPLETED", "0")


def test_status_formats_agree_with_the_table(basic: Path, slurm) -> None:  # type: ignore[no-untyped-def]
    table = run(basic / "ctl.sh", "status", env=slurm.env)
    lines = table.stdout.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("total:"))
    rows = [line.split() for line in lines[2:end]]
    as_json = run(basic / "ctl.sh", "status", "--format", "json", env=slurm.env)
    points = json.loads(as_json.stdout)
    assert [list(p.values()) for p in points] == rows and len(rows) == 26
    assert list(points[0]) == ["job", "point", "slurm_id", "state", "attempt"]
    assert as_json.stderr == "\n".join([lines[0], *lines[end:]]) + "\n"
    tsv = run(basic / "ctl.sh", "status", "--format", "tsv", env=slurm.env).stdout.splitlines()
    assert tsv[0] == "job\tpoint\tslurm_id\tstate\tattempt"
    assert [line.split("\t") for line in tsv[1:]] == rows
    bad = run(basic / "ctl.sh", "status", "--format", "x", env=slurm.env, check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "--format takes table, tsv or json" in bad.stderr


def test_second_submit_adds_nothing(basic: Path, slurm) -> None:  # type: ignore[no-untyped-def]
    before = ledger(basic)
    proc = run(basic / "submit_all.sh", env=slurm.env)
    assert ledger(basic) == before
    assert "already in run" in proc.stderr
    assert queue_empty(slurm)


def test_status_falls_back_to_the_jobcomp_file(basic: Path, slurm,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    """Without squeue, sacct and scontrol show job, final states still come from jobcomp."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for tool in ("squeue", "sacct"):
        (shims / tool).write_text("#!/bin/sh\necho 'Invalid job id specified' >&2; exit 1\n")
    real = subprocess.run(["sh", "-c", "command -v scontrol"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (shims / "scontrol").write_text(
        f'#!/bin/sh\nif [ "$2" = show ] && [ "$3" = job ]; then\n'
        f"  echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1\nfi\n"
        f'exec {real} "$@"\n')
    for tool in shims.iterdir():
        tool.chmod(0o755)
    env = {**slurm.env, "PATH": f"{shims}:{slurm.env['PATH']}"}
    rows = status(basic, env)
    assert {state for state, _ in rows.values()} == {"COMPLETED"}


def test_unreadable_state_is_never_resubmitted(basic: Path, slurm,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    shims = tmp_path / "bin"
    shims.mkdir()
    for tool in ("squeue", "sacct", "scontrol"):
        (shims / tool).write_text("#!/bin/sh\necho 'Unable to contact slurm controller' >&2\n"
                                  "exit 1\n")
        (shims / tool).chmod(0o755)
    env = {**slurm.env, "PATH": f"{shims}:{slurm.env['PATH']}"}
    before = ledger(basic)
    proc = run(basic / "ctl.sh", "monitor", "--once", env=env, check=False, timeout=300)
    assert ledger(basic) == before
    assert "could not read Slurm state" in proc.stderr
    assert "UNKNOWN" in proc.stdout


def test_logs_cancel_and_resubmit_by_suffix(basic: Path, slurm) -> None:  # type: ignore[no-untyped-def]
    env = slurm.env
    sweep_id = next(r[5] for r in submitted(basic) if r[1] == "sweep")
    logs = run(basic / "ctl.sh", "logs", f"{sweep_id[-1]}_7", env=env).stdout
    assert f"e2e-sweep_{sweep_id}_7.out <==" in logs
    ambiguous = run(basic / "ctl.sh", "logs", "1", env=env, check=False)
    assert ambiguous.returncode == 1 and "ambiguous; candidates:" in ambiguous.stderr
    assert f"{sweep_id}_1 (sweep point 1)" in ambiguous.stderr
    many = run(basic / "ctl.sh", "logs", "sweep", env=env, check=False)
    assert many.returncode == 1 and "has 20 tasks" in many.stderr

    run(basic / "ctl.sh", "resubmit", "sweep", env=env)
    new = [r for r in ledger(basic) if r[7] == "resubmit"]
    assert len(new) == 1 and new[0][3].startswith("0,1,2,") and new[0][3].endswith("%3")
    run(basic / "ctl.sh", "cancel", "sweep", env=env)
    wait_until(lambda: queue_empty(slurm), 60, "the cancelled sweep to leave the queue")
    rows = status(basic, env)
    assert rows[("sweep", "19")][0] == "CANCELLED"
    before = ledger(basic)
    run(basic / "ctl.sh", "monitor", "--once", env=env, check=False)
    assert [r for r in ledger(basic) if r[7] != "cancel"] == \
        [r for r in before if r[7] != "cancel"], "the monitor resubmitted a cancelled task"


def test_failed_step_cancels_its_dependants(slurm, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    folder = bundle / "failing"
    run(folder / "submit_all.sh", env=slurm.env)
    wait_until(lambda: queue_empty(slurm), 120, "the failing chain to leave the queue")
    rows = status(folder, slurm.env)
    assert rows[("fails", "0")][0] == "FAILED"
    assert rows[("after_fail", "0")][0] == "CANCELLED"
    assert rows[("after_after", "0")][0] == "CANCELLED"
    assert not (folder / "results").exists()
    monitor = run(folder / "ctl.sh", "monitor", "--once", env=slurm.env, check=False)
    assert monitor.returncode == 1, "a run that ended in failure must not exit 0"
    assert len(submitted(folder)) == 3 and len(ledger(folder)) == 6, "an intent, then its job"


def test_timed_out_task_climbs_the_ladder_and_monitor_resumes(  # type: ignore[no-untyped-def]
        slurm, bundle: Path) -> None:
    """Point 1 times out at 1 minute, is resubmitted with 3 minutes and completes; its
    dependant, cancelled by the failure, is resubmitted once the sweep has recovered. The
    monitor is killed once mid-way and restarted: no submission is made twice."""
    folder = bundle / "recovery"
    env = slurm.env
    run(folder / "submit_all.sh", env=env)
    args = ["bash", str(folder / "ctl.sh"), "monitor", "--interval", "3"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: any(r[7] == "resubmit" for r in ledger(folder)), 240,
               "the monitor to resubmit the timed-out point")
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=420,
                            check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    rows = ledger(folder)
    resubmits = [(r[1], r[3], r[6]) for r in rows if r[7] == "resubmit"]
    assert resubmits == [("flaky", "1", "1"), ("after_flaky", "-", "0")]
    final = status(folder, env)
    assert final[("flaky", "1")] == ("COMPLETED", "1")
    assert {s for s, _ in final.values()} == {"COMPLETED"}
    assert "hook 1 " in (folder / "results/hooks.txt").read_text()
    assert sorted(line.split()[0] for line in
                  (folder / "results/flaky.txt").read_text().splitlines()) == ["0", "1", "2"]
    escalated = [r for r in rows if r[7] == "resubmit" and r[1] == "flaky"][0][5]
    shown = subprocess.run(["scontrol", "show", "job", escalated], env=env, text=True,
                           capture_output=True, check=True).stdout
    assert "TimeLimit=00:03:00" in shown


def test_missing_secret_stops_before_submitting(slurm, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    folder = bundle / "secret"
    env = {k: v for k, v in slurm.env.items() if k != "ACCOUNT"}
    proc = run(folder / "submit_all.sh", env=env, check=False)
    assert proc.returncode != 0 and "ACCOUNT is not set" in proc.stderr
    assert "secrets.env" in proc.stderr
    assert not (folder / "ledger.tsv").exists() and queue_empty(slurm)
    (folder / "secrets.env").write_text("ACCOUNT='lab account'\n".replace(" ", "-"))
    run(folder / "submit_all.sh", env=env)
    job = submitted(folder)[0][5]
    shown = subprocess.run(["scontrol", "show", "job", job], env=env, text=True,
                           capture_output=True, check=True).stdout
    assert "Account=lab-account" in shown
    wait_until(lambda: queue_empty(slurm), 60, "the job to end")
    assert (folder / "results/secret.txt").read_text() == "ran\n"
    assert "lab-account" not in "".join(p.read_text() for p in folder.glob("*.s*"))


def test_timeout_signal_runs_hook_and_requeues(slurm, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    """USR1 (what --signal=B:USR1@N sends before the limit) runs the hook, then requeues."""
    folder = bundle / "requeue"
    run(folder / "submit_all.sh", env=slurm.env)
    job = submitted(folder)[0][5]
    wait_until(lambda: (folder / "results/started").exists(), 60, "the job to start")
    assert "--signal=B:USR1@120" in (folder / "checkpointed.sbatch").read_text()
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm.env, check=True)

    def requeued() -> bool:
        return "Restarts=1" in subprocess.run(["scontrol", "show", "job", job], env=slurm.env,
                                               capture_output=True, text=True).stdout
    wait_until(requeued, 60, "the job to be requeued")

    def resumed() -> bool:
        if (folder / "results/resumed.txt").exists():
            return True
        # Slurm holds a requeued job back for about two minutes, from when the requeue
        # completes, which may be after a release given as soon as Restarts=1 shows: release
        # it while it waits (refused, and harmless, once it runs).
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                       env=slurm.env, check=False, capture_output=True)
        return False
    wait_until(resumed, 120, "the requeued run")
    assert (folder / "results/resumed.txt").read_text() == "resumed 1\n"
    hook = (folder / "results/hook.txt").read_text().split()
    assert hook[0] == "checkpoint" and hook[1].isdigit()
    wait_until(lambda: queue_empty(slurm), 60, "the job to end")
    assert status(folder, slurm.env)[("checkpointed", "0")] == ("COMPLETED", "0")


RANKS = """
project: ranks
clusters:
  c: {kind: slurm, partition: debug, resources: {time: "5:00", mem: 100}}
jobs:
  torch:
    cluster: c
    resources: {nodes: 2, gpus_per_node: 2}
    launcher: torchrun
    command: &report |
      mkdir -p results/{{ job }}
      echo "$RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $NODE_RANK" \\
        "$SLURMD_NODENAME $MASTER_ADDR $MASTER_PORT" > "results/{{ job }}/$RANK"
  mpi:
    cluster: c
    resources: {nodes: 2, gpus_per_node: 2}
    launcher: mpi
    command: |
      mkdir -p results/{{ job }} results/ompi
      echo "$RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $NODE_RANK" \\
        "$SLURMD_NODENAME $MASTER_ADDR $MASTER_PORT" > "results/{{ job }}/$RANK"
      echo "$OMPI_COMM_WORLD_RANK $OMPI_COMM_WORLD_SIZE $OMPI_COMM_WORLD_LOCAL_RANK" \\
        "$OMPI_COMM_WORLD_LOCAL_SIZE" > "results/ompi/$RANK"
"""


def test_one_process_per_gpu_on_two_nodes(slurm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """launcher torchrun and mpi on 2 nodes x 2 GPUs: four processes, each with its own RANK,
    LOCAL_RANK 0 and 1 on each node, WORLD_SIZE 4, and the first node as MASTER_ADDR."""
    (tmp_path / "project.yaml").write_text(RANKS)
    assert build(tmp_path / "project.yaml", tmp_path / "out").code == 0
    folder = tmp_path / "out" / "slurm" / "c"
    assert "#SBATCH --ntasks-per-node=2" in (folder / "torch.sbatch").read_text()
    assert '"--mpi=$JOBPACK_SRUN_MPI"' in (folder / "mpi.sbatch").read_text()
    run(folder / "submit_all.sh", env={**slurm.env, "JOBPACK_SRUN_MPI": "none"})
    wait_until(lambda: queue_empty(slurm), 120, "the launcher jobs to end")
    ompi = sorted(f.read_text().split() for f in (folder / "results" / "ompi").iterdir())
    assert ompi == [["0", "4", "0", "2"], ["1", "4", "1", "2"], ["2", "4", "0", "2"],
                    ["3", "4", "1", "2"]]
    for job in ("torch", "mpi"):
        files = sorted((folder / "results" / job).iterdir())
        rows = sorted(tuple(f.read_text().split()) for f in files)
        assert [f.name for f in files] == ["0", "1", "2", "3"], job
        assert [r[:6] for r in rows] == [("0", "0", "4", "2", "0", "node1"),
                                         ("1", "1", "4", "2", "0", "node1"),
                                         ("2", "0", "4", "2", "1", "node2"),
                                         ("3", "1", "4", "2", "1", "node2")], job
        assert {r[6] for r in rows} == {"node1"} and len({r[7] for r in rows}) == 1, job
    states = status(folder, slurm.env)
    assert {s for s, _ in states.values()} == {"COMPLETED"}
