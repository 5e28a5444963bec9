"""No run loses or doubles work on a real Slurm: submit_all.sh run twice at once, killed at
any moment (SIGKILL to its process group) and run again, with or without flock on PATH, and
ctl.sh monitor killed in the middle of a resubmission.

The project (tests/projects/ledger) has a 150-point sweep submitted as 8 arrays of at most
20 tasks and a job after it; its jobs start an hour after they are submitted, so they hold
no node, and each test cancels what it submitted. What Slurm holds is counted from Slurm
itself (every job whose working directory is the bundle, by its comment tag), not only
from the ledger. Slow: about 55 s in all on a busy 2-core machine, besides starting Slurm
(per flock variant: 5 s for the concurrent runs, 10 s for a kill series of 10 kills; 7 s
for the monitor).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROJECTS, build

pytestmark = pytest.mark.slurm

SIZE = 150
SUBMISSIONS = 9  # 8 arrays of the sweep, then the job after it


@pytest.fixture(scope="module")
def built(slurm, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("ledger") / "out"
    result = build(PROJECTS / "ledger" / "project.yaml", out)
    assert result.code == 0, result.stderr
    return out / "slurm"


def fresh(built: Path, where: Path, cluster: str = "hpc") -> Path:
    """A copy of a cluster's folder of the bundle, with no ledger yet."""
    folder = where / f"{cluster}-{len(list(where.glob(f'{cluster}-*')))}"
    shutil.copytree(built / cluster, folder)
    return folder


def no_flock_path(where: Path) -> str:
    """A PATH with every command of the current one except flock (as on macOS)."""
    shims = where / "no-flock-bin"
    if not shims.exists():
        shims.mkdir()
        for d in os.environ["PATH"].split(os.pathsep):
            if not os.path.isdir(d):
                continue
            for entry in os.scandir(d):
                target = shims / entry.name
                if entry.name != "flock" and not target.exists() and os.access(entry.path, os.X_OK):
                    target.symlink_to(entry.path)
    assert shutil.which("flock", path=str(shims)) is None
    return str(shims)


@dataclass
class Blocker:
    """An sbatch earlier on PATH that calls the real one and, on its Nth call, blocks on a
    FIFO: after the real sbatch returned ("after": Slurm has the job, the ledger not its
    id), or before calling it ("before": the intent is recorded, no job exists)."""

    bin: Path
    reached: Path

    @classmethod
    def make(cls, where: Path) -> Blocker:
        where.mkdir(parents=True, exist_ok=True)
        real = shutil.which("sbatch")
        fifo = where / "fifo"
        os.mkfifo(fifo)
        (where / "sbatch").write_text(f"""#!/usr/bin/env bash
n=$(($(cat {where}/count 2>/dev/null || echo 0) + 1))
echo "$n" >{where}/count
if [[ $n == "$BLOCK_AT" && $BLOCK_MODE == before ]]; then
  echo before >{where}/reached
  read -r _ <{fifo}
fi
out=$({real} "$@")
rc=$?
printf '%s\\n' "$out"
if [[ $n == "$BLOCK_AT" && $BLOCK_MODE == after ]]; then
  echo "$out" >{where}/reached
  read -r _ <{fifo}
fi
exit "$rc"
""")
        (where / "sbatch").chmod(0o755)
        return cls(where, where / "reached")

    def env(self, base: dict[str, str], block_at: int, mode: str = "after") -> dict[str, str]:
        (self.bin / "count").unlink(missing_ok=True)
        self.reached.unlink(missing_ok=True)
        return {**base, "PATH": f"{self.bin}:{base['PATH']}", "BLOCK_AT": str(block_at),
                "BLOCK_MODE": mode}

    def release(self) -> None:
        with open(self.bin / "fifo", "w") as fifo:
            fifo.write("go\n")


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)


def start(folder: Path, env: dict[str, str], *args: str, script: str = "submit_all.sh",
          log: Path | None = None) -> subprocess.Popen[str]:
    err = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 (the child holds it)
    return subprocess.Popen(["bash", str(folder / script), *args], env=env, cwd="/",
                            stdout=subprocess.PIPE, stderr=err, text=True,
                            start_new_session=True)


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the whole process group (the script, its sbatch and everything else)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def submit(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(folder / "submit_all.sh"), *args], env=env, cwd="/",
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


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


def expand(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split("%")[0].split(","):
        first, _, last = part.partition("-")
        out += list(range(int(first), int(last or first) + 1))
    return out


@dataclass
class Tally:
    points: Counter[tuple[str, int]]  # (job, point) -> tasks on Slurm
    untracked: list[str]  # Slurm jobs from this folder whose tag the ledger never had
    shared_tags: list[str]  # tags carried by more than one Slurm job
    ids: set[str]


def tally(slurm, folder: Path) -> Tally:  # type: ignore[no-untyped-def]
    """Every task Slurm holds that was submitted from FOLDER, by point of the ledger's run."""
    offsets = {r["tag"]: int(r["offset"]) for r in rows(folder) if r.get("tag")}
    out = subprocess.run(["squeue", "-h", "-a", "-t", "all", "-r", "-o", "%F|%K|%k|%Z|%j"],
                         env=slurm.env, capture_output=True, text=True, check=True).stdout
    points: Counter[tuple[str, int]] = Counter()
    untracked, ids_of_tag = [], {}
    for line in out.splitlines():
        job_id, index, comment, workdir, name = line.split("|")
        if Path(workdir) != folder.resolve():
            continue
        tag = comment.removeprefix("jobpack:")
        ids_of_tag.setdefault(tag, set()).add(job_id)
        if tag not in offsets:
            untracked.append(job_id)
            continue
        point = 0 if index == "N/A" else offsets[tag] + int(index)
        points[(name.removeprefix("ledger-"), point)] += 1
    shared = [t for t, ids in ids_of_tag.items() if len(ids) > 1]
    return Tally(points, untracked, shared, {i for ids in ids_of_tag.values() for i in ids})


def ledger_points(folder: Path) -> tuple[Counter[tuple[str, int]], int]:
    """Submissions of each point Slurm accepted, as the ledger records them, and the number
    of submissions whose outcome it never recorded."""
    done: Counter[tuple[str, int]] = Counter()
    intents, settled = set(), set()
    for r in rows(folder):
        if r["event"] == "submitting":
            intents.add(r["tag"])
        elif r["event"] in ("submit", "void"):
            settled.add(r["tag"])
        if r["event"] != "submit":
            continue
        for index in ([0] if r["array"] == "-" else expand(r["array"])):
            done[(r["job"], int(r["offset"]) + index)] += 1
    return done, len(intents - settled)


EXPECTED = Counter({**{("sweep", p): 1 for p in range(SIZE)}, ("summary", 0): 1})


def assert_exactly_once(slurm, folder: Path) -> Tally:  # type: ignore[no-untyped-def]
    held = tally(slurm, folder)
    assert not held.untracked, f"jobs on Slurm the ledger never knew: {held.untracked}"
    assert not held.shared_tags, f"a submission made twice: {held.shared_tags}"
    duplicates = {k: n for k, n in held.points.items() if n > 1}
    lost = set(EXPECTED) - set(held.points)
    assert not duplicates and not lost, f"duplicates {duplicates}, lost {sorted(lost)}"
    assert held.points == EXPECTED
    recorded, unsettled = ledger_points(folder)
    assert recorded == EXPECTED and unsettled == 0
    return held


def cancel(slurm, held: Tally) -> None:  # type: ignore[no-untyped-def]
    if held.ids:
        subprocess.run(["scancel", *sorted(held.ids)], env=slurm.env, check=True)


def env_for(slurm, tmp_path: Path, flock: bool) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = dict(slurm.env)
    if not flock:
        env["PATH"] = no_flock_path(tmp_path)
    return env


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_two_submit_all_at_once_submit_every_point_once(
        slurm, built: Path, tmp_path: Path, flock: bool) -> None:  # type: ignore[no-untyped-def]
    env = env_for(slurm, tmp_path, flock)
    blocker = Blocker.make(tmp_path / "blocker")

    # Started together: one takes the lock, the other waits for it, then finds every point
    # submitted.
    folder = fresh(built, tmp_path)
    first, second = start(folder, env), start(folder, env)
    results = [p.communicate(timeout=180) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], results
    assert sum("already in run" in err for _, err in results) == 1
    submit(folder, env)
    cancel(slurm, assert_exactly_once(slurm, folder))

    # The second starts while the first is inside its third sbatch: it says who holds the
    # ledger, and waits; or, with a short wait, gives up without submitting anything.
    folder = fresh(built, tmp_path)
    first = start(folder, blocker.env(env, 3))
    wait_for(blocker.reached.exists, 60, "the third sbatch")
    refused = subprocess.run(["bash", str(folder / "submit_all.sh")], cwd="/", text=True,
                             env={**env, "JOBPACK_LOCK_WAIT": "1"}, capture_output=True,
                             timeout=60, check=False)
    assert refused.returncode == 1
    assert "ledger.tsv is in use by submit_all.sh (pid" in refused.stderr
    assert "nothing was submitted" in refused.stderr
    log = tmp_path / "second.err"
    second = start(folder, env, log=log)
    wait_for(lambda: "waiting up to 60s" in log.read_text(), 60,
             "the second submit_all.sh to wait for the lock")
    blocker.release()
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    cancel(slurm, assert_exactly_once(slurm, folder))


def unsure_and_missing(n: int) -> tuple[int, int]:
    """Points of unknown outcome, and points with no submission, after a kill while sbatch
    call N (of the 8 arrays of 20, 20, ..., 10 points, then the job after them) was made."""
    sizes = [20] * 7 + [10, 1]
    return sizes[n - 1], sum(sizes[n:])


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_submit_all_killed_at_any_moment_then_rerun_submits_every_point_once(
        slurm, built: Path, tmp_path: Path, flock: bool) -> None:  # type: ignore[no-untyped-def]
    """Ten kills per series: three inside the window after sbatch returned and before the
    ledger has the id (in the first array, a middle one, the dependent job), one after the
    intent and before sbatch, six after a random number of ledger rows (seeded)."""
    env = env_for(slurm, tmp_path, flock)
    blocker = Blocker.make(tmp_path / "blocker")
    rng = random.Random(20240917 + flock)
    moments = [("after", 1), ("after", 4), ("after", SUBMISSIONS), ("before", 6)]
    moments += [("rows", rng.randint(1, 2 * SUBMISSIONS - 1)) for _ in range(6)]
    adopted = voided = 0
    for kind, n in moments:
        folder = fresh(built, tmp_path)
        if kind == "rows":
            proc = start(folder, env)
            wait_for(lambda: row_count(folder) >= n or proc.poll() is not None, 60,  # noqa: B023
                     f"{n} ledger rows")
        else:
            proc = start(folder, blocker.env(env, n, kind))
            wait_for(blocker.reached.exists, 60, f"sbatch call {n}")
        kill(proc)
        if kind != "rows":
            status = subprocess.run(["bash", str(folder / "ctl.sh"), "status"], env=env,
                                    capture_output=True, text=True, check=True).stdout
            unsure, missing = unsure_and_missing(n)
            assert status.count(" UNCONFIRMED ") == unsure
            assert status.count(" NOT_SUBMITTED ") == missing
            assert (f"warning: {missing} point(s) have no submission" in status) == bool(missing)
            assert "has an unknown outcome (UNCONFIRMED)" in status
        rerun = submit(folder, env)
        adopted += rerun.stderr.count("recorded, not submitted again")
        voided += rerun.stderr.count("never reached Slurm")
        cancel(slurm, assert_exactly_once(slurm, folder))
    assert adopted >= 3, "each submission in flight is found on Slurm and kept"
    assert voided >= 1, "a submission that never reached Slurm is made on the rerun"


def test_status_lists_every_point_and_warns_about_those_never_submitted(
        slurm, built: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = fresh(built, tmp_path)
    blocker = Blocker.make(tmp_path / "blocker")
    proc = start(folder, blocker.env(slurm.env, 4))
    wait_for(blocker.reached.exists, 60, "the fourth sbatch")
    kill(proc)
    status = subprocess.run(["bash", str(folder / "ctl.sh"), "status"], env=slurm.env,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    table = [line.split() for line in status[2:] if line.startswith(("sweep ", "summary "))]
    assert len(table) == SIZE + 1, "every point, submitted or not"
    states = {(r[0], int(r[1])): r[3] for r in table}
    assert {p for (job, p), s in states.items() if s == "UNCONFIRMED"} == set(range(60, 80))
    assert [k for k, s in states.items() if s == "NOT_SUBMITTED"] == \
        [*(("sweep", p) for p in range(80, SIZE)), ("summary", 0)]
    assert status[-3] == "total: 71 NOT_SUBMITTED, 60 PENDING, 20 UNCONFIRMED"
    assert status[-2].startswith("warning: 71 point(s) have no submission in run ")
    assert status[-2].endswith("run ./submit_all.sh, which submits exactly those")
    assert status[-1].startswith("warning: the submission of sweep point(s) 60 61 ")
    rerun = submit(folder, slurm.env)
    assert "sweep: 80 point(s) already in run" in rerun.stderr
    assert "submitting the 70 missing" in rerun.stderr
    cancel(slurm, assert_exactly_once(slurm, folder))


def test_monitor_killed_mid_resubmission_resubmits_nothing_twice(
        slurm, built: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Six points fail at once and may be retried once: the monitor is killed after its
    resubmission reached Slurm and before the ledger has its id; restarted, it finds that
    resubmission by its tag and submits nothing more."""
    folder = fresh(built, tmp_path, "retry")
    submit(folder, slurm.env)
    first = [r for r in rows(folder) if r["event"] == "submit"][0]["slurm_id"]

    def all_failed() -> bool:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", first, "-o", "%T"],
                             env=slurm.env, capture_output=True, text=True).stdout.split()
        return len(out) == 6 and set(out) == {"FAILED"}
    wait_for(all_failed, 120, "the six points to fail")
    blocker = Blocker.make(tmp_path / "blocker")
    monitor = start(folder, blocker.env(slurm.env, 1), "monitor", "--interval", "1",
                    script="ctl.sh")
    wait_for(blocker.reached.exists, 60, "the monitor's resubmission")
    kill(monitor)
    assert [r["event"] for r in rows(folder)][-1] == "resubmitting"
    again = subprocess.run(["bash", str(folder / "ctl.sh"), "monitor", "--interval", "1"],
                           env=slurm.env, capture_output=True, text=True, timeout=240,
                           check=False)
    assert again.returncode == 1, "every point failed twice"
    assert "recorded, not submitted again" in again.stderr
    events = [r["event"] for r in rows(folder)]
    assert events.count("resubmit") == 1 and events.count("resubmitting") == 1
    out = subprocess.run(["squeue", "-h", "-a", "-t", "all", "-r", "-o", "%F|%K|%Z"],
                         env=slurm.env, capture_output=True, text=True, check=True).stdout
    tasks = Counter(int(index) for _job, index, workdir in
                    (line.split("|") for line in out.splitlines())
                    if Path(workdir) == folder.resolve())
    assert tasks == Counter({p: 2 for p in range(6)}), "each point: its job and one retry"
    status = subprocess.run(["bash", str(folder / "ctl.sh"), "status"], env=slurm.env,
                            capture_output=True, text=True, check=True).stdout
    assert status.splitlines()[-1] == "total: 6 FAILED"
