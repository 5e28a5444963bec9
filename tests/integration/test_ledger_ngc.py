"""No run loses or doubles work on NGC (the ngc test double, behind ngcsdk's own parser):
150-point launches with two launch_all.sh at once, launch_all.sh killed at any moment
(SIGKILL to its process group) and run again, an ngc that fails after creating the job,
and monitor.sh killed in the middle of a relaunch; each with and without flock on PATH.

Duplicates and lost points are counted from the double's own record of the jobs it
created, per point name. Slow: about 110 s in all on a busy 2-core machine (per flock
variant: 9 s for the concurrent runs, 30 s for a kill series of 10 kills, 4 s for the
failing ngc, 8 s for the monitor).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROJECTS, ROOT, build

sys.path.insert(0, str(ROOT / "tests" / "doubles"))
ngc_double = pytest.importorskip("ngc_double", reason="needs ngcsdk (tests/install-deps.sh)")

SIZE = 150
NAMES = [f"led-train-{a}_{b}" for a in range(15) for b in range(10)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ledger-ngc") / "out"
    result = build(PROJECTS / "ledger_ngc" / "project.yaml", out)
    assert result.code == 0, result.stderr
    return out / "ngc" / "ngc"


@pytest.fixture
def double(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = ngc_double.NgcDouble(tmp_path / "ngc.sock")
    d.script = lambda name, instance: ["QUEUED", "RUNNING", "RUNNING"]
    server = d.serve()
    yield d
    server.shutdown()
    server.server_close()


def fresh(built: Path, where: Path) -> Path:
    folder = where / f"ngc-{len(list(where.glob('ngc-*')))}"
    shutil.copytree(built, folder)
    return folder


def no_flock_path(where: Path, path: str) -> str:
    """PATH with every command of PATH except flock (as on macOS)."""
    shims = where / "no-flock-bin"
    if not shims.exists():
        shims.mkdir()
        for d in path.split(os.pathsep):
            if not os.path.isdir(d):
                continue
            for entry in os.scandir(d):
                target = shims / entry.name
                if entry.name != "flock" and not target.exists() and os.access(entry.path, os.X_OK):
                    target.symlink_to(entry.path)
    assert shutil.which("flock", path=str(shims)) is None
    return str(shims)


def base_env(double, tmp_path: Path, flock: bool) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, **double.env}
    if not flock:
        env["PATH"] = no_flock_path(tmp_path, env["PATH"])
    return env


@dataclass
class Blocker:
    """An ngc (NGC_CLI) that hands its call to the double's ngc and, on its Nth `batch run`,
    blocks on a FIFO: after the double created the job ("after"), or before ("before")."""

    dir: Path

    @classmethod
    def make(cls, where: Path) -> Blocker:
        where.mkdir()
        os.mkfifo(where / "fifo")
        real = ROOT / "tests" / "doubles" / "bin" / "ngc"
        (where / "ngc").write_text(f"""#!/usr/bin/env bash
n=0
if [[ $1 == batch && $2 == run ]]; then
  n=$(($(cat {where}/count 2>/dev/null || echo 0) + 1))
  echo "$n" >{where}/count
fi
if [[ $n == "$BLOCK_AT" && $BLOCK_MODE == before ]]; then
  touch {where}/reached
  read -r _ <{where}/fifo
fi
{real} "$@"
rc=$?
if [[ $n == "$BLOCK_AT" && $BLOCK_MODE == after ]]; then
  touch {where}/reached
  read -r _ <{where}/fifo
fi
exit "$rc"
""")
        (where / "ngc").chmod(0o755)
        return cls(where)

    @property
    def reached(self) -> Path:
        return self.dir / "reached"

    def env(self, base: dict[str, str], block_at: int, mode: str = "after") -> dict[str, str]:
        (self.dir / "count").unlink(missing_ok=True)
        self.reached.unlink(missing_ok=True)
        return {**base, "NGC_CLI": str(self.dir / "ngc"), "BLOCK_AT": str(block_at),
                "BLOCK_MODE": mode}

    def release(self) -> None:
        with open(self.dir / "fifo", "w") as fifo:
            fifo.write("go\n")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)


def start(folder: Path, script: str, env: dict[str, str], *args: str,
          log: Path | None = None) -> subprocess.Popen[str]:
    err = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 (the child holds it)
    return subprocess.Popen(["bash", str(folder / script), *args], cwd=folder, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=err,
                            start_new_session=True)


def run(folder: Path, script: str, env: dict[str, str], *args: str,
        code: int | None = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(folder / script), *args], cwd=folder, env=env, text=True,
                          capture_output=True, timeout=600, check=False)
    assert code is None or proc.returncode == code, f"{script} {args}: {proc.stderr[-3000:]}"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def rows(folder: Path) -> list[dict[str, str]]:
    path = folder / "ledger.tsv"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=False)) for line in lines[1:]]


def row_count(folder: Path) -> int:
    path = folder / "ledger.tsv"
    return path.read_text().count("\n") - 1 if path.exists() else 0


def assert_exactly_once(double, folder: Path, per_point: int = 1) -> None:  # type: ignore[no-untyped-def]
    """The double created PER_POINT jobs for every point, and the ledger has the last."""
    created = Counter(j.name for j in double.jobs.values())
    duplicates = {n: c for n, c in created.items() if c > per_point}
    lost = [n for n in NAMES if created[n] < per_point]
    assert not duplicates and not lost, f"duplicates {duplicates}, lost {lost}"
    assert sorted(created) == sorted(NAMES)
    latest: dict[str, dict[str, str]] = {}
    for r in rows(folder):
        if r["event"] in ("launching", "launch", "relaunch", "failed", "void"):
            latest[r["name"]] = r
    last_job = {j.name: j.id for j in double.jobs.values()}  # ids grow: the last one wins
    assert {n: r["ngc_id"] for n, r in latest.items()} == \
        {n: str(i) for n, i in last_job.items()}, "the ledger knows each point's job"


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_two_launch_all_at_once_launch_every_point_once(
        double, built: Path, tmp_path: Path, flock: bool) -> None:  # type: ignore[no-untyped-def]
    env = base_env(double, tmp_path, flock)
    folder = fresh(built, tmp_path)
    first, second = start(folder, "launch_all.sh", env), start(folder, "launch_all.sh", env)
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], results
    assert sum(f"{SIZE} already in the ledger" in err for _, err in results) == 1
    run(folder, "launch_all.sh", env)
    assert_exactly_once(double, folder)

    # The second starts while the first is inside a launch: with a short wait it gives up
    # and launches nothing; with the default wait, it waits, then launches nothing new.
    double.jobs.clear()
    folder = fresh(built, tmp_path)
    blocker = Blocker.make(tmp_path / "blocker")
    first = start(folder, "launch_all.sh", blocker.env(env, 30))
    wait_for(blocker.reached.exists, 120, "the 30th launch")
    refused = run(folder, "launch_all.sh", {**env, "JOBPACK_LOCK_WAIT": "0"}, code=1)
    assert "ledger.tsv is in use by launch_all.sh (pid" in refused.stderr
    assert "nothing was launched" in refused.stderr
    log = tmp_path / "second.err"
    second = start(folder, "launch_all.sh", env, log=log)
    wait_for(lambda: "waiting up to 60s" in log.read_text(), 60, "the second to wait")
    blocker.release()
    assert first.wait(timeout=600) == 0 and second.wait(timeout=600) == 0
    assert_exactly_once(double, folder)


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_launch_all_killed_at_any_moment_then_rerun_launches_every_point_once(
        double, built: Path, tmp_path: Path, flock: bool) -> None:  # type: ignore[no-untyped-def]
    """Ten kills per series: three inside the window after NGC created the job and before
    the ledger has its id (the first launch, a middle one, the last), one after the intent
    and before ngc runs, six after a random number of ledger rows (seeded)."""
    env = base_env(double, tmp_path, flock)
    blocker = Blocker.make(tmp_path / "blocker")
    rng = random.Random(4242 + flock)
    moments = [("after", 1), ("after", 97), ("after", SIZE), ("before", 41)]
    moments += [("rows", rng.randint(1, 2 * SIZE - 1)) for _ in range(6)]
    adopted = voided = 0
    for kind, n in moments:
        double.jobs.clear()
        folder = fresh(built, tmp_path)
        if kind == "rows":
            proc = start(folder, "launch_all.sh", env)
            wait_for(lambda: row_count(folder) >= n or proc.poll() is not None,  # noqa: B023
                     120, f"{n} ledger rows")
        else:
            proc = start(folder, "launch_all.sh", blocker.env(env, n, kind))
            wait_for(blocker.reached.exists, 120, f"launch {n}")
        kill(proc)
        if kind != "rows":
            status = run(folder, "status.sh", env, "--cached").stdout
            assert [line.split()[1] for line in status.splitlines()
                    if line.endswith(" LAUNCH_UNCONFIRMED")] == [str(n - 1)]
            assert (f"warning: {SIZE - n} point(s) of run " in status) == (n < SIZE)
            assert "has an unknown outcome (LAUNCH_UNCONFIRMED)" in status
        rerun = run(folder, "launch_all.sh", env)
        adopted += rerun.stderr.count("recorded, not launched again")
        voided += rerun.stderr.count("never reached NGC")
        assert_exactly_once(double, folder)
    assert adopted >= 3, "each launch in flight is found on NGC and kept"
    assert voided >= 1, "a launch that never reached NGC is made on the rerun"


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_ngc_failing_after_creating_the_job_never_doubles_it(
        double, built: Path, tmp_path: Path, flock: bool) -> None:  # type: ignore[no-untyped-def]
    """One `ngc batch run` in ten creates the job and then fails (seeded): each is found
    by its label and kept, by launch_all.sh at once, and nothing is launched again by a
    rerun or by monitor.sh."""
    env = base_env(double, tmp_path, flock)
    double.fail_after_create = 0.1
    double.rng = random.Random(7 + flock)
    folder = fresh(built, tmp_path)
    first = run(folder, "launch_all.sh", env)
    assert len([c for c in double.calls if c[1] == "run"]) == SIZE
    found = first.stderr.count("recorded, not launched again")
    assert 5 <= found <= 30, "about one launch in ten failed after creating its job"
    assert first.stderr.count("failed: Error: The read operation timed out") == found
    run(folder, "launch_all.sh", env)
    run(folder, "monitor.sh", env, "--once", code=3)
    assert len([c for c in double.calls if c[1] == "run"]) == SIZE
    assert_exactly_once(double, folder)
    status = run(folder, "status.sh", env, "--cached").stdout
    assert status.splitlines()[-1] == f"total: NOT_ENDED {SIZE}"


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_monitor_killed_mid_relaunch_relaunches_nothing_twice(
        double, built: Path, tmp_path: Path, flock: bool) -> None:  # type: ignore[no-untyped-def]
    """Every point fails on its first instance; the monitor is killed just after NGC created
    one of the relaunches, before the ledger has it; restarted, it adopts that job and
    relaunches each point exactly once. Also with ngc failing after creating the job."""
    env = base_env(double, tmp_path, flock)
    double.script = lambda name, instance: (
        ["FAILED"] if instance == "dgx1v.16g.1.norm" else ["RUNNING", "FINISHED_SUCCESS"])
    folder = fresh(built, tmp_path)
    run(folder, "launch_all.sh", env)
    blocker = Blocker.make(tmp_path / "blocker")
    monitor = start(folder, "monitor.sh", blocker.env(env, 60), "--interval", "0")
    wait_for(blocker.reached.exists, 300, "the 60th relaunch")
    kill(monitor)
    double.fail_after_create = 0.1
    again = run(folder, "monitor.sh", env, "--interval", "0")
    assert "recorded, not launched again" in again.stderr
    assert_exactly_once(double, folder, per_point=2)
    assert {j.instance for j in double.jobs.values() if j.id >= 4_000_000 + SIZE} == \
        {"dgx1v.32g.1.norm"}
    status = run(folder, "status.sh", env, "--cached").stdout
    assert status.splitlines()[-1] == f"total: FINISHED_SUCCESS {SIZE}"


def test_a_job_ngc_lists_late_is_waited_for_not_launched_again(
        double, built: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """NGC lists a new job a few seconds late. A launch cut short after NGC created the job
    is not taken as lost while NGC may still be about to list it (the rerun leaves it
    unconfirmed), and once listed, it is adopted: launched exactly once."""
    double.list_lag = 3.0
    env = base_env(double, tmp_path, True)
    assert env["JOBPACK_NGC_LIST_DELAY"] == "6"
    folder = fresh(built, tmp_path)
    blocker = Blocker.make(tmp_path / "blocker")
    launch = start(folder, "launch_all.sh", blocker.env(env, 10))
    wait_for(blocker.reached.exists, 120, "the 10th launch, created on NGC")
    kill(launch)
    left = run(folder, "launch_all.sh", env, code=1)  # the 10th is not listed yet
    assert "1 launch(es) of unknown outcome were left alone" in left.stderr
    assert len([c for c in double.calls if c[1] == "run"]) == SIZE
    listed = double.jobs[max(double.jobs)].created.timestamp() + double.list_lag
    while time.time() < listed + 3.5:  # until NGC lists it, and the delay has passed
        time.sleep(0.2)
    run(folder, "launch_all.sh", env)
    assert len([c for c in double.calls if c[1] == "run"]) == SIZE
    assert_exactly_once(double, folder)
